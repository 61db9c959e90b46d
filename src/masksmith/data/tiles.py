"""Cut images and masks into patches of a fixed size, and stitch per-patch predictions back.

Remainder handling, when the image is not a multiple of the tile size:
- "pad": the last row/column of tiles runs past the border; the padding is black in the image and marked
  void (ignored) in the mask, and is cut away again when stitching. No pixel is seen twice.
- "shift": the last row/column is moved back inside the image, overlapping its neighbour; stitching lets the
  later tile win in the overlap. No padding.
- "drop": the remainder is left out (as many tutorials do); stitching leaves it as background.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from masksmith.data.rasterize import mask_to_rle, sample_rles
from masksmith.data.schema import Dataset, Region, Sample
from masksmith.errors import DatasetError

REMAINDERS = ("pad", "shift", "drop")


@dataclass(frozen=True)
class Tile:
    source: str  # sample name of the full image
    x: int
    y: int
    size: int

    @property
    def name(self) -> str:
        stem, _, _ = self.source.rpartition(".")
        return f"{stem or self.source}_y{self.y}_x{self.x}.png"


def tile_origins(length: int, tile: int, remainder: str) -> list[int]:
    """Start offsets along one axis."""
    if tile <= 0:
        raise DatasetError(f"tile size {tile} must be positive.", fix="use --size 256 or similar.")
    if remainder not in REMAINDERS:
        raise DatasetError(f"unknown remainder mode {remainder!r}.", fix=f"use one of {', '.join(REMAINDERS)}.")
    full = list(range(0, length - tile + 1, tile))
    rest = length - (full[-1] + tile if full else 0)
    if rest > 0:
        if remainder == "pad":
            full.append(full[-1] + tile if full else 0)
        elif remainder == "shift":
            full.append(max(length - tile, 0))
    return full


def tile_grid(width: int, height: int, tile: int, remainder: str = "pad") -> list[tuple[int, int]]:
    """(x, y) of every tile's top-left corner, row by row."""
    return [(x, y) for y in tile_origins(height, tile, remainder) for x in tile_origins(width, tile, remainder)]


def cut(array: np.ndarray, x: int, y: int, tile: int, fill: int = 0) -> np.ndarray:
    """The tile at (x, y) of an (H, W[, C]) array, padded with `fill` past the border."""
    out = np.full((tile, tile, *array.shape[2:]), fill, dtype=array.dtype)
    part = array[y:y + tile, x:x + tile]
    out[: part.shape[0], : part.shape[1]] = part
    return out


def stitch(tiles: list[tuple[int, int, np.ndarray]], width: int, height: int, fill: int = 0) -> np.ndarray:
    """Paste (x, y, tile) patches into one (H, W[, C]) array; later tiles win where they overlap."""
    if not tiles:
        raise DatasetError("there are no tiles to stitch.")
    first = tiles[0][2]
    out = np.full((height, width, *first.shape[2:]), fill, dtype=first.dtype)
    for x, y, t in tiles:
        h = min(t.shape[0], height - y)
        w = min(t.shape[1], width - x)
        out[y:y + h, x:x + w] = t[:h, :w]
    return out


def tile_dataset(dataset: Dataset, tile: int, remainder: str = "pad") -> tuple[Dataset, dict[str, Any]]:
    """A new data set of tiles (each with its own image and masks), and a manifest to stitch them back.

    Objects cut by a tile border become one instance per tile that they reach, kept as masks.
    """
    tiles_out: list[Sample] = []
    manifest: dict[str, Any] = {"tile_size": tile, "remainder": remainder, "sources": {}, "tiles": []}
    for sample in dataset.samples:
        image = sample.load_image()
        h, w = image.shape[:2]
        masks = [mask_utils.decode(r).astype(bool) for r in sample_rles(sample)] if sample.regions else []
        ignore = mask_utils.decode(sample.ignore_rle).astype(bool) if sample.ignore_rle else None
        manifest["sources"][sample.name] = [w, h]
        for x, y in tile_grid(w, h, tile, remainder):
            t = Tile(sample.name, x, y, tile)
            regions = []
            for region, m in zip(sample.regions, masks, strict=True):
                part = cut(m, x, y, tile)
                if part.any():
                    regions.append(Region(region.label, rle=mask_to_rle(part), iscrowd=region.iscrowd,
                                          is_instance=region.is_instance, attributes=dict(region.attributes)))
            void = np.zeros((tile, tile), bool)
            void[min(h - y, tile):, :] = True  # padding past the border is void
            void[:, min(w - x, tile):] = True
            if ignore is not None:
                void |= cut(ignore, x, y, tile)
            buf = io.BytesIO()
            Image.fromarray(cut(image, x, y, tile)).save(buf, format="PNG")
            tiles_out.append(Sample(name=t.name, image_path=None, width=tile, height=tile, regions=regions,
                                    ignore_rle=mask_to_rle(void) if void.any() else None,
                                    image_data=buf.getvalue()))
            manifest["tiles"].append({"name": t.name, "source": sample.name, "x": x, "y": y})
    return Dataset(classes=list(dataset.classes), samples=tiles_out, format=dataset.format), manifest


def write_manifest(manifest: dict[str, Any], out: Path) -> Path:
    path = out / "tiles.json"
    path.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return path


def stitch_folder(manifest_path: Path, predictions: Path, out: Path) -> list[Path]:
    """Stitch per-tile mask PNGs (named as the tiles) in `predictions` into full-size masks in `out`."""
    try:
        manifest = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
        sources, tiles = manifest["sources"], manifest["tiles"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"is not a tiles.json written by `masksmith dataset tile` ({exc}).",
                           path=manifest_path) from None
    by_source: dict[str, list[tuple[int, int, np.ndarray]]] = {}
    for t in tiles:
        file = predictions / t["name"]
        if not file.exists():
            file = predictions / Path(t["name"]).name
        try:
            with Image.open(file) as im:
                arr = np.asarray(im)
        except (OSError, ValueError):
            raise DatasetError("the tile's mask is missing or unreadable.", path=file,
                               fix="predict every tile listed in tiles.json first.") from None
        by_source.setdefault(t["source"], []).append((t["x"], t["y"], arr))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for source, parts in by_source.items():
        w, h = sources[source]
        full = stitch(parts, w, h)
        target = out / (Path(source).with_suffix(".png").as_posix().replace("/", "__"))
        Image.fromarray(full).save(target)
        written.append(target)
    return written
