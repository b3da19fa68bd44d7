"""Dual-stream audio-visual network (after Yang et al.: MFCC/FRFT-MFCC audio + MobileNet-style face).

Pipeline (see docs/models/dual_stream.md):

1. Audio stream: Conv1D-BN-ReLU-MaxPool(2) blocks over (FRFT-)MFCC sequences ``[B, T, D_a]``
   (the MFCC vs FRFT-MFCC ablation is a feature choice, made in the YAML config).
2. Visual stream: a 1x1 Conv1D stem then residual depthwise-separable Conv1D blocks over per-frame
   face embeddings ``[B, T_v, D_v]`` (MobileNet, Howard et al. 2017, Sec. 3.1).
3. Modality attention: a score ``s_m = wᵀ tanh(P_m h̄_m)`` from each stream's masked mean ``h̄_m``,
   softmax over the modalities present (absent ones get weight 0); each stream is multiplied by
   its weight. Returned as ``explanations["modality_weights"] [B, 2]`` ordered ``("audio", "face")``.
4. ``fusion="intermediate"``: both streams are resampled to ``t_common`` frames (mask-aware linear
   interpolation; a length-1 input is repeated), concatenated on channels, passed through four
   Conv1D residual blocks along time, then masked mean pooling and a linear classifier.
   ``fusion="feature"``: each stream is pooled first (masked mean) and the two weighted vectors are
   concatenated and classified (feature-level fusion, the paper's comparison).

Reading of the paper: the attention re-weighting is applied to the streams *before* the fusion
convolutions, because after them the two modalities are mixed and can no longer be weighted apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from emofuse.errors import ConfigError, DataError
from emofuse.models.base import EmotionModel, ModelOutput, masked_mean, presence
from emofuse.models.layers import DepthwiseSeparableResBlock1d, interpolate_to_length, masked_softmax
from emofuse.models.registry import register_model

MODALITY_ORDER = ("audio", "face")
FUSION_MODES = ("intermediate", "feature")


class ConvPoolBlock1d(nn.Module):
    """Conv1D-BN-ReLU-MaxPool(2) on ``[B, C, T]``; the mask is max-pooled alongside."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=False),
                                  nn.BatchNorm1d(out_ch), nn.ReLU())

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        m = mask.unsqueeze(1).to(x.dtype)
        h = self.conv(x * m) * m  # ReLU output ≥ 0, so zeroed padding never wins the max
        h = F.max_pool1d(h, 2, ceil_mode=True)
        pooled_mask = F.max_pool1d(m, 2, ceil_mode=True).squeeze(1) > 0
        return h, pooled_mask


class ResidualConvBlock1d(nn.Module):
    """Standard residual block ``ReLU(x + BN(conv(ReLU(BN(conv(x))))))`` along time (He et al. 2016)."""

    def __init__(self, channels: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv1d(channels, channels, kernel_size, padding=pad, bias=False), nn.BatchNorm1d(channels), nn.ReLU(),
            nn.Dropout(dropout), nn.Conv1d(channels, channels, kernel_size, padding=pad, bias=False),
            nn.BatchNorm1d(channels),
        )

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        m = mask.unsqueeze(1).to(x.dtype)
        return torch.relu(x + self.body(x * m)) * m


class AudioStream(nn.Module):
    """Stacked `ConvPoolBlock1d` over ``[B, T, D_a]`` → ``([B, C, T'], mask [B, T'])``, ``T' ≈ T / 2^n``."""

    def __init__(self, in_dim: int, channels: Sequence[int], kernel_size: int) -> None:
        super().__init__()
        dims = [in_dim, *channels]
        self.blocks = nn.ModuleList(ConvPoolBlock1d(i, o, kernel_size) for i, o in zip(dims[:-1], dims[1:]))
        self.out_channels = dims[-1]

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        h = x.transpose(1, 2)
        for block in self.blocks:
            h, mask = block(h, mask)
        return h, mask


class VisualStream(nn.Module):
    """1x1 Conv1D stem + residual depthwise-separable blocks over ``[B, T, D_v]`` → ``[B, C, T]``."""

    def __init__(self, in_dim: int, channels: int, blocks: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(in_dim, channels, 1, bias=False), nn.BatchNorm1d(channels), nn.ReLU())
        self.blocks = nn.ModuleList(DepthwiseSeparableResBlock1d(channels, kernel_size, dropout) for _ in range(blocks))
        self.out_channels = channels

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        m = mask.unsqueeze(1).to(x.dtype)
        h = self.stem(x.transpose(1, 2) * m) * m
        for block in self.blocks:
            h = block(h, mask)
        return h, mask


class ModalityAttention(nn.Module):
    """Softmax modality weights from pooled stream vectors: ``s_m = wᵀ tanh(P_m h̄_m)``."""

    def __init__(self, in_dims: Sequence[int], attn_dim: int) -> None:
        super().__init__()
        self.proj = nn.ModuleList(nn.Linear(d, attn_dim) for d in in_dims)
        self.score = nn.Linear(attn_dim, 1, bias=False)

    def forward(self, pooled: Sequence[Tensor], present: Tensor) -> Tensor:
        """``pooled[m] [B, C_m]``, ``present [B, M]`` bool → weights ``[B, M]`` (0 for absent)."""
        scores = torch.cat([self.score(torch.tanh(p(h))) for p, h in zip(self.proj, pooled)], dim=-1)
        return masked_softmax(scores, present, dim=-1)


@register_model("dual_stream")
class DualStream(EmotionModel):
    """Dual-stream (MFCC or FRFT-MFCC audio, face embeddings) network with attention re-weighting.

    Args:
        fusion: ``"intermediate"`` (time-aligned concatenation + 4 residual Conv1D blocks) or
            ``"feature"`` (pool each stream, concatenate vectors).
        audio_channels: channels of the audio Conv1D-BN-ReLU-MaxPool blocks (one block each).
        face_channels / face_blocks: width and depth of the depthwise-separable visual stream.
        fusion_channels / fusion_blocks: width and number (paper: 4) of fusion residual blocks.
        t_common: common length the streams are interpolated to (intermediate fusion only).
        attn_dim: hidden size of the modality-attention scorer.
        kernel_size: temporal kernel of every Conv1D.
        dropout: dropout inside residual blocks and before the classifier.
    """

    test_input_dims = {"audio": 13, "face": 9}
    test_seq_lens = {"audio": 24, "face": 6}
    test_kwargs = {"audio_channels": (8, 12), "face_channels": 8, "face_blocks": 1, "fusion_channels": 8,
                   "t_common": 8, "attn_dim": 4}

    def __init__(self, num_classes: int, input_dims: dict[str, int], fusion: str = "intermediate",
                 audio_channels: Sequence[int] = (32, 64), face_channels: int = 64, face_blocks: int = 2,
                 fusion_channels: int = 64, fusion_blocks: int = 4, t_common: int = 32, attn_dim: int = 32,
                 kernel_size: int = 3, dropout: float = 0.2) -> None:
        super().__init__(num_classes, input_dims)
        if set(input_dims) != set(MODALITY_ORDER):
            raise ConfigError(f"dual_stream needs exactly the modalities {MODALITY_ORDER}, got {tuple(input_dims)}")
        if fusion not in FUSION_MODES:
            raise ConfigError(f"fusion must be one of {FUSION_MODES}, got {fusion!r}")
        if not audio_channels or kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError("audio_channels must be non-empty and kernel_size a positive odd number")
        self.modalities = MODALITY_ORDER
        self.fusion, self.t_common = fusion, int(t_common)
        self.audio_stream = AudioStream(self.input_dims["audio"], [int(c) for c in audio_channels], kernel_size)
        self.face_stream = VisualStream(self.input_dims["face"], face_channels, face_blocks, kernel_size, dropout)
        stream_dims = (self.audio_stream.out_channels, self.face_stream.out_channels)
        self.modality_attention = ModalityAttention(stream_dims, attn_dim)
        if fusion == "intermediate":
            self.fusion_stem = nn.Sequential(nn.Conv1d(sum(stream_dims), fusion_channels, 1, bias=False),
                                             nn.BatchNorm1d(fusion_channels), nn.ReLU())
            self.fusion_blocks = nn.ModuleList(ResidualConvBlock1d(fusion_channels, kernel_size, dropout)
                                               for _ in range(fusion_blocks))
            fused_dim = fusion_channels
        else:
            fused_dim = sum(stream_dims)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(fused_dim, num_classes))

    def forward(self, inputs: dict[str, Tensor], masks: dict[str, Tensor]) -> ModelOutput:
        for m in self.modalities:
            if m not in inputs or m not in masks:
                raise DataError(None, f"dual_stream: batch has no {m!r} input/mask")
        streams = [self.audio_stream(inputs["audio"], masks["audio"]), self.face_stream(inputs["face"], masks["face"])]
        present = torch.stack([masks[m].any(-1) for m in self.modalities], dim=-1)  # [B, 2]
        pooled = [masked_mean(h.transpose(1, 2), mask) for h, mask in streams]
        weights = self.modality_attention(pooled, present)
        if self.fusion == "feature":
            fused = torch.cat([p * weights[:, i:i + 1] for i, p in enumerate(pooled)], dim=-1)
        else:
            aligned, aligned_masks = [], []
            for i, (h, mask) in enumerate(streams):
                seq, seq_mask = interpolate_to_length(h.transpose(1, 2), mask, self.t_common)
                aligned.append(seq.transpose(1, 2) * weights[:, i].view(-1, 1, 1))
                aligned_masks.append(seq_mask)
            union = aligned_masks[0] | aligned_masks[1]
            h = self.fusion_stem(torch.cat(aligned, dim=1)) * union.unsqueeze(1).to(aligned[0].dtype)
            for block in self.fusion_blocks:
                h = block(h, union)
            fused = masked_mean(h.transpose(1, 2), union)
        fused = fused * presence(present).unsqueeze(-1)  # a sample with no modality gives a constant
        return ModelOutput(logits=self.classifier(fused), explanations={"modality_weights": weights}, embedding=fused)
