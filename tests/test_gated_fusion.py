"""Algorithm 2 (gated_fusion): gate weights, missing modalities, metadata, dialogue context, config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from emofuse.errors import ConfigError
from emofuse.models import create_model
from emofuse.models.gated_fusion import last_valid_state
from emofuse.models.layers import masked_softmax

CONFIG = Path(__file__).resolve().parents[1] / "src" / "emofuse" / "configs" / "gated_fusion.yaml"
DIMS = {"face": 7, "audio": 12, "text": 10, "meta": 4}


def _batch(seed=0, turns=4):
    g = torch.Generator().manual_seed(seed)
    lens = {"face": 1, "audio": 6, "text": turns, "meta": 1}
    inputs = {m: torch.randn(4, lens[m], d, generator=g) for m, d in DIMS.items()}
    masks = {m: torch.ones(4, lens[m], dtype=torch.bool) for m in DIMS}
    masks["audio"][1, 3:] = False
    return inputs, masks


def _model(**kw):
    torch.manual_seed(0)
    kwargs = {"hidden": 8, "meta_hidden": 4, "head_hidden": 8, **kw}
    return create_model("gated_fusion", 5, dict(DIMS), **kwargs).eval()


def test_weights_sum_to_one_over_present_and_absent_is_exactly_zero():
    model = _model()
    inputs, masks = _batch()
    masks["face"][0] = False
    masks["face"][2] = False
    masks["text"][2] = False
    masks["audio"][3] = False
    alpha = model(inputs, masks).explanations["modality_weights"]
    assert alpha.shape == (4, 4)
    cols = {m: model.modalities.index(m) for m in DIMS}
    torch.testing.assert_close(alpha.sum(1), torch.ones(4))
    assert alpha[0, cols["face"]] == 0 and alpha[2, cols["face"]] == 0 and alpha[2, cols["text"]] == 0
    assert alpha[3, cols["audio"]] == 0
    assert (alpha[:, cols["meta"]] == 0).all()  # meta conditions the gates, it is not fused
    assert alpha[2, cols["audio"]] == 1.0  # only audio present for sample 2


def test_metadata_conditions_the_gates():
    model = _model()
    inputs, masks = _batch()
    first = model(inputs, masks).explanations["modality_weights"]
    inputs["meta"] = inputs["meta"] + 3.0
    second = model(inputs, masks).explanations["modality_weights"]
    assert not torch.allclose(first, second)


def test_absent_meta_is_zero_and_does_not_leak():
    model = _model()
    inputs, masks = _batch()
    masks["meta"][:] = False
    out1 = model(inputs, masks).logits
    inputs["meta"] = torch.randn_like(inputs["meta"]) * 100
    torch.testing.assert_close(out1, model(inputs, masks).logits)
    no_meta = create_model("gated_fusion", 5, {m: d for m, d in DIMS.items() if m != "meta"}, hidden=8, head_hidden=8)
    out = no_meta.eval()({m: inputs[m] for m in ("face", "audio", "text")}, {m: masks[m] for m in ("face", "audio", "text")})
    assert torch.isfinite(out.logits).all() and out.explanations["modality_weights"].shape == (4, 3)


def test_masked_softmax_handles_no_present_entry():
    weights = masked_softmax(torch.randn(2, 3), torch.tensor([[True, False, True], [False, False, False]]))
    assert torch.isfinite(weights).all()
    torch.testing.assert_close(weights.sum(1), torch.tensor([1.0, 0.0]))


def test_last_valid_state_picks_last_valid_turn():
    states = torch.arange(2 * 4 * 1, dtype=torch.float32).view(2, 4, 1)
    mask = torch.tensor([[True, True, True, False], [False, False, False, False]])
    torch.testing.assert_close(last_valid_state(states, mask), torch.tensor([[2.0], [0.0]]))


def test_dialogue_context_uses_previous_turns_but_not_padding():
    model = _model(context_modalities=["text"])
    inputs, masks = _batch()
    masks["text"][0, 3:] = False  # sample 0 has 3 turns
    base = model(inputs, masks).logits
    changed = {**inputs, "text": inputs["text"].clone()}
    changed["text"][0, 3] += 50.0  # padded turn: no effect
    torch.testing.assert_close(model(changed, masks).logits, base)
    changed["text"][0, 0] += 5.0  # earlier context turn: changes the prediction of sample 0 only
    out = model(changed, masks).logits
    assert not torch.allclose(out[0], base[0])
    torch.testing.assert_close(out[1:], base[1:])


def test_bad_configuration_raises_config_error():
    with pytest.raises(ConfigError):
        create_model("gated_fusion", 3, {"face": 4, "video": 3})
    with pytest.raises(ConfigError):
        create_model("gated_fusion", 3, {"meta": 4})
    with pytest.raises(ConfigError):
        create_model("gated_fusion", 3, {"face": 4, "meta": 2}, context_modalities=["meta"])


def test_yaml_holds_published_hyper_parameters():
    from emofuse.training.config import TrainConfig

    cfg = yaml.safe_load(CONFIG.read_text())
    train = TrainConfig.from_dict(cfg["train"])
    assert (train.loss, train.focal_alpha, train.focal_gamma, train.warmup_ratio) == ("focal", 1.148, 1.582, 0.222)
    assert cfg["data"]["max_dialogue_length"] == 10
    assert set(cfg["features"]) == set(DIMS)
    model = create_model(cfg["model"], 7, dict(DIMS), **cfg["model_kwargs"]).eval()
    out = model(*_batch(turns=10))
    assert out.logits.shape == (4, 7) and torch.isfinite(out.logits).all()
