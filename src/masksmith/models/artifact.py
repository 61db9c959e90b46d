"""The model file: one self-describing file with weights, architecture, classes, colours and preprocessing.

Stored with torch.save as plain containers and tensors, and read back with weights_only=True, so opening a
model file never runs code from it. Written atomically: an interrupted save never leaves a broken model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from masksmith.core.errors import ModelError
from masksmith.core.labels import MAX_CLASSES, ClassMap
from masksmith.models.checks import (
    instance_model_problem,
    preprocessing_problem,
    semantic_model_problem,
    shown,
    training_problem,
    whole,
)

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
    return artifact_from_payload(payload, path)


REQUIRED = ("task", "model", "classes", "colors", "preprocessing")


def artifact_from_payload(payload: Any, path: str | Path | None = None, *, error: type[ModelError] = ModelError,
                          weights: bool = True) -> ModelArtifact:
    """The ModelArtifact a model file's payload describes, every field checked (`artifact_problem`) before
    anything is built. ONNX metadata comes through here too, with `weights=False` (an ONNX file carries its
    weights in the graph) and its own error type."""
    if weights:
        fix = "use the model.masksmith that `masksmith train` wrote, or train again."
    else:
        fix = "export the model again with `masksmith export`."
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise error("is not a masksmith model file.", path=path,
                    fix=f"pass the model{SUFFIX} file that `masksmith train` wrote." if weights else fix)
    version = payload.get("version")
    if not whole(version, 1, 1 << 31):
        raise error(f"version is {shown(version)}, not a model format number (a whole number, {VERSION} today); "
                    "the file is damaged or was not written by masksmith.", path=path, fix=fix)
    if version > VERSION:
        raise error(f"was written by a newer masksmith (format {version}).", path=path, fix="upgrade masksmith.")
    missing = [k for k in REQUIRED if k not in payload]
    if missing:
        raise error(f"is incomplete (no {', '.join(missing)}).", path=path, fix=fix)
    names = [k for k in ModelArtifact.__dataclass_fields__ if k in payload and (weights or k != "state_dict")]
    artifact = ModelArtifact(**{k: payload[k] for k in names})
    problem = artifact_problem(artifact)
    if problem:
        raise error(f"{problem}; the file is damaged or was not written by masksmith.", path=path, fix=fix)
    return artifact


def artifact_problem(a: ModelArtifact) -> str | None:
    """What is wrong with a model file's fields, or None: every field's type and range (models/checks.py: the
    task, the architecture dict of that task, classes and colours, preprocessing and the input size, flip pairs
    naming its classes, the training record, the weights). Checked when a model file or an ONNX file's
    metadata is opened, before anything is built or allocated; what the network would cost at its input size is
    `models/footprint.py`, checked before it is built."""
    if not isinstance(a.task, str) or a.task not in ("semantic", "instance"):
        return f"task is {shown(a.task)}, not semantic or instance"
    if not isinstance(a.model, dict):
        return f"model is a {type(a.model).__name__}, not a mapping"
    if not isinstance(a.classes, list) or not 1 <= len(a.classes) <= MAX_CLASSES or \
            not all(isinstance(c, str) and c for c in a.classes):
        return f"classes must be a list of 1 to {MAX_CLASSES} names, not {shown(a.classes, 80)}"
    if len(set(a.classes)) != len(a.classes):
        return "classes repeats a name"
    if not isinstance(a.colors, list) or len(a.colors) != len(a.classes) + 1 or not all(
            isinstance(c, list | tuple) and len(c) == 3 and all(whole(v, 0, 255) for v in c) for c in a.colors):
        return f"colors must be {len(a.classes) + 1} [r, g, b] triples of 0-255 (background first)"
    problem = preprocessing_problem(a.preprocessing)
    if problem:
        return problem
    mode = a.preprocessing.get("input_mode", "resize")
    if a.task == "semantic":
        if mode not in ("resize", "scale"):
            return f"preprocessing input_mode {mode!r} is not one of resize, scale (a semantic model)"
        problem = semantic_model_problem(a.model, len(a.classes))
    else:
        problem = instance_model_problem(a.model)
    if problem:
        return problem
    if not isinstance(a.flip_pairs, list) or not all(
            isinstance(pair, list | tuple) and len(pair) == 2 for pair in a.flip_pairs):
        return f"flip_pairs must be a list of [left, right] class pairs, not {shown(a.flip_pairs)}"
    for left, right in a.flip_pairs:
        for name in (left, right):
            if not isinstance(name, str) or name not in a.classes:
                return f"flip pair [{shown(left)}, {shown(right)}] names {shown(name)}, which is not one of its classes"
        if left == right:
            return f"flip pair [{left!r}, {right!r}] names one class twice"
    problem = training_problem(a.training)
    if problem:
        return problem
    if not isinstance(a.state_dict, dict):
        return "state_dict must map names to tensors"
    if a.state_dict:
        import torch

        if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in a.state_dict.items()):
            return "state_dict must map names to tensors"
    return None


def build_network(artifact: ModelArtifact) -> nn.Module:
    """The network the artifact describes, with its weights loaded, in eval mode. What it would cost is
    checked first, on the meta device (models/footprint.py): a description whose weights do not match the file,
    or whose one image would need more memory than this machine has, is refused before anything is allocated."""
    from masksmith.models.footprint import check_footprint
    from masksmith.models.registry import get_model

    check_footprint(artifact)
    net = get_model(str(artifact.model.get("arch", "")), artifact.task).build(artifact)
    try:
        net.load_state_dict(artifact.state_dict, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"weights do not fit the described architecture ({str(exc)[:300]}).") from None
    return net.eval()


def class_map_fields(class_map: ClassMap) -> dict[str, Any]:
    """The `classes` and `colors` fields of a ModelArtifact for `class_map`."""
    return {"classes": list(class_map.names), "colors": [list(c) for c in class_map.palette()]}
