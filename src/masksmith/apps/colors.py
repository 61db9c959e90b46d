"""The colours of a part: "what colour is this car?".

K-means (masksmith.apps.cluster) on the pixels inside a mask only; each colour with its share of the mask and
the nearest CSS colour name, nearest in CIELAB (the distance people see), so a pure red sprite is "red" and a
dark red paint "darkred" or "maroon".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from masksmith.apps.cluster import cluster_pixels, hex_color
from masksmith.apps.colorspace import check_inputs, css_colors, to_lab
from masksmith.core.errors import MasksmithError


@dataclass
class DominantColor:
    rgb: tuple[int, int, int]
    hex: str
    share: float  # of the mask's pixels
    name: str  # the nearest CSS colour name

    def to_dict(self) -> dict:
        return {**asdict(self), "rgb": list(self.rgb)}


@lru_cache(maxsize=1)
def _css_table() -> tuple[list[str], np.ndarray]:
    names, values = [], []
    for name, rgb in sorted(css_colors().items()):
        if "grey" in name:  # the same colours as the "gray" spellings
            continue
        names.append(name)
        values.append(rgb)
    return names, to_lab(np.asarray(values, np.uint8))


def nearest_color_name(rgb) -> str:
    """The CSS colour name nearest to `rgb` in CIELAB."""
    names, table = _css_table()
    lab = to_lab(np.asarray(rgb, np.uint8).reshape(1, 3))[0]
    return names[int(np.argmin(((table - lab) ** 2).sum(1)))]


def dominant_colors(image: np.ndarray, mask: np.ndarray, k: int = 3, seed: int = 0,
                    sample: int = 50_000) -> list[DominantColor]:
    """The k dominant colours inside `mask` (fewer when it holds fewer distinct colours), largest first."""
    image, mask = check_inputs(image, mask)
    if not mask.any():
        raise MasksmithError("the mask is empty; there are no colours to name.")
    _, colors, shares = cluster_pixels(image[mask], k, seed, sample)
    return [DominantColor(tuple(int(c) for c in rgb), hex_color(rgb), round(float(s), 4), nearest_color_name(rgb))
            for rgb, s in zip(colors, shares, strict=True)]


def photo_colors(source, k: int = 3, seed: int = 0) -> list[dict]:
    """For each photo of a `MaskSource` (folders expanded): its path, the classes asked for, how many pixels
    they cover and their k dominant colours (none when no pixel of them was found)."""
    from masksmith.core.images import read_image
    from masksmith.infer.batch import expand_inputs

    report = []
    for path in expand_inputs(source.photos):
        image = read_image(path)
        part = source.part(image)
        found = dominant_colors(image, part, k, seed) if part.any() else []
        report.append({"image": str(path), "classes": source.wanted, "pixels": int(part.sum()),
                       "colors": [c.to_dict() for c in found]})
    return report
