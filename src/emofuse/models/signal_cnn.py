"""A 1-D convolutional encoder for multichannel physiological signals (EEG, peripheral), per modality.

The design follows the Deep ConvNet of Schirrmeister et al. (2017, "Deep learning with convolutional
neural networks for EEG decoding and visualization", Human Brain Mapping 38(11)): blocks of
convolution over time -> ELU -> max-pooling, with the number of filters growing block by block. The
input's channels are the convolution's input features, so the first convolution is the Deep ConvNet's
temporal + spatial filter pair in one step (a 1-D convolution over time across all channels). Here:

* per modality ``m`` (``[B, T, C_m]``, e.g. the resampled EEG of ``eeg_raw``): ``blocks`` blocks of
  ``Conv1d(kernel_size, same padding) -> ELU -> MaxPool1d(pool)``, filters ``filters * 2^k``;
  padded frames are zeroed before each convolution and never win a max-pool (the model's output
  does not depend on padding);
* masked mean over the remaining frames -> ``e_m``; absent modalities give zeros;
* late fusion: ``[e_1; ...; e_M]`` -> dropout -> linear classifier (logits).

``modality_weights`` (explanations) are the modalities' presence, normalised: the model has no
learnt weighting.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from emofuse.errors import ConfigError
from emofuse.models.base import EmotionModel, ModelOutput, masked_mean
from emofuse.models.registry import register_model


class ConvPoolEncoder(nn.Module):
    """``blocks`` x (Conv1d -> ELU -> masked MaxPool1d) over ``[B, T, C]`` -> ``([B, T', F], mask [B, T'])``."""

    def __init__(self, in_channels: int, filters: int, blocks: int, kernel_size: int, pool: int) -> None:
        super().__init__()
        if kernel_size % 2 == 0 or kernel_size < 1:
            raise ConfigError(f"kernel_size must be odd (same padding), got {kernel_size}")
        if blocks < 1 or pool < 1 or filters < 1:
            raise ConfigError(f"blocks, pool and filters must be >= 1, got {blocks}, {pool}, {filters}")
        dims = [in_channels] + [filters * 2 ** k for k in range(blocks)]
        self.convs = nn.ModuleList(nn.Conv1d(dims[k], dims[k + 1], kernel_size, padding="same") for k in range(blocks))
        self.pool = int(pool)
        self.out_dim = dims[-1]

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        h = x.transpose(1, 2)  # [B, C, T]
        keep = mask
        for conv in self.convs:
            h = F.elu(conv(h * keep.unsqueeze(1).to(h.dtype)))
            if self.pool > 1:
                h, keep = self._max_pool(h, keep)
        return h.transpose(1, 2), keep

    def _max_pool(self, h: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
        """Max over non-overlapping groups of ``pool`` frames (the last group may be partial); padded
        frames never win, a group without a valid frame becomes a zero, masked frame."""
        pad = (0, self.pool - 1)  # ceil(T / pool) groups, without a shape computed from T (ONNX export)
        h = F.pad(h.masked_fill(~keep.unsqueeze(1), float("-inf")), pad, value=float("-inf"))
        h = F.max_pool1d(h, self.pool, self.pool)
        keep = F.max_pool1d(F.pad(keep.unsqueeze(1).to(h.dtype), pad), self.pool, self.pool).squeeze(1) > 0
        return torch.where(keep.unsqueeze(1), h, torch.zeros_like(h)), keep


@register_model("signal_cnn")
class SignalCNN(EmotionModel):
    """Per-modality 1-D CNN encoders (Deep ConvNet-style blocks) and late fusion; see the module docstring.

    Args:
        num_classes: number of classes.
        input_dims: modality -> channels (e.g. ``{"eeg": 32, "peripheral": 8}``).
        filters: filters of the first block (doubled in each next block).
        blocks: conv-pool blocks per modality.
        kernel_size: temporal kernel (odd).
        pool: max-pool width and stride.
        dropout: before the classifier.
    """

    test_input_dims = {"eeg": 6, "peripheral": 3}
    test_seq_lens = {"eeg": 20, "peripheral": 11}
    test_kwargs = {"filters": 4, "blocks": 2, "kernel_size": 3, "pool": 2}

    def __init__(self, num_classes: int, input_dims: dict[str, int], filters: int = 16, blocks: int = 3,
                 kernel_size: int = 7, pool: int = 2, dropout: float = 0.3) -> None:
        super().__init__(num_classes, input_dims)
        self.encoders = nn.ModuleDict({m: ConvPoolEncoder(d, filters, blocks, kernel_size, pool)
                                       for m, d in self.input_dims.items()})
        width = sum(e.out_dim for e in self.encoders.values())
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, inputs: dict[str, Tensor], masks: dict[str, Tensor]) -> ModelOutput:
        pooled, present = [], []
        for m in self.modalities:
            mask = masks[m].bool()
            seq, keep = self.encoders[m](inputs[m], mask)
            pooled.append(masked_mean(seq, keep))
            present.append(mask.any(dim=-1))
        fused = torch.cat(pooled, dim=-1)
        logits = self.classifier(self.dropout(fused))
        weights = torch.stack(present, dim=1).to(fused.dtype)
        weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1.0)
        return ModelOutput(logits=logits, explanations={"modality_weights": weights}, embedding=fused)
