"""`dataset preview`: a PNG sheet of photos beside their annotation (over the photo and alone) in the class
colours, with column titles, each image's name and a legend of the classes."""

from __future__ import annotations

from pathlib import Path

from masksmith.core.errors import DatasetError
from masksmith.core.outputs import OutputFolder
from masksmith.data.rasterize import semantic_mask
from masksmith.data.schema import Dataset
from masksmith.draw import Picture, colorize, overlay, sheet
from masksmith.draw.overlay import fitted_size, resize_pair

COLUMNS = ("photo", "annotation", "mask")


def preview_picture(dataset: Dataset, count: int = 8, cell: int = 256, opacity: float = 0.5) -> Picture:
    """Rows of (photo, annotation over it, mask alone) for the first `count` samples, then a colour legend."""
    classes = dataset.class_map
    index, colors = classes.index(), classes.palette()
    rows, captions = [], []
    for sample in dataset.samples[:count]:
        image = sample.load_image()
        im, (mask,) = resize_pair(image, [semantic_mask(sample, index)], fitted_size(image.shape, cell))
        rows.append([im, overlay(im, mask, colors, opacity), colorize(mask, colors)])
        captions.append(f"{sample.name} ({sample.width}x{sample.height}, {len(sample.regions)} regions)")
    shown = min(count, len(dataset.samples))
    title = f"{dataset.format} data set: {shown} of {len(dataset.samples)} images, {len(dataset.classes)} classes"
    return sheet(rows, COLUMNS, title=title, captions=captions, classes=classes, cell=cell)


def check_preview_name(out: str | Path) -> Path:
    """The preview's file name, refused unless it ends in .png (it is a PNG picture)."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise DatasetError(f"the preview is a PNG picture; {out.suffix or 'no suffix'} is another kind of file.",
                           path=out, fix=f"name the output like {out.with_suffix('.png').name}.")
    return out


def write_preview(dataset: Dataset, out: Path, count: int = 8, cell: int = 256, overwrite: bool = False) -> Path:
    """The preview as a PNG file (refusing another suffix, the data set's folder and files we did not write)."""
    out = check_preview_name(out)
    if not dataset.samples:
        raise DatasetError("the data set holds no images to preview.", path=dataset.root or "",
                           fix="check the path, or see the problems `masksmith dataset inspect` lists.")
    folder, name = OutputFolder.for_file(out, inputs=[dataset.root], overwrite=overwrite)
    picture = preview_picture(dataset, count, cell)
    return folder.save_image(name, picture.pixels, **picture.save_options())
