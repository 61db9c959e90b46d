"""The model file: one self-describing file with weights, architecture, classes, colours and preprocessing.

Stored with torch.save as plain containers and tensors, and read back with weights_only=True, so opening a
model file never runs code from it. Written atomically: an interrupted save never leaves a broken model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from masksmith.core.errors import ModelError
from masksmith.core.labels import ClassMap

if TYPE_CHECKING:
    import torch
    from torch import nn

FORMAT = "masksmith-model"
VERSION = 1
SUFFIX = ".masksmith"


@dataclass
class ModelArtifact:
    task: str  # "semantic" or "instance"
    model: dict[str, Any]  # architecture config (ModelConfig.to_dict() for semantic models)
    # the class map as stored in the file: `classes` without the background, `colors` with it first; use
    # `class_map` (and `class_map_fields` to write one) rather than offsetting these by hand
    classes: list[str]
    colors: list[list[int]]
    preprocessing: dict[str, Any]  # mean, std, input_mode ("resize"), size [h, w]
    flip_pairs: list[list[str]] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def class_map(self) -> ClassMap:
        """The model's classes, their mask values and colours (`classes` and `colors` as one object)."""
        return ClassMap.from_palette(self.classes, self.colors)

    @property
    def input_size(self) -> tuple[int, int]:
        h, w = self.preprocessing["size"]
        return int(h), int(w)


def save_artifact(artifact: ModelArtifact, path: str | Path) -> Path:
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **asdict(artifact)}
    payload["state_dict"] = {k: v.detach().cpu().contiguous() for k, v in artifact.state_dict.items()}
    from masksmith.core.outputs import atomic_save

    return atomic_save(path, lambda tmp: torch.save(payload, tmp))


def load_artifact(path: str | Path) -> ModelArtifact:
    import torch

    path = Path(path)
    if path.is_dir() and (path / f"model{SUFFIX}").exists():
        path = path / f"model{SUFFIX}"  # a run folder
    if not path.is_file():
        raise ModelError("the model file does not exist.", path=path,
                         fix=f"pass the model{SUFFIX} file (or the run folder) that `masksmith train` wrote.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise ModelError(f"cannot be read as a masksmith model ({type(exc).__name__}).", path=path,
                         fix="pass a model file written by `masksmith train`; it may be truncated.") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError("is not a masksmith model file.", path=path,
                         fix=f"pass the model{SUFFIX} file that `masksmith train` wrote.")
    if payload.get("version", 0) > VERSION:
        raise ModelError(f"was written by a newer masksmith (format {payload['version']}).", path=path,
                         fix="upgrade masksmith.")
    fields = {k: payload[k] for k in ModelArtifact.__dataclass_fields__ if k in payload}
    try:
        artifact = ModelArtifact(**fields)
    except TypeError as exc:
        raise ModelError(f"is incomplete ({exc}).", path=path) from None
    problem = artifact_problem(artifact)
    if problem:
        raise ModelError(f"{problem}; the file is damaged or was not written by masksmith.", path=path,
                         fix="use the model.masksmith that `masksmith train` wrote, or train again.")
    return artifact


MAX_INPUT_SIDE = 8192  # the largest training size TrainConfig takes
MAX_CLASSES = 10_000
INPUT_MODES = ("resize", "scale", "instance")


def _number(value: Any) -> bool:
    import math

    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def artifact_problem(a: ModelArtifact) -> str | None:
    """What is wrong with a model file's fields (types, sizes, the input size, colours, flip pairs naming
    its classes), or None; checked when the file is opened, before anything is built or allocated."""
    if not isinstance(a.task, str) or a.task not in ("semantic", "instance"):
        return f"task is {a.task!r}, not semantic or instance"
    if not isinstance(a.model, dict):
        return f"model is a {type(a.model).__name__}, not a mapping"
    if not isinstance(a.classes, list) or not 1 <= len(a.classes) <= MAX_CLASSES or \
            not all(isinstance(c, str) and c for c in a.classes):
        return f"classes must be a list of 1 to {MAX_CLASSES} names, not {a.classes!r:.80}"
    if len(set(a.classes)) != len(a.classes):
        return "classes repeats a name"
    if not isinstance(a.colors, list) or len(a.colors) != len(a.classes) + 1 or not all(
            isinstance(c, list | tuple) and len(c) == 3 and all(_whole(v, 0, 255) for v in c) for c in a.colors):
        return f"colors must be {len(a.classes) + 1} [r, g, b] triples of 0-255 (background first)"
    p = a.preprocessing
    if not isinstance(p, dict):
        return f"preprocessing is a {type(p).__name__}, not a mapping"
    for key in ("mean", "std"):
        v = p.get(key)
        if not (isinstance(v, list) and len(v) == 3 and all(_number(x) for x in v)):
            return f"preprocessing {key} must be three numbers, not {v!r:.60}"
    if not all(x > 0 for x in p["std"]):
        return f"preprocessing std {p['std']} must be above 0"
    size = p.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(_whole(v, 1, 1 << 62) for v in size)):
        return f"preprocessing size must be [height, width] in whole pixels, not {size!r:.60}"
    if max(size) > MAX_INPUT_SIDE:
        return (f"preprocessing asks for {size[1]}x{size[0]} inputs, more than the {MAX_INPUT_SIDE}x"
                f"{MAX_INPUT_SIDE} masksmith trains at")
    mode = p.get("input_mode", "resize")
    if mode not in INPUT_MODES:
        return f"preprocessing input_mode {mode!r} is not one of {', '.join(INPUT_MODES)}"
    if mode == "scale" and not (_number(p.get("scale")) and 0 < p["scale"] <= 1):
        return f"preprocessing scale {p.get('scale')!r} must be a number above 0 and at most 1"
    if "max_size" in p and not _whole(p["max_size"], 1, MAX_INPUT_SIDE):
        return f"preprocessing max_size {p['max_size']!r} must be a whole number of 1 to {MAX_INPUT_SIDE}"
    if not isinstance(a.flip_pairs, list) or not all(
            isinstance(pair, list | tuple) and len(pair) == 2 for pair in a.flip_pairs):
        return f"flip_pairs must be a list of [left, right] class pairs, not {a.flip_pairs!r:.60}"
    for left, right in a.flip_pairs:
        for name in (left, right):
            if name not in a.classes:
                return f"flip pair [{left!r}, {right!r}] names {name!r}, which is not one of its classes"
    if not isinstance(a.training, dict):
        return f"training is a {type(a.training).__name__}, not a mapping"
    if not isinstance(a.state_dict, dict):
        return "state_dict must map names to tensors"
    if a.state_dict:
        import torch

        if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in a.state_dict.items()):
            return "state_dict must map names to tensors"
    return None


def build_network(artifact: ModelArtifact) -> nn.Module:
    """The network the artifact describes, with its weights loaded, in eval mode."""
    from masksmith.models.registry import get_model

    net = get_model(str(artifact.model.get("arch", "")), artifact.task).build(artifact)
    try:
        net.load_state_dict(artifact.state_dict, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"weights do not fit the described architecture ({str(exc)[:300]}).") from None
    return net.eval()


def class_map_fields(class_map: ClassMap) -> dict[str, Any]:
    """The `classes` and `colors` fields of a ModelArtifact for `class_map`."""
    return {"classes": list(class_map.names), "colors": [list(c) for c in class_map.palette()]}
