"""The class map: which classes there are, the mask value of each, and the colour each is drawn in.

One object owns what used to be re-derived by hand in many places (`colors[1:]`, `index(name) + 1`,
`classes[i - 1]`): mask value 0 is the background, values 1..N are the classes in order, 255 is void (pixels
that are neither learned nor scored, the Pascal VOC convention). Data sets, model files, predictions, pictures
and reports all speak through it (the idea of Detectron2's MetadataCatalog: names and colours in one object).

The default palette lives here too, so every picture of every floor draws a class in the same colour.
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from masksmith.core.errors import MasksmithError

RGB = tuple[int, int, int]

BACKGROUND = "_background_"  # how annotation tools (LabelMe, COCO Annotator) name the background class
BACKGROUND_LABEL = "background"  # how masksmith shows value 0 in tables and legends
# names that mean "value 0 is the background" in a class list (classes.txt, class_names)
BACKGROUND_NAMES = frozenset({BACKGROUND, "background", "__background__", "_background", "bg"})
IGNORE_INDEX = 255  # value of "void" / "don't care" pixels in semantic masks (the Pascal VOC convention)
VOID_LABEL = "void"
MAX_CLASSES = 254  # class values 1..254 fit a uint8 mask beside background 0 and void 255
BACKGROUND_COLOR: RGB = (0, 0, 0)
VOID_COLOR: RGB = (224, 224, 192)  # what the VOC palette draws void (255) in

# The default class colours, a categorical palette in the manner of Glasbey et al. (2007): each colour is the
# bright sRGB colour farthest in CIELAB from all the colours before it (greedy farthest-point selection over a
# grid of colours with L* 55-92 and chroma >= 25, away from white and the void cream), so the first k colours
# are as far apart as k colours can be: 18 classes are at least 35 CIELAB units apart (the previous hand-made
# list had five blues within 22). Bright, so they read on dark photos (overlays add a dark outline for light
# ones). The first, a saturated magenta, stands out on dark and light photos alike (contrast 6.7 against
# black, 3.2 against white) and is rare in real scenes: a single class gets it.
CLASS_PALETTE: tuple[RGB, ...] = tuple(
    (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)) for h in (
        "FF38C8", "00FF00", "FF2D00", "0087FF", "FFE100", "00A54B", "D26978", "0096B4", "C3780F", "00FFF0",
        "F0B4FF", "879600", "B469FF", "A5FF69", "FF1E5A", "E100FF", "699669", "FFD278", "A5F0A5", "00FF96"))


def class_color(value: int) -> RGB:
    """The default colour of class value `value` (1-based; 0 is background, black). Beyond the 20 listed
    colours, golden-ratio hues at alternating saturation, all bright and all different (colour masks need
    that)."""
    if value <= 0:
        return BACKGROUND_COLOR
    if value <= len(CLASS_PALETTE):
        return CLASS_PALETTE[value - 1]
    return _extra_colors()[value - len(CLASS_PALETTE) - 1]


_EXTRA: list[RGB] = []


def _extra_colors() -> list[RGB]:
    if not _EXTRA:
        taken = {BACKGROUND_COLOR, VOID_COLOR, *CLASS_PALETTE}
        k = 0
        while len(_EXTRA) < MAX_CLASSES - len(CLASS_PALETTE):
            hue = (0.9 + 0.61803398875 * k) % 1.0
            saturation, value = ((0.95, 1.0), (0.6, 1.0), (0.85, 0.85))[k % 3]
            color = tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, saturation, value))
            if color not in taken:
                taken.add(color)  # type: ignore[arg-type]
                _EXTRA.append(color)  # type: ignore[arg-type]
            k += 1
    return _EXTRA


def voc_color(index: int) -> RGB:
    """The Pascal VOC colour of class `index` (0 is black): the palette every segmentation tool knows."""
    r = g = b = 0
    c = index
    for bit in range(8):
        r |= ((c >> 0) & 1) << (7 - bit)
        g |= ((c >> 1) & 1) << (7 - bit)
        b |= ((c >> 2) & 1) << (7 - bit)
        c >>= 3
    return (r, g, b)


def voc_palette() -> list[int]:
    """A flat 768-entry palette for PIL 'P' images, index 255 drawn in VOC's cream colour for void."""
    pal: list[int] = []
    for i in range(256):
        pal.extend(voc_color(i))
    pal[IGNORE_INDEX * 3: IGNORE_INDEX * 3 + 3] = list(VOID_COLOR)
    return pal


def _rgb(value: Any, name: str) -> RGB:
    if not (isinstance(value, list | tuple) and len(value) == 3 and all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)):
        raise MasksmithError(f"class {name!r}: colour {value!r:.40} is not three values 0-255.",
                             fix="give the colour as [r, g, b] with each value 0-255, or as #rrggbb.")
    return (int(value[0]), int(value[1]), int(value[2]))


@dataclass(frozen=True)
class ClassMap:
    """The classes in mask-value order (`names[i]` has value i + 1), one colour each; value 0 is the
    background and 255 void. Immutable: `recolored` returns a new map."""

    names: tuple[str, ...]
    colors: tuple[RGB, ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.colors):
            raise MasksmithError(f"{len(self.names)} class names but {len(self.colors)} colours.",
                                 fix="give one colour per class.")
        if len(self.names) > MAX_CLASSES:
            raise MasksmithError(f"{len(self.names)} classes are more than the {MAX_CLASSES} a mask can hold.",
                                 fix="merge classes or split the data set.")
        seen: set[str] = set()
        for name in self.names:
            if not isinstance(name, str) or not name:
                raise MasksmithError(f"a class name is {name!r:.40}; every class needs a name.")
            if name in seen:
                raise MasksmithError(f"class {name!r} is named twice.", fix="give each class one name.")
            seen.add(name)

    # -- building ----------------------------------------------------------------------------------------
    @classmethod
    def from_names(cls, names: Iterable[str], colors: Mapping[str, Any] | Sequence[Any] | None = None
                   ) -> ClassMap:
        """Classes `names` (values 1..N in this order; the tools' `_background_` class is dropped), coloured
        by `colors` (a {name: rgb} mapping or one colour per name) where given, else by the default palette."""
        kept = [n for n in names if n != BACKGROUND]
        if colors is not None and not isinstance(colors, Mapping):
            colors = dict(zip(kept, colors, strict=False))
        given = colors or {}
        return cls(tuple(kept), tuple(_rgb(given[n], n) if n in given else class_color(i + 1)
                                      for i, n in enumerate(kept)))

    @classmethod
    def from_values(cls, named: Mapping[int, str], colors: Mapping[str, Any] | None = None) -> ClassMap:
        """Classes from a {mask value: name} map (values 1..N; a value it skips is named class_<value>)."""
        top = max((v for v in named if v > 0), default=0)
        return cls.from_names([named.get(v, f"class_{v}") for v in range(1, top + 1)], colors)

    @classmethod
    def from_palette(cls, names: Sequence[str], palette: Sequence[Any]) -> ClassMap:
        """From names without background and colours with the background first (the model file's layout)."""
        if len(palette) != len(names) + 1:
            raise MasksmithError(f"{len(names)} classes need {len(names) + 1} colours (background first), "
                                 f"not {len(palette)}.")
        return cls(tuple(names), tuple(_rgb(c, n) for n, c in zip(names, palette[1:], strict=True)))

    def recolored(self, colors: Mapping[str, Any]) -> ClassMap:
        """The same classes with the named ones in other colours; a name that is not a class is refused."""
        unknown = sorted(set(colors) - set(self.names))
        if unknown:
            raise MasksmithError(f"class colours name classes that are not here: {', '.join(unknown)}.",
                                 fix=f"use the class names: {', '.join(self.names)}.")
        return ClassMap(self.names, tuple(_rgb(colors[n], n) if n in colors else c
                                          for n, c in zip(self.names, self.colors, strict=True)))

    # -- reading -----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self):
        return iter(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    @property
    def num_values(self) -> int:
        """Mask values in use: the background and every class (what a network predicts scores for)."""
        return len(self.names) + 1

    @property
    def values(self) -> range:
        """The class values, 1..N."""
        return range(1, len(self.names) + 1)

    def value(self, name: str) -> int:
        """The mask value of class `name`."""
        try:
            return self.names.index(name) + 1
        except ValueError:
            raise MasksmithError(f"there is no class {name!r}.",
                                 fix=f"use one of: {', '.join(self.names)}.") from None

    def name(self, value: int) -> str:
        """The name of mask value `value` (0: background, 255: void)."""
        if value == 0:
            return BACKGROUND_LABEL
        if value == IGNORE_INDEX:
            return VOID_LABEL
        if 1 <= value <= len(self.names):
            return self.names[value - 1]
        raise MasksmithError(f"mask value {value} is not a class (values 1-{len(self.names)} are).")

    def color(self, name: str) -> RGB:
        return self.colors[self.value(name) - 1]

    def index(self) -> dict[str, int]:
        """{class name: mask value}, for rasterising regions into a mask."""
        return {n: i + 1 for i, n in enumerate(self.names)}

    def colors_by_name(self) -> dict[str, RGB]:
        return dict(zip(self.names, self.colors, strict=True))

    def palette(self) -> list[RGB]:
        """One colour per mask value 0..N, the background (black) first: what colours a class-index mask."""
        return [BACKGROUND_COLOR, *self.colors]

    def labels(self) -> list[str]:
        """One label per mask value 0..N, the background first: rows of a confusion matrix or score table."""
        return [BACKGROUND_LABEL, *self.names]

    def names_of(self, values: Iterable[int]) -> list[str]:
        """The class names of the given mask values, in their order, skipping background, void and values
        that are not classes."""
        return [self.names[v - 1] for v in values if 1 <= v <= len(self.names)]

    def mirrored(self, pairs: Iterable[Sequence[str]]) -> list[int]:
        """The value each mask value 0..N takes after a horizontal flip, given left/right class pairs (a
        flipped left door is a right door)."""
        perm = list(range(self.num_values))
        for a, b in pairs:
            perm[self.value(a)], perm[self.value(b)] = self.value(b), self.value(a)
        return perm

    def to_dict(self) -> dict[str, Any]:
        return {"classes": list(self.names), "colors": [list(c) for c in self.palette()]}
