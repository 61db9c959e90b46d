"""The one entry point for reading a data set: a file, a folder or a zip, in any known format."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from masksmith.core.errors import DatasetError, FormatNotRecognised, MasksmithError
from masksmith.data.archive import extract_zip, zip_name, zips_cache
from masksmith.data.checks import validate
from masksmith.data.formats import check_options, detect_formats, get_format
from masksmith.data.formats._write import PARTIAL_MARKER, partial_output
from masksmith.data.schema import Dataset, ProblemLog


def load_dataset(path: str | Path, format: str | None = None, *, strict: bool = True, need_pixels: bool = True,
                 **options: Any) -> Dataset:
    """Read a data set, detecting its format unless `format` names it.

    strict=True raises a DatasetError at the first problem; strict=False drops the bad item (a region, or an
    image) and lists it in `dataset.problems`. Format options (e.g. `label_attribute` for VIA, `color_map` for
    colour masks; `masksmith dataset formats` lists them) pass through to the reader; unknown ones are refused.

    need_pixels=False reads what the annotation file alone says (`dataset inspect`): missing images are one
    problem, not a stop, and their samples stay (marked `image_missing`). Either way a data set with no image
    left is an error.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError("does not exist.", path=path, fix="check the path.")
    if path.is_file() and path.suffix.lower() == ".zip":
        if not zipfile.is_zipfile(path):
            raise DatasetError("is not a valid zip archive.", path=path, fix="re-create the archive.")
        inner = extract_zip(path)
        entry = inner if inner.parent == zips_cache() else inner.parent
        try:
            dataset = _read(inner, format, strict, need_pixels, options)
        except MasksmithError as exc:  # say the zip the user passed, not the cache folder it was unpacked in
            if exc.path:
                exc.path = zip_name(exc.path, entry, path)
            exc.problem = zip_name(exc.problem, entry, path)
            exc.args = (exc._compose(),)
            raise
        for problem in dataset.problems:
            problem.path = zip_name(problem.path, entry, path)
            problem.message = zip_name(problem.message, entry, path)
        for note in dataset.notes:  # notes name files too (which of two annotation files was read)
            note.message = zip_name(note.message, entry, path)
            note.examples = [zip_name(e, entry, path) for e in note.examples]
        return dataset
    return _read(path, format, strict, need_pixels, options)


def _read(path: Path, format: str | None, strict: bool, need_pixels: bool, options: dict[str, Any]) -> Dataset:
    log = ProblemLog(strict)
    partial = _check_partial(path if path.is_dir() else path.parent, log)
    try:
        module = get_format(format) if format else _detect(path, log, options)
    except FormatNotRecognised:
        if partial is not None:
            raise partial from None
        raise
    check_options(module, options)
    dataset = module.read(path, log, **options)
    dataset.format = module.NAME
    if partial is None and dataset.root is not None and dataset.root != path and dataset.root != path.parent:
        _check_partial(dataset.root, log)
    if options:
        dataset.info["options"] = dict(options)
    if module.NAME == "masks":  # an instance data set of the labelling loop: its photos' objects
        from masksmith.data.labelling_objects import is_instance_folder, use_objects

        if is_instance_folder(dataset.root):
            use_objects(dataset, log)
    validate(dataset, log, need_pixels=need_pixels)
    dataset.problems = log.problems
    dataset.notes = [*dataset.notes, *log.notes]
    if dataset.root is not None:  # photos waiting for a label (data/labelling.py): counted, never read
        from masksmith.data.labelling import unlabelled_photos

        dataset.info["unlabelled"] = len(unlabelled_photos(dataset.root))
    if not dataset.samples:
        raise DatasetError(_empty_reason(dataset), path=dataset.root or path,
                           fix="check the path and the problems above; reading it leniently (`lenient`) lists "
                               "every one." if dataset.problems else
                           "point at the folder or file that holds the annotations.")
    return dataset


def _check_partial(folder: Path, log: ProblemLog) -> DatasetError | None:
    """When `folder` is an output masksmith did not finish writing: stop (strict), or report it and read what
    is there (lenient). Returns the error, for when nothing readable is there."""
    said = partial_output(folder)
    if said is None:
        return None
    images = said.get("images")
    what = f"{images} image(s) as {said.get('writing')}" if isinstance(images, int) and said.get("writing") \
        else "a data set"
    message = (f"is a partial output: masksmith was writing {what} here and was cut short (interrupted, killed "
               f"or out of disk space) before it finished ({PARTIAL_MARKER} is still there).")
    fix = ("run the conversion again into this folder (it replaces its own files), or read it leniently "
           "(`lenient`) to use what was written.")
    log.add(message, path=folder, fix=fix, dropped="")
    return DatasetError(message, path=folder, fix=fix)


def _detect(path: Path, log: ProblemLog, options: dict[str, Any]):
    found = detect_formats(path, options)
    if not found:
        from masksmith.data.formats import detect_format

        return detect_format(path)  # raises FormatNotRecognised with the list of formats
    best = found[0]
    if best.error is not None:
        # the format found the layout ambiguous; options it takes (such as masks=NAME) may settle that
        if not set(options) & _option_names(best.module):
            raise best.error
        return best.module
    for other in found[1:]:
        if other.error is not None or other.module is best.module:
            continue
        if other.depth > best.depth:
            log.note(f"the folder also holds a {other.module.NAME} data set ({other.module.DESCRIPTION}) in a "
                     f"sub-folder; read as {best.module.NAME}, the layout of the folder itself",
                     fix=f"Read the other with -f {other.module.NAME}, or point at its folder.", skipped=False)
        else:
            log.note(f"the folder also holds a {other.module.NAME} data set ({other.module.DESCRIPTION}); read as "
                     f"{best.module.NAME}, which masksmith tries first",
                     fix=f"Read the other with -f {other.module.NAME}, or point at its file.", skipped=False)
    return best.module


def _option_names(module) -> set[str]:
    return {o.name for o in getattr(module, "OPTIONS", ())}


def reading_options(path: str | Path, format: str | None, given: dict[str, Any] | None,
                    training: dict[str, Any]) -> tuple[str | None, dict[str, Any], str]:
    """(format, options, what was decided) for reading `path` with a trained model: the options given, else
    the ones the model was trained with (its `training` record) when the data is in the same format. The format
    is detected with those options applied (`masks=` settles which mask folder, as it did in training)."""
    if given is not None:
        return format, given, ""
    stored = training.get("data_options") or {}
    trained_format = training.get("data_format")
    if not stored:
        return format, {}, ""
    listed = ", ".join(f"{k}={v!r}" for k, v in stored.items())
    name = format
    if name is None:
        path = Path(path)
        folder = path
        if path.is_file() and path.suffix.lower() == ".zip" and zipfile.is_zipfile(path):
            folder = extract_zip(path)
        name = _detected_with(folder, stored, trained_format)
    if name == trained_format:
        return format or trained_format, dict(stored), (f"reading {path} with the options the model was trained "
                                                        f"with: {listed}")
    return format, {}, (f"the model was trained on {trained_format} data read with {listed}; {path} is "
                        f"{name or 'another format'}, so those options are not used (set reading options to choose "
                        "some)")


def _detected_with(path: Path, options: dict[str, Any], trained_format: str | None) -> str | None:
    """The format of `path` detected with `options`: the trained format when it recognises the layout (the
    options settling what it found ambiguous), else the best other."""
    found = detect_formats(path, options) if path.exists() else []
    for d in found:
        if trained_format == d.module.NAME and (d.error is None or set(options) <= _option_names(d.module)):
            return d.module.NAME
    return found[0].module.NAME if found and found[0].error is None else None


def _empty_reason(dataset: Dataset) -> str:
    if dataset.problems:
        first = dataset.problems[0]
        return f"holds no image left to use: {len(dataset.problems)} problem(s), the first: {first}"
    return "holds no annotated images."


__all__ = ["FormatNotRecognised", "load_dataset"]
