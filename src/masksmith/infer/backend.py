"""Which runtime a `.masksmith` model predicts with when the person did not say (`backend="auto"`).

ONNX Runtime when an exported `.onnx` lies beside the model file (where `masksmith export` writes it), was
exported from this very file (its metadata holds the model file's SHA-256), and ran the network faster than
PyTorch when the export measured both; PyTorch otherwise. An INT8 copy (`<name>.int8.onnx`) competes on the
same terms: it is written only when its parity held, and chosen only when it was the fastest. The choice and
its reason are one line (`BackendChoice.reason`) that predict prints.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from masksmith.core.runfolder import model_file
from masksmith.infer.runtime import OnnxError, OnnxNetwork, export_facts


@dataclass
class BackendChoice:
    backend: str  # "torch" or "onnx"
    path: Path  # the file to open
    detail: str  # why, in a few words
    net: Any = None  # the open OnnxNetwork when ONNX Runtime was chosen

    @property
    def reason(self) -> str:
        return f"{'ONNX Runtime' if self.backend == 'onnx' else 'PyTorch'} ({self.detail})"


def file_digest(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def exported_beside(model: Path) -> list[Path]:
    """The exported files `masksmith export` would have written beside `model`: float first, then INT8."""
    float_path = model.with_suffix(".onnx")
    return [p for p in (float_path, float_path.with_name(f"{float_path.stem}.int8.onnx")) if p.is_file()]


def choose_backend(path: str | Path, prefer: str | None = None) -> BackendChoice:
    """PyTorch or an exported ONNX file for the model at `path` (see the module docstring). With
    `prefer="onnx"` an exported file made from this model is taken whatever its speed."""
    path = Path(path)
    model = model_file(path)
    candidates = exported_beside(model) if model.is_file() else []
    if not candidates:
        return BackendChoice("torch", path, f"no {model.with_suffix('.onnx').name} exported beside {model.name}; "
                                            "`masksmith export` writes one")
    digest = file_digest(model)
    best: tuple[float, Path, Any, str] | None = None
    notes = []
    for onnx_path in candidates:
        try:
            net = OnnxNetwork(onnx_path)
        except OnnxError as exc:
            notes.append(f"{onnx_path.name} cannot be loaded ({exc})")
            continue
        facts = export_facts(net.metadata())
        if facts.get("source_sha256") != digest:
            notes.append(f"{onnx_path.name} was not exported from this {model.name} (export again)")
            continue
        speed = facts.get("speed") or {}
        torch_ms, onnx_ms = speed.get("torch_ms"), speed.get("onnx_ms")
        if not (isinstance(torch_ms, int | float) and isinstance(onnx_ms, int | float) and onnx_ms > 0):
            notes.append(f"{onnx_path.name} carries no speed measurement (export again)")
            continue
        ratio = torch_ms / onnx_ms
        why = f"{ratio:.1f}x PyTorch's speed at {speed.get('size', '?')} when exported"
        if prefer == "onnx" or ratio > 1.0:
            if best is None or onnx_ms < best[0]:
                best = (onnx_ms, onnx_path, net, why)
        else:
            notes.append(f"{onnx_path.name} ran at {why}, not faster")
    if best is not None:
        _, onnx_path, net, why = best
        return BackendChoice("onnx", onnx_path, f"{onnx_path.name}: {why}; {net.graph}", net)
    return BackendChoice("torch", path, "; ".join(notes))
