"""Write a data set in another format (`dataset convert`), never over the source or files we did not write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from masksmith.core.errors import DatasetError
from masksmith.core.outputs import OutputFolder, as_output_folder
from masksmith.data.formats import get_format, writable_formats
from masksmith.data.formats._write import begin_output, end_output
from masksmith.data.schema import Dataset


def convert(dataset: Dataset, to: str, out: str | Path | OutputFolder, *, overwrite: bool = False,
            **options: Any) -> Path:
    """Write `dataset` as format `to` into `out`: a folder that is not, does not hold and does not lie inside
    the data set's own folder; files there that masksmith did not write are only replaced with `overwrite`.
    A marker written first and removed last makes a conversion cut short recognisable: reading the folder says
    it is partial."""
    module = get_format(to)
    if not hasattr(module, "write"):
        raise DatasetError(f"cannot write format {to!r}.", fix=f"use one of: {', '.join(writable_formats())}.")
    check = getattr(module, "check_writable", None)
    if check is not None:  # what the format cannot hold is refused before a file is written
        check(dataset, **options)
    folder = as_output_folder(out, inputs=[dataset.root], overwrite=overwrite)
    begin_output(folder, module.NAME, len(dataset.samples))  # a folder cut short is read as partial
    module.write(dataset, folder, **options)
    end_output(folder)
    return folder.root
