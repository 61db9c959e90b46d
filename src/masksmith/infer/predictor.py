"""One Predictor for every entry point (CLI, Python, web): images of any size in, masks at their own size out.

How an image reaches the network follows how the model was trained (the model file says):
- input_mode "resize": the whole photo is resized to the training size (as every training image was), and
  the class scores are resized back to the photo's own size;
- input_mode "scale": the photo is shrunk by the training factor, then a window of the training size slides
  over it with overlap, and overlapping scores are blended with weights that fall off towards the window's
  edges, so large images are predicted at the scale the model learned instead of being squashed.

The network itself runs on PyTorch (`backend="torch"`, a `.masksmith` file) or ONNX Runtime (`backend="onnx"`,
an exported `.onnx` file or a `.masksmith` file exported in memory); everything around the network call is the
same code for both (`_network` is the only place they differ).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from masksmith.core.errors import MasksmithError
from masksmith.core.images import read_image
from masksmith.core.labels import ClassMap
from masksmith.models.artifact import ModelArtifact, build_network
from masksmith.models.semantic import pad_amount

BACKENDS = ("torch", "onnx")


def window_weights(size: tuple[int, int]) -> torch.Tensor:
    """(H, W) blending weights: 1 in the middle, falling linearly to a small value at the borders."""
    ys = 1 - torch.abs(torch.linspace(-1, 1, size[0]))
    xs = 1 - torch.abs(torch.linspace(-1, 1, size[1]))
    return (torch.outer(ys, xs) + 1e-3).float()


def starts(length: int, window: int, stride: int) -> list[int]:
    if length <= window:
        return [0]
    out = list(range(0, length - window, stride))
    return [*out, length - window]


class Predictor:
    """Predicts class probabilities and masks with a trained semantic model."""

    def __init__(self, artifact: ModelArtifact, net=None, tta: bool = False, overlap: float = 0.25,
                 batch_size: int = 4, backend: str = "torch") -> None:
        if artifact.task != "semantic":
            raise MasksmithError(f"this is a {artifact.task} model; the semantic Predictor cannot run it.")
        if backend not in BACKENDS:
            raise MasksmithError(f"unknown backend {backend!r}.", fix=f"use one of: {', '.join(BACKENDS)}.")
        self.artifact = artifact
        self.backend = backend
        if net is None and backend == "onnx":
            raise MasksmithError("the ONNX backend needs the network as an ONNX session.",
                                 fix="open the model with masksmith.infer.open_predictor(path, backend='onnx').")
        self.net = (net or build_network(artifact)).eval()
        self.tta = tta
        self.overlap = overlap
        self.batch_size = batch_size
        self.binary = artifact.model.get("num_outputs") == 1
        self.flip_perm = torch.tensor(artifact.class_map.mirrored(artifact.flip_pairs))

    @property
    def classes(self) -> ClassMap:
        return self.artifact.class_map

    # -- the network on a batch of pixel tensors ---------------------------------------------------------
    @torch.no_grad()
    def _probabilities(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float pixels -> (B, C, H, W) class probabilities (H, W padded as the model needs)."""
        h, w = pixels.shape[-2:]
        ph, pw = pad_amount(self.artifact.model["arch"], h, w)
        x = F.pad(pixels, (0, pw, 0, ph), mode="replicate") if ph or pw else pixels
        probs = self._activate(self._network(x))
        if self.tta:  # mirrored image, mirrored back, with left/right classes swapped back
            flipped = self._activate(self._network(x.flip(-1)))
            probs = 0.5 * (probs + flipped.flip(-1)[:, self.flip_perm])
        return probs[..., :h, :w]

    def _network(self, x: torch.Tensor) -> torch.Tensor:
        """The one step the backends differ in: PyTorch runs channels_last, ONNX Runtime takes the array."""
        if self.backend == "torch":
            x = x.contiguous(memory_format=torch.channels_last)
        logits = self.net(x).float()
        want = 1 if self.binary else self.classes.num_values
        if logits.ndim != 4 or logits.shape[1] != want:  # a network that does not match its description
            raise MasksmithError(f"the network gives {tuple(logits.shape)} scores, not {want} per pixel for the "
                                 f"{len(self.classes)} classes its description lists.",
                                 fix="export the model again with `masksmith export`, or use its .masksmith file.")
        return logits

    def _activate(self, logits: torch.Tensor) -> torch.Tensor:
        if self.binary:
            p = torch.sigmoid(logits[:, :1])
            return torch.cat([1 - p, p], dim=1)
        return logits.softmax(1)

    # -- one image ---------------------------------------------------------------------------------------
    def predict_proba(self, image: np.ndarray, own_size: bool = True) -> torch.Tensor:
        """(C, H, W) class probabilities at the image's own size (or, with own_size=False, at the size the
        network saw: the training size in resize mode, the shrunk image in scale mode)."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise MasksmithError(f"expected an RGB image (H, W, 3), got shape {image.shape}.")
        h, w = image.shape[:2]
        pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)[None].float()
        mode = self.artifact.preprocessing.get("input_mode", "resize")
        if mode == "resize":
            size = self.artifact.input_size
            x = F.interpolate(pixels, size=size, mode="bilinear", antialias=True, align_corners=False)
            probs = self._probabilities(x)
        elif mode == "scale":
            factor = float(self.artifact.preprocessing["scale"])
            sh, sw = max(1, round(h * factor)), max(1, round(w * factor))
            x = F.interpolate(pixels, size=(sh, sw), mode="bilinear", antialias=True, align_corners=False)
            probs = self._sliding(x)
        else:
            raise MasksmithError(f"unknown input_mode {mode!r} in the model file.", fix="upgrade masksmith.")
        if own_size and probs.shape[-2:] != (h, w):
            probs = F.interpolate(probs, size=(h, w), mode="bilinear", align_corners=False)
        return probs[0]

    def _sliding(self, x: torch.Tensor) -> torch.Tensor:
        wh, ww = self.artifact.input_size
        h, w = x.shape[-2:]
        if h <= wh and w <= ww:
            return self._probabilities(x)
        weights = window_weights((min(wh, h), min(ww, w)))
        total = torch.zeros((1, self.classes.num_values, h, w))
        norm = torch.zeros((h, w))
        sy, sx = max(1, int(wh * (1 - self.overlap))), max(1, int(ww * (1 - self.overlap)))
        boxes = [(y, x0) for y in starts(h, wh, sy) for x0 in starts(w, ww, sx)]
        for k in range(0, len(boxes), self.batch_size):
            chunk = boxes[k:k + self.batch_size]
            batch = torch.cat([x[..., y:y + wh, x0:x0 + ww] for y, x0 in chunk])
            probs = self._probabilities(batch)
            for (y, x0), p in zip(chunk, probs, strict=True):
                ph, pw = p.shape[-2:]
                total[0, :, y:y + ph, x0:x0 + pw] += p * weights[:ph, :pw]
                norm[y:y + ph, x0:x0 + pw] += weights[:ph, :pw]
        return total / norm

    def predict(self, image: np.ndarray) -> np.ndarray:
        """(H, W) uint8 class-index mask at the image's own size."""
        return self.predict_proba(image).argmax(0).to(torch.uint8).numpy()

    def predict_files(self, paths: Iterable[str | Path]):
        for path in paths:
            image = read_image(path)
            yield Path(path), image, self.predict(image)
