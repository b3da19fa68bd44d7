"""OF-CMAER-CAT: attention/compatibility/weights normalisation, missing modalities, losses, ladder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from emofuse.errors import ConfigError
from emofuse.models import create_model
from emofuse.models.of_cmaer_cat import LADDER, info_nce

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "emofuse" / "configs"
DIMS = {"audio": 12, "face": 7, "text": 10}
LENS = {"audio": 6, "face": 1, "text": 5}
SMALL = {"d_model": 8, "heads": 2, "reliability_hidden": 4, "proj_dim": 8, "contrastive_dim": 4}


def _batch(batch=4, seed=0, lens=LENS):
    g = torch.Generator().manual_seed(seed)
    inputs = {m: torch.randn(batch, lens[m], d, generator=g) for m, d in DIMS.items()}
    masks = {m: torch.ones(batch, lens[m], dtype=torch.bool) for m in DIMS}
    masks["audio"][1, 2:] = False
    return inputs, masks


def _model(**kw):
    torch.manual_seed(0)
    return create_model("of_cmaer_cat", 5, dict(DIMS), **{**SMALL, **kw})


def _drop(masks, sample, modality):
    masks[modality][sample] = False


def test_weights_and_compatibility_normalised_over_present_modalities():
    model = _model().eval()
    inputs, masks = _batch()
    _drop(masks, 0, "face")
    _drop(masks, 2, "face")
    _drop(masks, 2, "text")
    out = model(inputs, masks)
    w, alpha = out.explanations["modality_weights"], out.explanations["compatibility"]
    a, f, t = (model.modalities.index(m) for m in ("audio", "face", "text"))
    assert w.shape == (4, 3) and alpha.shape == (4, 3, 3)
    torch.testing.assert_close(w.sum(1), torch.ones(4))
    assert w[0, f] == 0 and w[2, f] == 0 and w[2, t] == 0 and w[2, a] == 1
    assert (alpha.diagonal(dim1=1, dim2=2) == 0).all()
    assert alpha[0, f].abs().sum() == 0 and alpha[0, :, f].abs().sum() == 0  # absent: no row, no column
    torch.testing.assert_close(alpha[0, a].sum(), torch.tensor(1.0))
    torch.testing.assert_close(alpha[1].sum(-1), torch.ones(3))
    assert alpha[2].abs().sum() == 0  # a lone modality has nobody to align with


def test_pairwise_attention_maps_normalised_over_keys():
    model = _model().eval()
    inputs, masks = _batch()
    _drop(masks, 3, "text")
    out = model(inputs, masks)
    pairs = [k for k in out.explanations if k.startswith("attention/")]
    assert len(pairs) == 6
    for key in pairs:
        q, k = key.removeprefix("attention/").split("->")
        weights = out.explanations[key]
        assert weights.shape == (4, 2, LENS[q], LENS[k])
        valid = masks[q][:, None, :].float() * masks[k].any(1).float()[:, None, None]
        torch.testing.assert_close(weights.sum(-1), valid.expand(4, 2, LENS[q]))


def test_info_nce_is_lower_for_aligned_than_shuffled_pairs():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(16, 8, generator=g)
    b = a + 0.1 * torch.randn(16, 8, generator=g)
    aligned = info_nce(a, b, temperature=0.1)
    shuffled = info_nce(a, b[torch.roll(torch.arange(16), 1)], temperature=0.1)
    assert aligned < 0.5 < shuffled


def test_contrastive_only_over_samples_with_both_modalities():
    model = _model().train()
    inputs, masks = _batch()
    for m in ("face", "text"):
        masks[m][:] = False  # only audio present: no cross-modal pair anywhere
    out = model(inputs, masks)
    assert out.aux_losses["contrastive"] == 0
    masks["face"][:2] = True  # two samples with an audio-face pair
    out = model(inputs, masks)
    assert out.aux_losses["contrastive"] > 0


def test_aux_losses_are_weighted_and_finite_with_missing_modalities():
    inputs, masks = _batch()
    _drop(masks, 0, "text")
    _drop(masks, 1, "face")
    _drop(masks, 1, "text")
    base = _model().train()
    torch.manual_seed(1)
    out = base(inputs, masks)
    assert set(out.aux_losses) == {"contrastive", "reconstruction", "entropy"}
    loss = torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2, 3])) + sum(out.aux_losses.values())
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in base.parameters() if p.grad is not None)
    doubled = _model(lambda_con=0.2, lambda_rec=0.2, lambda_ent=0.02).train()
    torch.manual_seed(1)
    out2 = doubled(inputs, masks)
    for key in out.aux_losses:
        torch.testing.assert_close(out2.aux_losses[key], 2 * out.aux_losses[key])


def _ladder():
    return yaml.safe_load((CONFIGS / "of_cmaer_cat_ladder.yaml").read_text())


def test_ladder_yaml_matches_module_ladder_and_full_config():
    ladder = _ladder()
    assert [r["name"] for r in ladder["rungs"]] == list(LADDER)
    for rung in ladder["rungs"]:
        assert rung["model_kwargs"] == LADDER[rung["name"]]
    full = yaml.safe_load((CONFIGS / ladder["base"]).read_text())
    assert {k: full["model_kwargs"][k] for k in LADDER["+transformer"]} == LADDER["+transformer"]
    from emofuse.training.config import TrainConfig

    TrainConfig.from_dict(full["train"])
    create_model(full["model"], 8, dict(DIMS), **full["model_kwargs"])


MODULES = {"use_cmaa": ("proj_q", "bilinear", "gate", "norm"), "use_awom": ("reliability",),
           "use_contrastive": ("contrastive_head",), "use_reconstruction": ("decoders",),
           "use_transformer": ("transformer", "modality_embedding")}


@pytest.mark.parametrize("rung", list(LADDER))
def test_ladder_flags_create_or_omit_modules_and_all_parameters_train(rung):
    flags = LADDER[rung]
    model = _model(**flags).train()
    names = {n.split(".")[0] for n, _ in model.named_parameters()}
    for flag, attrs in MODULES.items():
        for attr in attrs:
            assert (attr in names) == flags[flag], f"{rung}: {attr}"
    # face with >1 frame: over a single key frame the key projection is (correctly) irrelevant
    out = model(*_batch(lens={**LENS, "face": 3}))
    assert ("compatibility" in out.explanations) == flags["use_cmaa"]
    expected_aux = {k for k, f in (("contrastive", "use_contrastive"), ("reconstruction", "use_reconstruction"), ("entropy", "use_awom")) if flags[f]}
    assert set(out.aux_losses) == expected_aux
    loss = torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2, 3])) + sum(out.aux_losses.values(), torch.zeros(()))
    loss.backward()
    silent = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not silent, f"{rung}: {silent}"


def test_single_modality_needs_cnn_only_configuration():
    with pytest.raises(ConfigError):
        create_model("of_cmaer_cat", 3, {"audio": 4})
    model = create_model("of_cmaer_cat", 3, {"audio": 4}, **{**SMALL, **LADDER["cnn_only"]}).eval()
    out = model({"audio": torch.randn(2, 5, 4)}, {"audio": torch.ones(2, 5, dtype=torch.bool)})
    assert out.logits.shape == (2, 3)
    with pytest.raises(ConfigError):
        create_model("of_cmaer_cat", 3, dict(DIMS), kernel_size=4)
