"""Which pixels an app works on: the classes asked for (names, comma lists, groups from a YAML file), the
masks of those classes in a model's prediction (semantic or instance), or a mask file the user already has.
The CLI and the web app share these, so `--classes paint` means the same everywhere."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from masksmith.core.errors import MasksmithError
from masksmith.core.labels import ClassMap


def read_groups(path: str | Path | None) -> dict[str, list[str]]:
    """A group file: YAML mapping name -> list of classes (or one class), e.g. `paint: [hood, front_door]`."""
    if path is None:
        return {}
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MasksmithError("does not exist.", path=path, fix="check the path of the `group` file.") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise MasksmithError(f"is not YAML ({str(exc).splitlines()[0][:100]}).", path=path,
                             fix="write it as `paint: [hood, front_door, back_door]`.") from None
    if not isinstance(data, dict):
        raise MasksmithError("is not a mapping of group names to classes.", path=path,
                             fix="write it as `paint: [hood, front_door, back_door]`.")
    groups = {}
    for name, members in data.items():
        members = [members] if isinstance(members, str) else members
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members) or not members:
            raise MasksmithError(f"group {name!r} is not a list of class names.", path=path,
                                 fix="write it as `paint: [hood, front_door, back_door]`.")
        groups[str(name)] = list(members)
    return groups


def resolve_classes(asked: Iterable[str] | None, class_names: Sequence[str], groups: dict[str, list[str]] | None = None,
                    model: str | Path | None = None, default_all: bool = False) -> list[str]:
    """The model's classes that `asked` names (each item may be a comma list and may name a group), in the
    model's order; MasksmithError naming what the model lacks, before any photo is read."""
    groups = groups or {}
    words = [w.strip() for item in (asked or []) for w in str(item).split(",") if w.strip()]
    if not words:
        if default_all:
            return list(class_names)
        raise MasksmithError("no classes given.", path=model, fix=f"give `classes`, one of: {', '.join(class_names)}.")
    wanted: list[str] = []
    unknown = []
    for word in words:
        for name in groups.get(word, [word]):
            if name not in class_names:
                unknown.append(name if word not in groups else f"{name} (in group {word})")
            elif name not in wanted:
                wanted.append(name)
    if unknown:
        raise MasksmithError(f"the model has no class {', '.join(unknown)}.", path=model,
                             fix=f"choose from: {', '.join(class_names)}"
                                 f"{'; groups: ' + ', '.join(groups) if groups else ''}.")
    return [n for n in class_names if n in wanted]


def semantic_class_mask(mask: np.ndarray, classes: ClassMap, wanted: Iterable[str]) -> np.ndarray:
    """(H, W) bool: the pixels of the wanted classes in a class-value mask."""
    return np.isin(mask, [classes.value(n) for n in set(wanted)])


def object_masks(prediction, classes: ClassMap, wanted: Iterable[str], min_pixels: int = 16,
                 split_regions: bool = True) -> list[np.ndarray]:
    """One bool mask per object of the wanted classes: each instance of an instance model's objects, or each
    connected region of a semantic mask (or, with split_regions=False, one mask of all its wanted pixels)."""
    wanted = set(wanted)
    if isinstance(prediction, np.ndarray):
        union = semantic_class_mask(prediction, classes, wanted)
        if not split_regions:
            return [union] if union.any() else []
        from masksmith.apps.paste import regions

        return regions(union, min_pixels)
    return [o.mask for o in prediction if o.label in wanted and int(o.mask.sum()) >= min_pixels]


def union_of(masks: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, bool)
    for m in masks:
        out |= m
    return out


def read_mask_file(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A user's mask file as (H, W) bool: every pixel that is not 0 (or, with an alpha channel, not
    transparent) is in the mask. `shape`: the photo's (H, W), which the mask must match."""
    from masksmith.core.images import open_image

    path = Path(path)
    im = open_image(path)
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        mask = np.asarray(im.convert("RGBA"))[..., 3] > 0
    else:
        pixels = np.asarray(im)
        mask = pixels.reshape(pixels.shape[0], pixels.shape[1], -1).any(axis=2)
    if shape is not None and mask.shape != tuple(shape):
        raise MasksmithError(f"the mask is {mask.shape[1]}x{mask.shape[0]} but the photo is {shape[1]}x{shape[0]}.",
                             path=path, fix="use a mask drawn on this photo, at its size.")
    if not mask.any():
        raise MasksmithError("the mask is empty (every pixel is 0).", path=path,
                             fix="mark the part with non-zero pixels.")
    return mask
