"""The one cross-attention layer (`emofuse.models.layers.CrossAttention`) every design uses."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from emofuse.models import create_model
from emofuse.models import layers
from emofuse.models.layers import CrossAttention
from emofuse.models.of_cmaer_cat import OFCMAERCAT
from emofuse.models.text_audio_attention import TextAudioAttention
from emofuse.models.tucker import TuckerFusion


def _reference(q, k, v, key_mask, heads):
    """softmax(Q K^T / sqrt(d_k)) V per head through torch's SDPA, masked keys excluded."""
    b, tq, d = q.shape
    split = lambda x: x.view(b, x.shape[1], heads, d // heads).transpose(1, 2)  # noqa: E731
    bias = torch.zeros(b, 1, 1, k.shape[1]).masked_fill(~key_mask[:, None, None, :], float("-inf"))
    out = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=bias)
    scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(d // heads) + bias
    return out.transpose(1, 2).reshape(b, tq, d), torch.softmax(scores, dim=-1)


def _key_mask():
    return torch.tensor([[True, True, True, False, False], [True, False, True, True, True],
                         [False, False, False, False, False]])


def test_every_attention_design_uses_the_shared_layer():
    torch.manual_seed(0)
    expected = {TextAudioAttention: ("attention",), OFCMAERCAT: ("attention",),
                TuckerFusion: ("attn_audio_to_face", "attn_face_to_audio")}
    for cls, names in expected.items():
        model = create_model(cls.model_name, 3, cls.test_input_dims, **cls.test_kwargs)
        assert all(isinstance(getattr(model, n), CrossAttention) for n in names), cls.__name__
        # torch's MultiheadAttention appears only inside the shared layer or a Transformer block
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.MultiheadAttention):
                parent = model.get_submodule(name.rpartition(".")[0])
                assert isinstance(parent, (CrossAttention, torch.nn.TransformerEncoderLayer)), (cls.__name__, name)


def test_no_model_file_defines_its_own_cross_attention():
    folder = Path(layers.__file__).parent
    for path in folder.glob("*.py"):
        if path.name != "layers.py":
            assert not re.search(r"^class \w*Cross\w*\(", path.read_text(), re.M), path.name


def test_caller_projected_attention_matches_reference():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 4, 12), torch.randn(3, 5, 12), torch.randn(3, 5, 12)
    key_mask = _key_mask()
    out, weights = CrossAttention(heads=3).eval()(q, k, key_mask, value=v)
    ref_out, ref_weights = _reference(q, k, v, key_mask, heads=3)
    torch.testing.assert_close(out[:2], ref_out[:2])
    torch.testing.assert_close(weights[:2], ref_weights[:2])
    assert torch.equal(out[2], torch.zeros(4, 12)) and torch.equal(weights[2], torch.zeros(3, 4, 5))


def test_query_mask_zeroes_padded_queries():
    torch.manual_seed(0)
    q, k = torch.randn(3, 4, 8), torch.randn(3, 5, 8)
    query_mask = torch.tensor([[True, True, False, False]] * 3)
    for layer, value in ((CrossAttention(2), k), (CrossAttention(2, dim=8), None)):
        out, weights = layer.eval()(q, k, _key_mask(), value=value, query_mask=query_mask)
        assert torch.equal(out[:, 2:], torch.zeros(3, 2, 8)) and torch.equal(weights[:, :, 2:], torch.zeros(3, 2, 2, 5))


@pytest.mark.parametrize("grad", [False, True])  # torch takes a fused kernel without grad
def test_self_projected_attention_matches_reference(grad):
    torch.manual_seed(0)
    layer = CrossAttention(heads=2, dim=12).eval()
    query, key, key_mask = torch.randn(3, 4, 12), torch.randn(3, 5, 12), _key_mask()
    with torch.set_grad_enabled(grad):
        out, weights = layer(query, key, key_mask)
    w_q, w_k, w_v = layer.attn.in_proj_weight.chunk(3)
    b_q, b_k, b_v = layer.attn.in_proj_bias.chunk(3)
    ref, ref_weights = _reference(F.linear(query, w_q, b_q), F.linear(key, w_k, b_k), F.linear(key, w_v, b_v), key_mask, 2)
    ref = layer.attn.out_proj(ref)
    torch.testing.assert_close(out[:2].detach(), ref[:2].detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights[:2].detach(), ref_weights[:2], atol=1e-5, rtol=1e-5)
    assert torch.equal(out[2].detach(), torch.zeros(4, 12)) and torch.equal(weights[2].detach(), torch.zeros(2, 4, 5))


def test_state_dict_keys_of_the_projecting_layer_are_stable():
    """Old tucker_fusion checkpoints hold these names."""
    keys = set(CrossAttention(2, dim=8).state_dict())
    assert keys == {"attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias"}
    assert CrossAttention(2).state_dict() == {}


def test_value_argument_must_fit_the_mode():
    q = torch.randn(1, 2, 8)
    mask = torch.ones(1, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="needs the projected value"):
        CrossAttention(2)(q, q, mask)
    with pytest.raises(ValueError, match="pass no value"):
        CrossAttention(2, dim=8)(q, q, mask, value=q)
