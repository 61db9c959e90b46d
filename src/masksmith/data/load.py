"""The one entry point for reading a data set: a file, a folder or a zip, in any known format."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from masksmith.data.archive import extract_zip
from masksmith.data.checks import validate
from masksmith.data.formats import detect_format, get_format
from masksmith.data.schema import Dataset, ProblemLog
from masksmith.errors import DatasetError


def load_dataset(path: str | Path, format: str | None = None, *, strict: bool = True,
                 **options: Any) -> Dataset:
    """Read a data set, detecting its format unless `format` names it.

    strict=True raises a DatasetError at the first problem; strict=False skips bad items and lists them in
    `dataset.problems`. Format options (e.g. `label_attribute` for VIA, `color_map` for colour masks) pass
    through to the reader.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError("does not exist.", path=path, fix="check the path.")
    if path.is_file() and path.suffix.lower() == ".zip":
        if not zipfile.is_zipfile(path):
            raise DatasetError("is not a valid zip archive.", path=path, fix="re-create the archive.")
        path = extract_zip(path)
    module = get_format(format) if format else detect_format(path)
    log = ProblemLog(strict)
    dataset = module.read(path, log, **options)
    dataset.format = module.NAME
    validate(dataset, log)
    dataset.problems = log.problems
    return dataset
