"""Tests for the dual-stream model, its fusion variants and its YAML ablation configs."""

from __future__ import annotations

import pytest
import torch

from emofuse.errors import ConfigError
from emofuse.models import create_model
from emofuse.models.dual_stream import DualStream

DIMS = {"audio": 13, "face": 9}
SMALL = dict(DualStream.test_kwargs)


def _model(**overrides) -> DualStream:
    torch.manual_seed(0)
    return create_model("dual_stream", num_classes=4, input_dims=DIMS, **{**SMALL, **overrides}).eval()


def _batch(batch=3, t_audio=24, t_face=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = {"audio": torch.randn(batch, t_audio, 13, generator=g), "face": torch.randn(batch, t_face, 9, generator=g)}
    masks = {m: torch.ones(batch, x.shape[1], dtype=torch.bool) for m, x in inputs.items()}
    return inputs, masks


@pytest.mark.parametrize("fusion", ["intermediate", "feature"])
def test_forward_shapes_and_modality_weights(fusion):
    out = _model(fusion=fusion)(*_batch())
    assert out.logits.shape == (3, 4) and torch.isfinite(out.logits).all()
    weights = out.explanations["modality_weights"]
    assert weights.shape == (3, 2)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    assert (weights > 0).all()


def test_fusion_variants_differ_in_structure():
    inter, feat = _model(fusion="intermediate"), _model(fusion="feature")
    assert len(inter.fusion_blocks) == 4
    assert not hasattr(feat, "fusion_blocks") and not hasattr(feat, "fusion_stem")
    assert feat.classifier[-1].in_features == inter.audio_stream.out_channels + inter.face_stream.out_channels
    with pytest.raises(ConfigError):
        _model(fusion="late")


@pytest.mark.parametrize("fusion", ["intermediate", "feature"])
def test_absent_modality_gets_zero_weight_and_does_not_leak(fusion):
    model = _model(fusion=fusion)
    inputs, masks = _batch()
    masks["face"][0] = False
    masks["audio"][1] = False
    out = model(inputs, masks)
    weights = out.explanations["modality_weights"]
    torch.testing.assert_close(weights[0], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(weights[1], torch.tensor([0.0, 1.0]))
    inputs["face"][0] = 1e3
    inputs["audio"][1] = -1e3
    torch.testing.assert_close(model(inputs, masks).logits, out.logits)


@pytest.mark.parametrize("fusion", ["intermediate", "feature"])
def test_length_one_face_vector(fusion):
    model = _model(fusion=fusion)
    inputs, masks = _batch(t_face=1)
    out = model(inputs, masks)
    assert torch.isfinite(out.logits).all()


def test_padding_frames_do_not_change_output():
    model = _model()
    inputs, masks = _batch()
    masks["audio"][0, 15:] = False
    masks["face"][0, 4:] = False
    before = model(inputs, masks).logits
    inputs["audio"][0, 15:] = 1e3
    inputs["face"][0, 4:] = 1e3
    torch.testing.assert_close(model(inputs, masks).logits, before)


def test_audio_stream_downsamples_time_and_mask():
    model = _model()
    h, mask = model.audio_stream(torch.randn(2, 24, 13), torch.tensor([[True] * 24, [True] * 5 + [False] * 19]))
    assert h.shape == (2, SMALL["audio_channels"][-1], 6)  # two 2x max-pools: 24 -> 12 -> 6
    assert mask.tolist() == [[True] * 6, [True, True, False, False, False, False]]


def test_wrong_modalities_raise_config_error():
    with pytest.raises(ConfigError):
        create_model("dual_stream", num_classes=4, input_dims={"audio": 13, "text": 9})


# ---- YAML configs (ablation) ---------------------------------------------------------------------

FEATURE_DIMS = {"mfcc": 120, "frft_mfcc": 120, "logmel": 128, "au": 35}


def _recipe(name):
    recipes = pytest.importorskip("emofuse.recipes")
    return recipes.load_recipe(name)


@pytest.mark.parametrize("name", ["dual_stream_frft", "dual_stream_mfcc", "dual_stream_feature", "tucker"])
def test_configs_build_their_model(name):
    from emofuse.training.config import TrainConfig

    recipe = _recipe(name)
    TrainConfig(**recipe.train)  # every train key is a valid TrainConfig field
    dims = {m: FEATURE_DIMS[names[0]] for m, names in recipe.features.items()}
    model = create_model(recipe.model, num_classes=8, input_dims=dims, **recipe.model_kwargs)
    assert set(model.modalities) == {"audio", "face"}
    assert sum(p.numel() for p in model.parameters()) < 5_000_000


def test_dual_stream_ablation_axes():
    frft, mfcc, feature = (_recipe(n) for n in ("dual_stream_frft", "dual_stream_mfcc", "dual_stream_feature"))
    assert frft.features["audio"] == ["frft_mfcc"] and mfcc.features["audio"] == ["mfcc"]
    assert frft.model_kwargs == mfcc.model_kwargs  # only the input feature changes
    assert frft.model_kwargs["fusion"] == "intermediate" and feature.model_kwargs["fusion"] == "feature"
    assert {k: v for k, v in frft.model_kwargs.items() if k != "fusion"} == \
        {k: v for k, v in feature.model_kwargs.items() if k != "fusion"}
    assert frft.features == feature.features and frft.train == mfcc.train == feature.train
