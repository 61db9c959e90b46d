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

from masksmith.core.errors import DatasetError, MasksmithError
from masksmith.core.images import MAX_PIXELS, open_image
from masksmith.core.outputs import OutputFolder, as_output_folder
from masksmith.core.paths import resolve_under, safe_relative
from masksmith.data.rasterize import mask_to_rle, sample_rles
from masksmith.data.schema import Dataset, Region, Sample

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
        raise DatasetError(f"tile size {tile} must be positive.", fix="use `size=256` or similar.")
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
    # root: the source's folder, so writers of the tiles refuse to write into the source data set
    return Dataset(classes=list(dataset.classes), samples=tiles_out, format=dataset.format,
                   root=dataset.root), manifest


def write_manifest(manifest: dict[str, Any], out: Path | OutputFolder) -> Path:
    return as_output_folder(out).write_text("tiles.json", json.dumps(manifest, indent=1))


def read_manifest(path: Path) -> tuple[dict[str, tuple[int, int]], list[dict[str, Any]]]:
    """(source name -> (width, height), tiles) of a tiles.json, checked field by field."""
    bad = "is not a tiles.json written by `masksmith dataset tile`"
    fix = "pass the tiles.json that `masksmith dataset tile` wrote, unchanged."
    try:
        manifest = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError("does not exist.", path=path, fix=fix) from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{bad} ({exc}).", path=path, fix=fix) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("sources"), dict) or \
            not isinstance(manifest.get("tiles"), list):
        raise DatasetError(f"{bad}: it needs 'sources' and 'tiles'.", path=path, fix=fix)
    sources: dict[str, tuple[int, int]] = {}
    for name, size in manifest["sources"].items():
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                  and 0 < v <= 100_000 for v in size)):
            raise DatasetError(f"{bad}: source {name!r} has size {size!r:.40}, not [width, height].", path=path,
                               fix=fix)
        if size[0] * size[1] > MAX_PIXELS:
            raise DatasetError(f"{bad}: source {name!r} is {size[0]}x{size[1]}, more than the "
                               f"{MAX_PIXELS // 1_000_000} megapixels masksmith stitches.", path=path, fix=fix)
        sources[name] = (size[0], size[1])
    tiles = manifest["tiles"]
    for k, t in enumerate(tiles):
        ok = isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("source"), str) and \
            t["source"] in sources and all(isinstance(t.get(key), int) and not isinstance(t[key], bool) and
                                           t[key] >= 0 for key in ("x", "y"))
        if not ok:
            raise DatasetError(f"{bad}: tile {k + 1} ({str(t)[:60]}) lacks a name, a listed source or x/y.",
                               path=path, fix=fix)
        w, h = sources[t["source"]]
        if t["x"] >= w or t["y"] >= h:
            raise DatasetError(f"{bad}: tile {k + 1} ({t['name']!r:.60}) starts at ({t['x']}, {t['y']}), outside "
                               f"its {w}x{h} source {t['source']!r:.60}.", path=path, fix=fix)
    return sources, tiles


def stitch_folder(manifest_path: Path, predictions: Path, out: Path | OutputFolder) -> list[Path]:
    """Stitch per-tile mask PNGs (named as the tiles) in `predictions` into full-size masks in `out`."""
    sources, tiles = read_manifest(manifest_path)
    folder = as_output_folder(out, inputs=[predictions])
    by_source: dict[str, list[tuple[int, int, np.ndarray]]] = {}
    for t in tiles:
        file = resolve_under(predictions, t["name"], flatten=True, what="tile name")
        if not file.exists():
            file = predictions / file.name
        try:
            arr = np.asarray(open_image(file, orient=False))
        except MasksmithError:
            raise DatasetError("the tile's mask is missing or unreadable.", path=file,
                               fix="predict every tile listed in tiles.json first.") from None
        first = next((a for _, _, a in by_source.get(t["source"], [])), arr)
        if arr.ndim not in (2, 3) or arr.shape[2:] != first.shape[2:] or arr.dtype != first.dtype:
            raise DatasetError(f"the tile's mask is {arr.dtype} {'x'.join(map(str, arr.shape))}, unlike the other "
                               f"tiles of {t['source']!r:.60} ({first.dtype} {'x'.join(map(str, first.shape))}).",
                               path=file, fix="predict every tile with the same model and write the masks the "
                                               "same way.")
        by_source.setdefault(t["source"], []).append((t["x"], t["y"], arr))
    written = []
    for source, parts in by_source.items():
        w, h = sources[source]
        full = stitch(parts, w, h)
        name = safe_relative(source, what="source name")
        written.append(folder.save_image(Path(name).with_suffix(".png").as_posix().replace("/", "__"), full))
    return written
