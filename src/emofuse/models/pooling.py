"""Per-modality encoders with learned attention pooling, and the audio(+face) model built on them.

Attention pooling (Okabe et al. 2018, "Attentive statistics pooling"): frame scores
``e_t = vᵀ tanh(W h_t + b)``, weights ``a = softmax(e)`` over valid frames, pooled output
``[Σ a_t h_t ; sqrt(Σ a_t h_t² − μ²)]`` (weighted mean and standard deviation).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from emofuse.models.base import EmotionModel, ModelOutput, presence
from emofuse.models.layers import downsample_frames
from emofuse.models.registry import register_model


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling over valid frames; returns ``([B, 2D], weights [B, T])``."""

    def __init__(self, dim: int, attention_dim: int = 128) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, attention_dim), nn.Tanh(), nn.Linear(attention_dim, 1))

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        scores = self.score(x).squeeze(-1).masked_fill(~mask, float("-inf"))
        # rows without any valid frame: uniform weights over nothing -> zeros, never NaN
        any_valid = mask.any(-1, keepdim=True)
        weights = torch.softmax(torch.where(any_valid, scores, torch.zeros_like(scores)), dim=-1)
        weights = weights * mask.to(weights.dtype)
        mean = torch.einsum("bt,btd->bd", weights, x)
        var = torch.einsum("bt,btd->bd", weights, x * x) - mean * mean
        std = torch.sqrt(var.clamp_min(1e-6))
        std = std * any_valid.to(std.dtype)
        return torch.cat([mean, std], dim=-1), weights


class SequenceEncoder(nn.Module):
    """Frame-wise MLP followed by attentive statistics pooling: ``[B, T, D] -> [B, out_dim]``.

    With ``vector=True`` (per-clip feature vectors such as action-unit means or eGeMAPS
    functionals, passed as length-1 sequences) there is nothing to attend over: the frame MLP's
    output is used directly and no attention parameters are created. ``frame_stride`` > 1
    first averages groups of that many frames (e.g. 50 Hz Whisper states → 12.5 Hz), which
    makes CPU training several times cheaper.
    """

    def __init__(self, in_dim: int, hidden: int = 256, out_dim: int = 256, dropout: float = 0.2,
                 vector: bool = False, frame_stride: int = 1) -> None:
        super().__init__()
        self.vector = vector
        self.frame_stride = int(frame_stride)
        self.frame = nn.Sequential(nn.LayerNorm(in_dim), nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.GELU())
        self.pool = None if vector else AttentiveStatsPool(hidden)
        self.out = nn.Sequential(nn.Linear(hidden if vector else 2 * hidden, out_dim), nn.GELU(), nn.Dropout(dropout))

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        if not self.vector:
            x, mask = downsample_frames(x, mask, self.frame_stride)
        h = self.frame(x)
        if self.pool is None:  # a per-clip vector: masked mean over its (single) frame
            weights = mask.to(h.dtype) / mask.sum(-1, keepdim=True).clamp_min(1).to(h.dtype)
            pooled = torch.einsum("bt,btd->bd", weights, h)
        else:
            pooled, weights = self.pool(h, mask)
        return self.out(pooled) * presence(mask).unsqueeze(-1), weights


@register_model("attention_pooling")
class AttentionPoolingClassifier(EmotionModel):
    """Audio-only (or any modalities) baseline: one attentive-pooling encoder per modality,
    embeddings of absent modalities zeroed, concatenated with the presence flags, MLP head.

    Args:
        vector_modalities: modalities given as one vector per clip (no attention pooling).
        frame_stride: average this many consecutive frames before encoding (1 = off).

    Explanations: ``"attention/<modality>"`` — the frame weights ``[B, T]`` of each modality.
    """

    test_input_dims = {"audio": 16, "face": 7}
    test_seq_lens = {"audio": 9, "face": 1}
    test_kwargs = {"hidden": 16, "embed_dim": 8, "vector_modalities": ["face"], "frame_stride": 2}

    def __init__(self, num_classes: int, input_dims: dict[str, int], hidden: int = 256, embed_dim: int = 256,
                 dropout: float = 0.2, vector_modalities: tuple[str, ...] | list[str] = (),
                 frame_stride: int = 1) -> None:
        super().__init__(num_classes, input_dims)
        self.encoders = nn.ModuleDict({m: SequenceEncoder(d, hidden, embed_dim, dropout, vector=m in vector_modalities,
                                                          frame_stride=frame_stride)
                                       for m, d in input_dims.items()})
        n = len(input_dims)
        self.head = nn.Sequential(nn.Linear(n * embed_dim + n, embed_dim), nn.GELU(), nn.Dropout(dropout),
                                  nn.Linear(embed_dim, num_classes))

    def forward(self, inputs: dict[str, Tensor], masks: dict[str, Tensor]) -> ModelOutput:
        parts, flags, explanations = [], [], {}
        for m in self.modalities:
            emb, weights = self.encoders[m](inputs[m], masks[m])
            parts.append(emb)
            flags.append(presence(masks[m]).unsqueeze(-1))
            explanations[f"attention/{m}"] = weights
        fused = torch.cat(parts + flags, dim=-1)
        return ModelOutput(logits=self.head(fused), explanations=explanations, embedding=fused)
