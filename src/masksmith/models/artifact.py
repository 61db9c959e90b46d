"""The model file: one self-describing file with weights, architecture, classes, colours and preprocessing.

Stored with torch.save as plain containers and tensors, and read back with weights_only=True, so opening a
model file never runs code from it. Written atomically: an interrupted save never leaves a broken model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from masksmith.errors import ModelError

FORMAT = "masksmith-model"
VERSION = 1
SUFFIX = ".masksmith"


@dataclass
class ModelArtifact:
    task: str  # "semantic" or "instance"
    model: dict[str, Any]  # architecture config (ModelConfig.to_dict() for semantic models)
    classes: list[str]  # without background
    colors: list[list[int]]  # background first
    preprocessing: dict[str, Any]  # mean, std, input_mode ("resize"), size [h, w]
    flip_pairs: list[list[str]] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def input_size(self) -> tuple[int, int]:
        h, w = self.preprocessing["size"]
        return int(h), int(w)


def save_artifact(artifact: ModelArtifact, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **asdict(artifact)}
    payload["state_dict"] = {k: v.detach().cpu().contiguous() for k, v in artifact.state_dict.items()}
    from masksmith.outputs import atomic_save

    return atomic_save(path, lambda tmp: torch.save(payload, tmp))


def load_artifact(path: str | Path) -> ModelArtifact:
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
        return ModelArtifact(**fields)
    except TypeError as exc:
        raise ModelError(f"is incomplete ({exc}).", path=path) from None


def build_network(artifact: ModelArtifact) -> nn.Module:
    """The network the artifact describes, with its weights loaded, in eval mode."""
    if artifact.task == "semantic":
        from masksmith.models.registry import ModelConfig, SegmentationNet, build_model

        config = ModelConfig.from_dict(artifact.model)
        net = SegmentationNet(build_model(config, pretrained=False), tuple(artifact.preprocessing["mean"]),
                              tuple(artifact.preprocessing["std"]))
    elif artifact.task == "instance":
        from masksmith.models.instance import build_instance_model

        net = build_instance_model(artifact.model, len(artifact.classes), pretrained=False)
    else:
        raise ModelError(f"task {artifact.task!r} is not known to this masksmith.", fix="upgrade masksmith.")
    try:
        net.load_state_dict(artifact.state_dict, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"weights do not fit the described architecture ({str(exc)[:300]}).") from None
    return net.eval()
