"""Write a data set in another format (`dataset convert`), refusing to write over the source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from masksmith.data.formats import get_format, writable_formats
from masksmith.data.schema import Dataset
from masksmith.errors import DatasetError


def convert(dataset: Dataset, to: str, out: str | Path, **options: Any) -> Path:
    out = Path(out)
    module = get_format(to)
    if not hasattr(module, "write"):
        raise DatasetError(f"cannot write format {to!r}.", fix=f"use one of: {', '.join(writable_formats())}.")
    if dataset.root is not None and out.exists() and out.resolve() == Path(dataset.root).resolve():
        raise DatasetError("is the data set's own folder; converting there could overwrite the originals.",
                           path=out, fix="choose a new output folder.")
    module.write(dataset, out, **options)
    return out
