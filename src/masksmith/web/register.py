"""Data sets in the app's store: a folder on this machine, an uploaded zip (extracted by masksmith.data.archive
into our own folder), the parts of a split and the built-in sample, each inspected once by the library
(`service.inspect_dataset`) and kept with what the data set page shows."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
import zipfile
from pathlib import Path
from typing import Any

from masksmith import service
from masksmith.core.paths import safe_filename
from masksmith.web.common import WebError
from masksmith.web.store import Store


def register_dataset(store: Store, root: Path, folder: Path | None, source: str, name: str) -> dict[str, Any]:
    summary = service.inspect_dataset(root)
    name = store.free_name("datasets", name.strip()[:80] or "data")
    dataset_id = store.add_dataset(name, root, folder, source, summary["format"], summary)
    return {"id": dataset_id, "name": name, "url": f"/datasets/{dataset_id}"}


def add_uploaded_zip(store: Store, data_dir: Path, upload: Path, name: str) -> dict[str, Any]:
    from masksmith.data.archive import extract_zip

    if not zipfile.is_zipfile(upload):
        raise WebError(400, "the file is not a zip archive; zip the data set folder (annotations and images) "
                            "and upload the .zip.")
    folder = data_dir / "datasets" / uuid.uuid4().hex[:12]
    try:
        root = extract_zip(upload, folder / "files")
        label = safe_filename(Path(name).stem if name.lower().endswith(".zip") else name, "data")
        return register_dataset(store, root, folder, "upload", label)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def load_sample_once(store: Store, data_dir: Path) -> None:
    """The built-in sample data set, added on the first start so a new user sees a working project."""
    marker = data_dir / ".sample-loaded"
    if marker.exists():
        return
    from masksmith.data.synthetic import make_sample_dataset

    folder = data_dir / "datasets" / "sample"
    if not folder.is_dir():
        tmp = data_dir / "datasets" / f".sample-{uuid.uuid4().hex[:6]}"
        make_sample_dataset(tmp / "files")
        tmp.rename(folder)
    register_dataset(store, folder / "files", folder, "sample", "sample cars")
    marker.write_text("the sample data set was added once; deleting it keeps it deleted\n")


def split_into_datasets(store: Store, data_dir: Path, ds: dict[str, Any], val: float, test: float,
                        seed: int) -> dict[str, Any]:
    """Split at random (seeded) into train / val / test, each a data set of its own in our folder."""
    dataset = service.open_dataset(ds["root"], ds["colors"])
    folders = {}

    def folder_for(part: str) -> Path:
        folders[part] = data_dir / "datasets" / uuid.uuid4().hex[:12]
        return folders[part] / "files"

    written = service.write_split(dataset, folder_for, val, test, seed)
    return {"parts": [register_dataset(store, files, folders[part], "split", f"{ds['name']} {part}")
                      for part, files in written.items()]}


def preview_file(data_dir: Path, ds: dict[str, Any]) -> Path:
    """The preview grid in the class colours (cached per colour choice)."""
    from masksmith.core.outputs import atomic_save_image
    from masksmith.data.preview import preview_picture

    key = hashlib.sha1(json.dumps(ds["colors"], sort_keys=True).encode()).hexdigest()[:10]
    path = data_dir / "cache" / f"dataset-{ds['id']}" / f"preview-{key}.png"
    if not path.is_file():
        picture = preview_picture(service.open_dataset(ds["root"], ds["colors"]), count=6, cell=200)
        atomic_save_image(picture.pixels, path, **picture.save_options())
    return path
