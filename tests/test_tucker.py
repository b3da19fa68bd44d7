"""Tests for the Tucker fusion model and the shared mask-aware layers it uses."""

from __future__ import annotations

import json

import pytest
import torch

from emofuse.errors import ConfigError
from emofuse.models import create_model
from emofuse.models.layers import CrossAttention, interpolate_to_length, masked_softmax
from emofuse.experiments.tucker_memory import main as tucker_memory_main
from emofuse.experiments.tucker_memory import tucker_memory_benchmark
from emofuse.models.tucker import TuckerFusion, tucker_core, tucker_core_naive

DIMS = {"audio": 16, "face": 7}
SMALL = dict(TuckerFusion.test_kwargs)


def _model(**overrides) -> TuckerFusion:
    torch.manual_seed(0)
    model = create_model("tucker_fusion", num_classes=4, input_dims=DIMS, **{**SMALL, **overrides})
    return model.eval()


def _batch(batch=3, t_audio=20, t_face=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = {"audio": torch.randn(batch, t_audio, 16, generator=g), "face": torch.randn(batch, t_face, 7, generator=g)}
    masks = {m: torch.ones(batch, x.shape[1], dtype=torch.bool) for m, x in inputs.items()}
    return inputs, masks


# ---- Tucker core -------------------------------------------------------------------------

def test_factorised_core_equals_naive_mode_products():
    g = torch.Generator().manual_seed(0)
    b, t, da, dv, rt, ra, rv = 2, 7, 5, 6, 3, 4, 2
    a, v = torch.randn(b, t, da, generator=g, dtype=torch.float64), torch.randn(b, t, dv, generator=g, dtype=torch.float64)
    at, aa, av = (torch.randn(*s, generator=g, dtype=torch.float64) for s in ((t, rt), (da, ra), (dv, rv)))
    fast, naive = tucker_core(a, v, at, aa, av), tucker_core_naive(a, v, at, aa, av)
    assert fast.shape == (b, rt, ra, rv)
    torch.testing.assert_close(fast, naive)
    # and against an explicit loop over the definition G[b,r,p,q] = Σ_t At[t,r] (Aaᵀa_t)[p] (Avᵀv_t)[q]
    expected = torch.zeros(b, rt, ra, rv, dtype=torch.float64)
    for t_i in range(t):
        expected += torch.einsum("r,bp,bq->brpq", at[t_i], a[:, t_i] @ aa, v[:, t_i] @ av)
    torch.testing.assert_close(fast, expected)


def test_pooling_from_core_equals_pooling_from_factors():
    core_model = _model(pool_from="core")
    factor_model = _model(pool_from="factors")
    factor_model.load_state_dict(core_model.state_dict())
    batch = _batch()
    torch.testing.assert_close(core_model(*batch).logits, factor_model(*batch).logits, rtol=1e-4, atol=1e-5)


def test_memory_benchmark_reports_both_methods():
    result = tucker_memory_benchmark(batch_size=2, time_steps=10, d_audio=32, d_visual=24, ranks=(5, 8, 6), repeats=1)
    for method in ("naive", "factorised"):
        assert set(result[method]) == {"analytic_peak_bytes", "profiler_allocated_bytes", "wall_s_median"}
        assert result[method]["wall_s_median"] > 0
    # naive holds X [2,10,32,24] plus its first mode product [2,5,32,24] in float32
    assert result["naive"]["analytic_peak_bytes"] == 4 * (2 * 10 * 32 * 24 + 2 * 5 * 32 * 24)
    assert result["factorised"]["analytic_peak_bytes"] < result["naive"]["analytic_peak_bytes"]
    assert result["max_abs_diff"] <= 1e-4 * max(1.0, result["max_abs_core"])



def test_memory_benchmark_command_prints_one_json_line_per_batch(capsys):
    tucker_memory_main(["--batch-size", "1", "2", "--time-steps", "4", "--d-audio", "6", "--d-visual", "5",
                        "--ranks", "2", "3", "3", "--repeats", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert [json.loads(line)["batch_size"] for line in lines] == [1, 2]
    assert json.loads(lines[0])["ranks"] == [2, 3, 3]

# ---- interpolation and safe attention ----------------------------------------------------------

def test_interpolation_is_linear_and_ignores_padding():
    x = torch.tensor([[0.0, 1.0, 2.0, 100.0]]).unsqueeze(-1)
    mask = torch.tensor([[True, True, True, False]])
    y, out_mask = interpolate_to_length(x, mask, 5)
    torch.testing.assert_close(y.squeeze(-1), torch.tensor([[0.0, 0.5, 1.0, 1.5, 2.0]]))
    assert out_mask.all()


def test_interpolation_repeats_a_length_one_input_and_zeroes_absent_rows():
    x = torch.tensor([[[3.0, -1.0]], [[7.0, 7.0]]])  # [2, 1, 2]: per-clip vectors
    mask = torch.tensor([[True], [False]])
    y, out_mask = interpolate_to_length(x, mask, 6)
    torch.testing.assert_close(y[0], torch.tensor([[3.0, -1.0]]).expand(6, 2))
    assert torch.equal(y[1], torch.zeros(6, 2))
    assert out_mask[0].all() and not out_mask[1].any()


def test_cross_attention_with_all_keys_masked_is_zero_not_nan():
    attn = CrossAttention(2, dim=8).eval()
    q, k = torch.randn(2, 3, 8), torch.randn(2, 4, 8)
    key_mask = torch.tensor([[True, True, False, False], [False, False, False, False]])
    out, weights = attn(q, k, key_mask)
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    assert weights.shape == (2, 2, 3, 4)
    assert torch.equal(out[1], torch.zeros(3, 8)) and torch.equal(weights[1], torch.zeros(2, 3, 4))
    torch.testing.assert_close(weights[0].sum(-1), torch.ones(2, 3))
    assert torch.equal(weights[0, :, :, 2:], torch.zeros(2, 3, 2))  # padded keys get no weight


def test_masked_softmax_all_masked_row_is_zero():
    w = masked_softmax(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[True, False], [False, False]]))
    torch.testing.assert_close(w, torch.tensor([[1.0, 0.0], [0.0, 0.0]]))


# ---- the model -------------------------------------------------------------------------------

def test_forward_shapes_and_attention_explanations():
    model = _model()
    out = model(*_batch())
    t = SMALL["t_common"]
    assert out.logits.shape == (3, 4)
    assert out.explanations["attention/audio->face"].shape == (3, SMALL["heads"], t, t)
    assert out.explanations["attention/face->audio"].shape == (3, SMALL["heads"], t, t)
    torch.testing.assert_close(out.explanations["attention/audio->face"].sum(-1), torch.ones(3, SMALL["heads"], t))


def test_length_one_face_vector_works_and_is_repeated():
    model = _model()
    inputs, masks = _batch(t_face=1)
    out = model(inputs, masks)
    assert torch.isfinite(out.logits).all()
    # every aligned face frame is the same vector, so audio queries attend uniformly over face keys
    w = out.explanations["attention/audio->face"]
    torch.testing.assert_close(w, torch.full_like(w, 1.0 / SMALL["t_common"]))


def test_absent_modality_zeroes_its_attention():
    model = _model()
    inputs, masks = _batch()
    masks["audio"][0] = False
    out = model(inputs, masks)
    assert torch.isfinite(out.logits).all()
    assert torch.equal(out.explanations["attention/audio->face"][0], torch.zeros_like(out.explanations["attention/audio->face"][0]))
    assert torch.equal(out.explanations["attention/face->audio"][0], torch.zeros_like(out.explanations["attention/face->audio"][0]))
    assert out.explanations["attention/audio->face"][1].abs().sum() > 0


def test_padding_frames_do_not_change_output():
    model = _model()
    inputs, masks = _batch()
    masks["audio"][0, 12:] = False
    masks["face"][0, 3:] = False
    before = model(inputs, masks).logits
    inputs["audio"][0, 12:] = 1e3
    inputs["face"][0, 3:] = -1e3
    torch.testing.assert_close(model(inputs, masks).logits, before)


def test_bad_configuration_raises_config_error():
    with pytest.raises(ConfigError):
        create_model("tucker_fusion", num_classes=4, input_dims={"audio": 16, "text": 7})
    with pytest.raises(ConfigError):
        create_model("tucker_fusion", num_classes=4, input_dims=DIMS, ranks=(4, 6))
    with pytest.raises(ConfigError):
        create_model("tucker_fusion", num_classes=4, input_dims=DIMS, d_model=10, heads=4)
