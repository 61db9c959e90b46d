#!/bin/sh
# The README's web app pictures: the end-to-end test's own screenshots, copied into docs/images/web-*.png.
set -e
cd "$(dirname "$0")/.."
MASKSMITH_DOCS_IMAGES=1 HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" \
  python -m pytest -q tests/test_web_e2e.py -p no:cacheprovider
ls -l docs/images/web-*.png
