#!/bin/sh
# The README's web app pictures: the end-to-end test's own screenshots, copied into docs/images/web-*.png.
set -e
cd "$(dirname "$0")/.."
# a longer training than the test's one minute (10 minutes by default): the pictures should show a model worth
# trying; the test's time limit grows with it
MASKSMITH_DOCS_IMAGES=1 MASKSMITH_E2E_MINUTES=${MASKSMITH_E2E_MINUTES:-10} HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" \
  python -m pytest -q tests/test_web_e2e.py -p no:cacheprovider --timeout=3600
ls -l docs/images/web-*.png
