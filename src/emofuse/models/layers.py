"""Small building blocks shared by several fusion models.

Everything here is mask-aware: ``mask [B, T]`` is True on valid frames, and a sample whose
modality is absent has an all-False row. Functions never return NaN for such rows.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def compact_valid_frames(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Move the valid frames of each row to the front (keeping their order).

    Returns ``(x_sorted [B, T, D], lengths [B])``; frames after ``lengths[b]`` are padding.
    """
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
    x_sorted = torch.gather(x, 1, order.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    return x_sorted, mask.sum(dim=1)


def downsample_frames(x: Tensor, mask: Tensor, stride: int) -> tuple[Tensor, Tensor]:
    """Masked average of non-overlapping groups of ``stride`` frames: ``[B, T, D] -> [B, ceil(T/stride), D]``."""
    if stride <= 1:
        return x, mask
    b, t, d = x.shape
    pad = (-t) % stride
    if pad:
        x = torch.cat([x, x.new_zeros(b, pad, d)], dim=1)
        mask = torch.cat([mask, mask.new_zeros(b, pad)], dim=1)
    m = mask.to(x.dtype).view(b, -1, stride, 1)
    summed = (x.view(b, -1, stride, d) * m).sum(2)
    count = m.sum(2)
    return summed / count.clamp_min(1.0), count.squeeze(-1) > 0


def interpolate_to_length(x: Tensor, mask: Tensor, length: int) -> tuple[Tensor, Tensor]:
    """Mask-aware linear interpolation of ``x [B, T, D]`` to ``[B, length, D]``.

    Only the valid frames of each sample are resampled (``align_corners=True`` grid: the first
    and last valid frames map to output frames 0 and ``length - 1``), so padding never leaks into
    the result. A sample with one valid frame (e.g. a per-clip action-unit vector, ``T = 1``) is
    repeated over all ``length`` frames; a sample with none gives zeros and an all-False mask.

    Returns ``(y, out_mask)`` with ``out_mask [B, length]`` True for every sample that had at least
    one valid frame.
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    batch, _, dim = x.shape
    x_sorted, lengths = compact_valid_frames(x, mask)
    last = (lengths - 1).clamp_min(0).to(x.dtype)  # index of the last valid frame
    grid = torch.linspace(0.0, 1.0, length, device=x.device, dtype=x.dtype) if length > 1 else x.new_zeros(1)
    pos = grid.unsqueeze(0) * last.unsqueeze(1)  # [B, length]
    lo = pos.floor().long()
    hi = torch.minimum(lo + 1, (lengths - 1).clamp_min(0).unsqueeze(1))
    frac = (pos - lo.to(x.dtype)).unsqueeze(-1)
    def take(idx: Tensor) -> Tensor:
        return torch.gather(x_sorted, 1, idx.unsqueeze(-1).expand(-1, -1, dim))

    y = take(lo) * (1.0 - frac) + take(hi) * frac
    present = lengths > 0
    y = y * present.to(x.dtype).view(batch, 1, 1)
    return y, present.unsqueeze(1).expand(batch, length).clone()


def masked_softmax(scores: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    """Softmax over ``dim`` restricted to ``mask``; a slice with nothing valid gives zeros (not NaN)."""
    filled = scores.masked_fill(~mask, float("-inf"))
    any_valid = mask.any(dim=dim, keepdim=True)
    filled = torch.where(any_valid, filled, torch.zeros_like(filled))
    return torch.softmax(filled, dim=dim) * mask.to(scores.dtype)


def masked_attention_weights(scores: Tensor, key_mask: Tensor, query_mask: Tensor | None = None) -> Tensor:
    """Softmax of ``scores [B, h, T_q, T_k]`` over valid keys only.

    Rows whose keys are all masked (an absent modality) get all-zero weights instead of the NaN
    a plain ``-inf`` masked softmax gives; padded query rows are zeroed too. Masked keys receive
    exactly zero weight, so their values cannot leak into the output.
    """
    weights = masked_softmax(scores, key_mask[:, None, None, :])
    if query_mask is not None:
        weights = weights * query_mask[:, None, :, None].to(scores.dtype)
    return weights


class CrossAttention(nn.Module):
    """Masked multi-head cross-attention (Vaswani et al. 2017, Sec. 3.2.2): the one attention layer
    every fusion design uses. ``softmax(Q K^T / sqrt(d_k)) V`` per head, over valid keys only.

    * ``CrossAttention(heads, dropout)`` — the caller owns the Q/K/V projections (so one
      modality's projections can serve several directed pairs); ``forward(q, k, key_mask,
      value=v, query_mask=...)`` takes projected ``[B, T, h * d_k]`` sequences and returns the
      attended sequence ``[B, T_q, h * d_k]``. It has no parameters.
    * ``CrossAttention(heads, dropout, dim=D)`` — the layer owns the input and output projections
      (``torch.nn.MultiheadAttention``, state-dict keys ``attn.*``); ``forward(query, key, key_mask)``
      attends ``query [B, T_q, D]`` over ``key [B, T_k, D]`` (keys are the values) and returns
      ``[B, T_q, D]``.

    Both return ``(out, weights [B, h, T_q, T_k])``. Weights over masked keys are exactly zero, and
    a sample without any valid key gets zero output and zero weights (never NaN), so an absent key
    modality contributes nothing. Padded query rows (``query_mask`` False) are zero too.
    """

    def __init__(self, heads: int, dropout: float = 0.0, dim: int | None = None) -> None:
        super().__init__()
        self.heads = int(heads)
        if dim is None:
            self.dropout = nn.Dropout(dropout)
        else:
            self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)

    @property
    def owns_projections(self) -> bool:
        """True when the layer holds its own Q/K/V and output projections (built with ``dim``)."""
        return hasattr(self, "attn")

    def _split(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, query: Tensor, key: Tensor, key_mask: Tensor, value: Tensor | None = None,
                query_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Attend ``query`` over ``key`` (values: ``value``, or ``key`` when the layer projects)."""
        if self.owns_projections:
            if value is not None:
                raise ValueError("a CrossAttention built with dim projects its keys into values; pass no value")
            return self._projected(query, key, key_mask, query_mask)
        if value is None:
            raise ValueError("a CrossAttention without dim needs the projected value sequence")
        qh, kh, vh = self._split(query), self._split(key), self._split(value)
        scores = qh @ kh.transpose(-1, -2) / math.sqrt(qh.shape[-1])
        weights = masked_attention_weights(scores, key_mask, query_mask)
        attended = self.dropout(weights) @ vh  # [B, h, T_q, d_k]
        b, _, t_q, _ = attended.shape
        return attended.transpose(1, 2).reshape(b, t_q, -1), weights

    def _projected(self, query: Tensor, key: Tensor, key_mask: Tensor,
                   query_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        # nn.MultiheadAttention returns NaN when every key of a sample is masked: such samples
        # attend to their (ignored) keys unmasked, and their output and weights are then zeroed.
        has_keys = key_mask.any(dim=1)
        padding = ~key_mask & has_keys.unsqueeze(1)  # True = ignore; never a fully masked row
        out, weights = self.attn(query, key, key, key_padding_mask=padding, need_weights=True,
                                 average_attn_weights=False)
        keep = has_keys.to(query.dtype)
        out, weights = out * keep.view(-1, 1, 1), weights * keep.view(-1, 1, 1, 1)
        if query_mask is not None:
            rows = query_mask.to(query.dtype)
            out, weights = out * rows.unsqueeze(-1), weights * rows[:, None, :, None]
        return out, weights


class DepthwiseSeparableResBlock1d(nn.Module):
    """Residual depthwise-separable temporal convolution (MobileNet, Howard et al. 2017, Sec. 3.1).

    ``x + BN(pointwise(ReLU(BN(depthwise(x)))))`` followed by ReLU; padded frames are re-zeroed so
    they never feed the next layer.
    """

    def __init__(self, channels: int, kernel_size: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=False),
            nn.BatchNorm1d(channels), nn.ReLU(),
            nn.Conv1d(channels, channels, 1, bias=False), nn.BatchNorm1d(channels), nn.Dropout(dropout),
        )

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x [B, C, T]``, ``mask [B, T]`` → ``[B, C, T]``."""
        m = mask.unsqueeze(1).to(x.dtype)
        return torch.relu(x + self.body(x * m)) * m
