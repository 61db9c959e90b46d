"""Instance segmentation at inference: the predictor, and per-image JSON and overlays.

- `InstancePredictor(artifact).predict(image)` -> objects (class, score, box, mask at the photo's own size).
  The photo is shrunk to the model's size before the network (Mask R-CNN would do it anyway) and only the
  kept objects' masks are scaled back up, so a 12-megapixel photo never costs a hundred full-size planes.
- `InstanceWriter` (for `masksmith.infer.batch.predict_batch`): <stem>_instances.json (COCO-style RLE) and
  <stem>_overlay.jpg per image (drawn by `masksmith.draw.draw_instances`: class colours, outlines, "class score"
  tags). Scoring lives in `masksmith.evaluate.instance`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from masksmith.core.errors import MasksmithError
from masksmith.core.labels import ClassMap
from masksmith.core.objects import Instance
from masksmith.data.rasterize import encode_masks, rle_json
from masksmith.models.artifact import ModelArtifact, build_network
from masksmith.models.instance import as_float_image


class InstancePredictor:
    """Runs a trained instance model on photos of any size."""

    def __init__(self, artifact: ModelArtifact, net: Any = None, score_threshold: float = 0.5,
                 mask_threshold: float = 0.5, backend: str = "torch", profile: Any = None) -> None:
        if artifact.task != "instance":
            raise MasksmithError(f"this is a {artifact.task} model; the instance predictor cannot run it.",
                                 fix="use masksmith.infer.predictor.Predictor for semantic models.")
        if backend not in ("torch", "onnx"):
            raise MasksmithError(f"unknown backend {backend!r}.", fix="use one of: torch, onnx.")
        if net is None and backend == "onnx":
            raise MasksmithError("the ONNX backend needs the network as an ONNX session.",
                                 fix="open the model with masksmith.infer.open_predictor(path, backend='onnx').")
        from masksmith.infer.profile import OFF

        self.artifact = artifact
        self.backend = backend
        self.net = (net or build_network(artifact)).eval()
        self.mask_threshold = mask_threshold
        self.score_threshold = score_threshold
        self.profile = profile or OFF

    @property
    def score_threshold(self) -> float:
        return self._score_threshold

    @score_threshold.setter
    def score_threshold(self, value: float) -> None:
        self._score_threshold = float(value)
        # boxes below the threshold are dropped inside the network, before their masks are computed (an
        # exported graph has its threshold built in, EXPORT_SCORE_THRESHOLD; the rest are dropped here)
        heads = getattr(self.net, "roi_heads", None)
        if heads is not None:
            heads.score_thresh = float(value)

    @property
    def classes(self) -> ClassMap:
        return self.artifact.class_map

    @property
    def max_size(self) -> int:
        return int(self.artifact.model.get("max_size", 512))

    @torch.no_grad()
    def predict(self, image: np.ndarray) -> list[Instance]:
        """Objects in an (H, W, 3) uint8 RGB image, highest score first, masks and boxes at its own size."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise MasksmithError(f"expected an RGB image (H, W, 3), got shape {image.shape}.")
        h, w = image.shape[:2]
        with self.profile("preprocess"):
            pixels = as_float_image(np.ascontiguousarray(image))
            s = min(1.0, self.max_size / max(h, w))
            if s < 1.0:
                size = (max(1, round(h * s)), max(1, round(w * s)))
                pixels = F.interpolate(pixels[None], size=size, mode="bilinear", antialias=True,
                                       align_corners=False)[0]
        with self.profile("network"):
            out = self.net([pixels])[0]
        sh, sw = pixels.shape[-2:]
        fx, fy = w / sw, h / sh
        instances = []
        classes = self.classes
        for box, label, score, prob in zip(out["boxes"], out["labels"], out["scores"], out["masks"], strict=True):
            if float(score) < self.score_threshold:
                continue
            if prob.shape[-2:] != (h, w):  # one at a time: the kept objects' probabilities, scaled up
                prob = F.interpolate(prob[None], size=(h, w), mode="bilinear", align_corners=False)[0]
            x0, y0, x1, y1 = box.tolist()
            instances.append(Instance(label=classes.name(int(label)), score=float(score),
                                      mask=(prob[0] > self.mask_threshold).numpy(),
                                      box=(x0 * fx, y0 * fy, x1 * fx, y1 * fy)))
        instances.sort(key=lambda i: -i.score)
        return instances

    def predict_files(self, paths: Iterable[str | Path]):
        from masksmith.core.images import read_image

        for path in paths:
            image = read_image(path)
            yield Path(path), image, self.predict(image)


# ------------------------------------------------------------------------------------------------ writing
def instances_json(path: Path, image: np.ndarray, instances: Sequence[Instance]) -> dict[str, Any]:
    """The per-image record: class, score, box [x, y, w, h] and the mask as COCO RLE (counts as str)."""
    rles = encode_masks(np.stack([i.mask for i in instances])) if instances else []
    return {"image": str(path), "width": int(image.shape[1]), "height": int(image.shape[0]),
            "instances": [{"class": i.label, "score": round(float(i.score), 4),
                           "box": [round(v, 2) for v in i.box_xywh], "mask": rle_json(r)}
                          for i, r in zip(instances, rles, strict=True)]}


class InstanceWriter:
    """What an instance model writes per photo (for `masksmith.infer.batch.predict_batch`; the `save`d ones of
    OUTPUTS), and its summary row: objects per class (blank for a photo kept from an earlier run that wrote no
    JSON)."""

    OUTPUTS = ("json", "overlay")

    def __init__(self, predictor: InstancePredictor, opacity: float, save: str | Sequence[str] | None = None) -> None:
        from masksmith.infer.batch import chosen_outputs

        self.predictor, self.opacity = predictor, opacity
        self.save = chosen_outputs(save, self.OUTPUTS)
        self.classes = list(predictor.classes.names)
        self.colors = predictor.classes.colors_by_name()
        self.columns = ["image", "width", "height", "objects", *(f"objects_{n}" for n in self.classes)]

    def names_for(self, stem: str) -> dict[str, str]:
        names = {"json": f"{stem}_instances.json", "overlay": f"{stem}_overlay.jpg"}
        return {k: v for k, v in names.items() if k in self.save}

    def predict(self, image: np.ndarray) -> list[Instance]:
        return self.predictor.predict(image)

    def write(self, folder, job, image: np.ndarray, instances: list[Instance]) -> dict[str, Any]:
        from masksmith.draw import draw_instances
        from masksmith.infer.batch import OVERLAY_JPEG

        names = self.names_for(job.stem)
        record = instances_json(job.path, image, instances)
        files = {}
        if "json" in names:
            files["json"] = folder.write_text(names["json"], json.dumps(record, indent=1))
        if "overlay" in names:
            files["overlay"] = folder.save_image(names["overlay"], draw_instances(image, instances, self.opacity,
                                                                                 colors=self.colors),
                                                 **OVERLAY_JPEG)
        return {**{k: str(v) for k, v in files.items()}, **self.counts(record)}

    def counts(self, record: dict[str, Any]) -> dict[str, Any]:
        found = [obj["class"] for obj in record["instances"]]
        return {"width": record["width"], "height": record["height"], "objects": len(found),
                "instances": str(len(found)), **{f"objects_{c}": found.count(c) for c in self.classes}}

    def existing(self, folder, job) -> dict[str, Any]:
        names = self.names_for(job.stem)
        row = {k: str(folder.path(v)) for k, v in names.items()}
        if "json" not in names:
            return row
        record = json.loads(folder.path(names["json"]).read_text(encoding="utf-8"))
        return {**row, **self.counts(record)}
