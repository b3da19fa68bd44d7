"""Padding must not change a model's output, and masked pooling must pool exactly the valid frames.

Batches are padded to the longest clip, so `evaluate`/`benchmark` (batched) and `predict` (one clip
at a time) only agree if every model ignores padded frames completely. These tests append padding
of every length 1-8 (garbage values, the mask saying so) and compare logits; the pooling tests
check each masked pooling helper against a loop over the valid frames, at several padding lengths.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from emofuse.models import create_model, list_models
from emofuse.models.base import masked_mean
from emofuse.models.early_fusion import mean_std_pool
from emofuse.models.gated_fusion import last_valid_state
from emofuse.models.layers import (DepthwiseSeparableResBlock1d, compact_valid_frames, downsample_frames,
                                   interpolate_to_length, masked_softmax)
from emofuse.models.of_cmaer_cat import masked_variance
from emofuse.models.pooling import AttentiveStatsPool, SequenceEncoder
from emofuse.models.registry import _REGISTRY

NUM_CLASSES = 4
PAD_LENGTHS = range(1, 9)
ATOL = 1e-5


# --------------------------------------------------------------------------------------------
# Every registered model: logits do not depend on how much padding follows a clip
# --------------------------------------------------------------------------------------------

def _model(name: str) -> tuple[nn.Module, dict[str, int], dict[str, int]]:
    """The model at its test sizes, in eval mode, with random BatchNorm running statistics."""
    cls = _REGISTRY[name]
    dims = dict(getattr(cls, "test_input_dims", {"audio": 12, "face": 7}))
    lens = {m: getattr(cls, "test_seq_lens", {}).get(m, 6) for m in dims}
    torch.manual_seed(0)
    model = create_model(name, num_classes=NUM_CLASSES, input_dims=dims, **getattr(cls, "test_kwargs", {}))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                shape = module.running_mean.shape
                module.running_mean.copy_(torch.randn(shape, generator=g))
                module.running_var.copy_(torch.rand(shape, generator=g) + 0.5)
                if module.affine:
                    module.weight.copy_(torch.randn(shape, generator=g))
                    module.bias.copy_(torch.randn(shape, generator=g))
    return model.eval(), dims, lens


def _clips(dims: dict[str, int], lens: dict[str, int]) -> tuple[dict, dict]:
    """Two clips, no padding beyond the ragged second one (its sequences have about half the frames)."""
    g = torch.Generator().manual_seed(2)
    inputs, masks = {}, {}
    for m, d in dims.items():
        t = lens[m]
        inputs[m] = torch.randn(2, t, d, generator=g)
        masks[m] = torch.ones(2, t, dtype=torch.bool)
        if t > 1:  # a sequence: the second clip is shorter, its tail is padding
            masks[m][1, (t + 1) // 2:] = False
            inputs[m][1, (t + 1) // 2:] = 0.0
    return inputs, masks


def _pad(inputs: dict, masks: dict, lens: dict[str, int], extra: int, seed: int) -> tuple[dict, dict]:
    """Append ``extra`` padded frames of garbage to every sequence modality (vectors stay length 1)."""
    g = torch.Generator().manual_seed(seed)
    out_x, out_m = {}, {}
    for m, x in inputs.items():
        if lens[m] == 1:
            out_x[m], out_m[m] = x, masks[m]
            continue
        junk = 10.0 * torch.randn(x.shape[0], extra, x.shape[2], generator=g)
        out_x[m] = torch.cat([x, junk], dim=1)
        out_m[m] = torch.cat([masks[m], masks[m].new_zeros(x.shape[0], extra)], dim=1)
    return out_x, out_m


MODELS = list_models()


@pytest.mark.parametrize("name", MODELS)
def test_padding_length_does_not_change_logits(name):
    model, dims, lens = _model(name)
    inputs, masks = _clips(dims, lens)
    with torch.no_grad():
        reference = model(inputs, masks).logits
        for extra in PAD_LENGTHS:
            padded = model(*_pad(inputs, masks, lens, extra, seed=extra)).logits
            diff = (padded - reference).abs().max().item()
            assert diff <= ATOL, f"{name}: {extra} padded frames change the logits by {diff:.2e}"


@pytest.mark.parametrize("name", MODELS)
def test_a_clip_alone_equals_the_clip_in_a_padded_batch(name):
    """`predict` runs one unpadded clip; `evaluate` runs it inside a batch padded to the longest clip."""
    model, dims, lens = _model(name)
    inputs, masks = _clips(dims, lens)
    with torch.no_grad():
        batched = model(*_pad(inputs, masks, lens, 3, seed=0)).logits
        for b in range(2):
            alone_x = {m: inputs[m][b:b + 1, : int(masks[m][b].sum())] for m in dims}
            alone_m = {m: masks[m][b:b + 1, : int(masks[m][b].sum())] for m in dims}
            alone = model(alone_x, alone_m).logits
            diff = (alone - batched[b:b + 1]).abs().max().item()
            assert diff <= ATOL, f"{name}: clip {b} alone differs from the padded batch by {diff:.2e}"


# --------------------------------------------------------------------------------------------
# Masked pooling helpers against a hand computation, at every padding length
# --------------------------------------------------------------------------------------------

LENGTHS = (5, 2, 0)  # valid frames per row; 0 = absent modality
DIM = 3


def _ragged(extra: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``x [3, max(LENGTHS) + extra, DIM]`` with garbage (large values) in every padded frame."""
    g = torch.Generator().manual_seed(seed)
    t = max(LENGTHS) + extra
    x = torch.randn(len(LENGTHS), t, DIM, generator=g, dtype=torch.float64)
    mask = torch.arange(t).unsqueeze(0) < torch.tensor(LENGTHS).unsqueeze(1)
    return torch.where(mask.unsqueeze(-1), x, 100.0 + 50.0 * x), mask


def _valid(x: torch.Tensor, mask: torch.Tensor, b: int) -> torch.Tensor:
    return x[b][mask[b]]


def _mean_rows(x, mask):
    return torch.stack([_valid(x, mask, b).mean(0) if mask[b].any() else x.new_zeros(x.shape[-1])
                        for b in range(len(x))])


def _var_rows(x, mask):  # population variance (divide by the number of valid frames)
    return torch.stack([_valid(x, mask, b).var(0, unbiased=False) if mask[b].any() else x.new_zeros(DIM)
                        for b in range(len(x))])


@pytest.mark.parametrize("extra", [0, 1, 3, 8])
def test_masked_mean_is_the_mean_of_the_valid_frames(extra):
    x, mask = _ragged(extra)
    expected = torch.stack([x[0, :5].sum(0) / 5, x[1, :2].sum(0) / 2, torch.zeros(DIM, dtype=x.dtype)])
    torch.testing.assert_close(masked_mean(x, mask), expected)


@pytest.mark.parametrize("extra", [0, 1, 3, 8])
def test_mean_std_pool_and_masked_variance_use_valid_frames_only(extra):
    x, mask = _ragged(extra)
    mean, var = _mean_rows(x, mask), _var_rows(x, mask)
    std = torch.sqrt(var.clamp_min(1e-6)) * mask.any(1, keepdim=True)
    torch.testing.assert_close(mean_std_pool(x, mask), torch.cat([mean, std], dim=-1))
    torch.testing.assert_close(masked_variance(x, mask), var)


@pytest.mark.parametrize("extra", [0, 1, 3, 8])
def test_downsample_frames_averages_valid_frames_of_each_group(extra):
    x, mask = _ragged(extra)
    stride = 2
    y, y_mask = downsample_frames(x, mask, stride)
    assert y.shape[1] == -(-x.shape[1] // stride)
    for b in range(len(x)):
        for k in range(y.shape[1]):
            group = slice(k * stride, (k + 1) * stride)
            valid = x[b, group][mask[b, group]]
            assert bool(y_mask[b, k]) == (len(valid) > 0)
            expected = valid.mean(0) if len(valid) else torch.zeros(DIM, dtype=x.dtype)
            torch.testing.assert_close(y[b, k], expected)


@pytest.mark.parametrize("extra", [0, 1, 3, 8])
def test_interpolate_to_length_resamples_valid_frames_only(extra):
    x, mask = _ragged(extra)
    length = 7
    y, y_mask = interpolate_to_length(x, mask, length)
    for b in range(len(x)):
        valid = _valid(x, mask, b)
        assert y_mask[b].tolist() == [len(valid) > 0] * length
        if len(valid) == 0:
            assert torch.equal(y[b], torch.zeros_like(y[b]))
            continue
        pos = torch.linspace(0, len(valid) - 1, length, dtype=x.dtype)  # align_corners grid
        lo = pos.floor().long().clamp_max(len(valid) - 1)
        hi = (lo + 1).clamp_max(len(valid) - 1)
        frac = (pos - lo).unsqueeze(-1)
        torch.testing.assert_close(y[b], valid[lo] * (1 - frac) + valid[hi] * frac)


def test_interpolate_to_length_with_padding_inside_the_row():
    """Any mask works, not only valid-frames-first: padded frames before and between valid ones are skipped."""
    x, _ = _ragged(4)
    mask = torch.zeros(x.shape[:2], dtype=torch.bool)
    mask[0, [1, 2, 5, 7]] = True  # holes and leading padding
    mask[1, [3]] = True  # one valid frame: repeated
    y, y_mask = interpolate_to_length(x, mask, 4)
    v = x[0, [1, 2, 5, 7]]
    torch.testing.assert_close(y[0], v)  # 4 valid frames onto 4 outputs: the frames themselves, in order
    torch.testing.assert_close(y[1], x[1, 3].expand(4, DIM))
    assert y_mask.tolist() == [[True] * 4, [True] * 4, [False] * 4]
    moved, lengths = compact_valid_frames(x, mask)
    assert lengths.tolist() == [4, 1, 0]
    torch.testing.assert_close(moved[0, :4], v)


@pytest.mark.parametrize("extra", [0, 1, 3, 8])
def test_masked_softmax_and_last_valid_state(extra):
    x, mask = _ragged(extra)
    scores = x[..., 0]
    weights = masked_softmax(scores, mask)
    for b, n in enumerate(LENGTHS):
        expected = torch.zeros_like(scores[b])
        if n:
            expected[:n] = torch.softmax(scores[b, :n], dim=0)
        torch.testing.assert_close(weights[b], expected)
    last = last_valid_state(x, mask)
    torch.testing.assert_close(last, torch.stack([x[0, 4], x[1, 1], torch.zeros(DIM, dtype=x.dtype)]))


@pytest.mark.parametrize("extra", [0, 1, 3, 8])
def test_attentive_stats_pool_weights_only_valid_frames(extra):
    x, mask = _ragged(extra)
    torch.manual_seed(0)
    pool = AttentiveStatsPool(DIM, attention_dim=4).double()
    with torch.no_grad():
        pooled, weights = pool(x, mask)
        for b, n in enumerate(LENGTHS):
            if n == 0:
                assert torch.equal(pooled[b], torch.zeros_like(pooled[b])) and not weights[b].any()
                continue
            valid = x[b, :n]
            a = torch.softmax(pool.score(valid).squeeze(-1), dim=0)
            mean = a @ valid
            std = torch.sqrt((a @ (valid * valid) - mean * mean).clamp_min(1e-6))
            torch.testing.assert_close(pooled[b], torch.cat([mean, std]))
            torch.testing.assert_close(weights[b, :n], a)
            assert not weights[b, n:].any()


@pytest.mark.parametrize("extra", [0, 1, 3, 8])
def test_sequence_encoder_vector_path_is_a_masked_mean(extra):
    """`SequenceEncoder(vector=True)` pools its frames with its own masked mean (model-local)."""
    x, mask = _ragged(extra)
    torch.manual_seed(0)
    enc = SequenceEncoder(DIM, hidden=4, out_dim=4, dropout=0.0, vector=True).double().eval()
    with torch.no_grad():
        out, weights = enc(x, mask)
        hidden = enc.frame(x)
        expected = enc.out(_mean_rows(hidden, mask)) * mask.any(1, keepdim=True)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(weights.sum(1), mask.any(1).to(x.dtype))


@pytest.mark.parametrize("extra", [1, 3, 8])
def test_stacked_depthwise_blocks_ignore_padding(extra):
    """Each `DepthwiseSeparableResBlock1d` re-zeroes padding, so a stack of them (random BatchNorm
    statistics, eval mode) gives the same valid frames as on the unpadded clip, and zeros elsewhere."""
    torch.manual_seed(0)
    blocks = nn.ModuleList(DepthwiseSeparableResBlock1d(DIM, 3) for _ in range(2)).double()
    with torch.no_grad():
        for module in blocks.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.running_mean.normal_()
                module.bias.normal_()
    blocks.eval()
    x, mask = _ragged(extra)

    def run(h, m):
        h = h.transpose(1, 2) * m.unsqueeze(1)
        for block in blocks:
            h = block(h, m)
        return h.transpose(1, 2)

    with torch.no_grad():
        out = run(x, mask)
        for b, n in enumerate(LENGTHS[:2]):
            torch.testing.assert_close(out[b, :n], run(x[b:b + 1, :n], mask[b:b + 1, :n])[0])
        assert not out[~mask].any()
