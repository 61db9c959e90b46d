"""One Predictor for every entry point (CLI, Python, web): images of any size in, masks at their own size out.

How an image reaches the network follows how the model was trained (the model file says):
- input_mode "resize": the whole photo is resized to the training size (as every training image was);
- input_mode "scale": the photo is shrunk by the training factor, then a window of the training size slides
  over it with overlap (several windows per network call), and overlapping scores are blended with weights
  that fall off towards the window's edges, so large images are predicted at the scale the model learned
  instead of being squashed.

The mask at the photo's own size is the argmax of the class scores resized bilinearly to it, computed at the
network's resolution except along class boundaries (`masksmith.infer.scores.classes_at`): a 12-megapixel
photo never carries full-size score planes.

Everything around the network is numpy and Pillow (the photo resized in float, as torch did before); the
network runs on PyTorch (`backend="torch"`, a `.masksmith` file) or ONNX Runtime (`backend="onnx"`, an
exported `.onnx` file or a `.masksmith` file exported in memory), and ONNX prediction never imports torch (a
faster start). A network is any callable from
(B, 3, H, W) float32 pixels (RGB 0-255) to (B, C, H, W) logits as numpy arrays; a torch module is wrapped in
`TorchNetwork`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from masksmith.core.errors import MasksmithError
from masksmith.core.images import read_image
from masksmith.core.labels import ClassMap
from masksmith.infer.profile import OFF
from masksmith.infer.runtime import use_every_core
from masksmith.infer.scores import classes_at, resize_scores, sigmoid_pair, softmax
from masksmith.models.artifact import ModelArtifact, build_network
from masksmith.models.registry import get_model

BACKENDS = ("torch", "onnx")


def window_weights(size: tuple[int, int]) -> np.ndarray:
    """(H, W) blending weights: 1 in the middle, falling linearly to a small value at the borders."""
    ys = 1 - np.abs(np.linspace(-1, 1, size[0], dtype=np.float32))
    xs = 1 - np.abs(np.linspace(-1, 1, size[1], dtype=np.float32))
    return (np.outer(ys, xs) + np.float32(1e-3)).astype(np.float32)


def starts(length: int, window: int, stride: int) -> list[int]:
    if length <= window:
        return [0]
    out = list(range(0, length - window, stride))
    return [*out, length - window]


def resize_pixels(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 -> (1, 3, h, w) float32 pixels, what the network takes: resized in float by Pillow's
    bilinear filter with antialiasing when shrinking, channel by channel ("F" images). torch's
    ``interpolate(antialias=True)`` follows the same filter: the two agree within 1e-4 levels, so masks are
    those of the earlier torch preprocessing (resizing in uint8 differs by up to one level, enough to flip
    pixels where a model hesitates)."""
    if image.shape[:2] == tuple(size):
        return np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)
    picture = Image.fromarray(np.ascontiguousarray(image))
    planes = [np.asarray(band.convert("F").resize((size[1], size[0]), Image.Resampling.BILINEAR))
              for band in picture.split()]
    return np.stack(planes)[None]


class TorchNetwork:
    """A PyTorch module behind the numpy interface (channels_last, inference mode)."""

    def __init__(self, module: Any) -> None:
        self.module = module.eval()

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))
            return self.module(x.contiguous(memory_format=torch.channels_last)).float().numpy()


class Predictor:
    """Predicts class probabilities and masks with a trained semantic model."""

    def __init__(self, artifact: ModelArtifact, net: Any = None, tta: bool = False, overlap: float = 0.25,
                 batch_size: int = 4, backend: str = "torch", profile: Any = None) -> None:
        if artifact.task != "semantic":
            raise MasksmithError(f"this is a {artifact.task} model; the semantic Predictor cannot run it.")
        if backend not in BACKENDS:
            raise MasksmithError(f"unknown backend {backend!r}.", fix=f"use one of: {', '.join(BACKENDS)}.")
        self.artifact = artifact
        self.backend = backend
        if net is None and backend == "onnx":
            raise MasksmithError("the ONNX backend needs the network as an ONNX session.",
                                 fix="open the model with masksmith.infer.open_predictor(path, backend='onnx').")
        if net is None:
            net = build_network(artifact)
        self.module = net if hasattr(net, "parameters") else None  # the torch module, when there is one
        self.net = TorchNetwork(net) if self.module is not None else net
        if self.module is not None:
            use_every_core()
        self.tta = tta
        self.overlap = overlap
        self.batch_size = batch_size
        self.profile = profile or OFF
        self.binary = artifact.model.get("num_outputs") == 1
        self.flip_perm = np.asarray(artifact.class_map.mirrored(artifact.flip_pairs))
        self.divisor = get_model(str(artifact.model.get("arch", "")), "semantic").divisor

    @property
    def classes(self) -> ClassMap:
        return self.artifact.class_map

    # -- the network on a batch of pixel arrays ----------------------------------------------------------
    def _probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """(B, 3, H, W) float pixels -> (B, C, H, W) class probabilities (H, W padded as the model needs)."""
        h, w = pixels.shape[-2:]
        ph, pw = (-h) % self.divisor, (-w) % self.divisor
        if ph or pw:
            with self.profile("preprocess"):
                pixels = np.pad(pixels, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="edge")
        probs = self._activate(self._network(pixels))
        if self.tta:  # mirrored image, mirrored back, with left/right classes swapped back
            flipped = self._activate(self._network(np.ascontiguousarray(pixels[..., ::-1])))
            with self.profile("postprocess"):
                probs = 0.5 * (probs + flipped[..., ::-1][:, self.flip_perm])
        return probs[..., :h, :w]

    def _network(self, x: np.ndarray) -> np.ndarray:
        with self.profile("network"):
            logits = self.net(x)
        want = 1 if self.binary else self.classes.num_values
        if logits.ndim != 4 or logits.shape[1] != want:  # a network that does not match its description
            raise MasksmithError(f"the network gives {tuple(logits.shape)} scores, not {want} per pixel for the "
                                 f"{len(self.classes)} classes its description lists.",
                                 fix="export the model again with `masksmith export`, or use its .masksmith file.")
        return logits

    def _activate(self, logits: np.ndarray) -> np.ndarray:
        with self.profile("postprocess"):
            return sigmoid_pair(logits) if self.binary else softmax(logits)

    # -- one image ---------------------------------------------------------------------------------------
    def predict_proba(self, image: np.ndarray, own_size: bool = True) -> np.ndarray:
        """(C, H, W) float32 class probabilities at the image's own size (or, with own_size=False, at the size
        the network saw: the training size in resize mode, the shrunk image in scale mode)."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise MasksmithError(f"expected an RGB image (H, W, 3), got shape {image.shape}.")
        h, w = image.shape[:2]
        mode = self.artifact.preprocessing.get("input_mode", "resize")
        if mode == "resize":
            size = self.artifact.input_size
        elif mode == "scale":
            factor = float(self.artifact.preprocessing["scale"])
            size = (max(1, round(h * factor)), max(1, round(w * factor)))
        else:
            raise MasksmithError(f"unknown input_mode {mode!r} in the model file.", fix="upgrade masksmith.")
        with self.profile("preprocess"):
            pixels = resize_pixels(np.asarray(image, dtype=np.uint8), size)
        probs = (self._probabilities(pixels) if mode == "resize" else self._sliding(pixels))[0]
        if own_size and probs.shape[-2:] != (h, w):
            with self.profile("postprocess"):
                probs = resize_scores(probs, (h, w))
        return probs

    def _sliding(self, x: np.ndarray) -> np.ndarray:
        wh, ww = self.artifact.input_size
        h, w = x.shape[-2:]
        if h <= wh and w <= ww:
            return self._probabilities(x)
        weights = window_weights((min(wh, h), min(ww, w)))
        total = np.zeros((self.classes.num_values, h, w), np.float32)
        norm = np.zeros((h, w), np.float32)
        sy, sx = max(1, int(wh * (1 - self.overlap))), max(1, int(ww * (1 - self.overlap)))
        boxes = [(y, x0) for y in starts(h, wh, sy) for x0 in starts(w, ww, sx)]
        for k in range(0, len(boxes), self.batch_size):
            chunk = boxes[k:k + self.batch_size]
            with self.profile("preprocess"):
                batch = np.concatenate([x[..., y:y + wh, x0:x0 + ww] for y, x0 in chunk])
            probs = self._probabilities(batch)
            with self.profile("postprocess"):
                for (y, x0), p in zip(chunk, probs, strict=True):
                    ph, pw = p.shape[-2:]
                    total[:, y:y + ph, x0:x0 + pw] += p * weights[:ph, :pw]
                    norm[y:y + ph, x0:x0 + pw] += weights[:ph, :pw]
        return (total / norm)[None]

    def predict(self, image: np.ndarray) -> np.ndarray:
        """(H, W) uint8 class-index mask at the image's own size."""
        return self.predict_scored(image)[1]

    def predict_scored(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(class probabilities at the network's resolution, (H, W) uint8 mask at the image's own size): both
        from one network pass (what evaluation scores, at input size and at full size)."""
        probs = self.predict_proba(image, own_size=False)
        with self.profile("postprocess"):
            return probs, classes_at(probs, image.shape[:2])

    def predict_files(self, paths: Iterable[str | Path]):
        for path in paths:
            image = read_image(path)
            yield Path(path), image, self.predict(image)
