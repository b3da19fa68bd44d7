"""Classification losses: focal loss (Lin et al. 2017) and inverse-frequency class weights."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    gamma: float = 2.0,
    alpha: float | None = None,
    weight: Tensor | None = None,
    label_smoothing: float = 0.0,
) -> Tensor:
    """Multi-class focal loss ``FL = -alpha * (1 - p_t)^gamma * log p_t``, averaged over the batch.

    ``weight`` (per-class) and ``label_smoothing`` follow `torch.nn.functional.cross_entropy`
    exactly: each class ``c`` in the smoothed target distribution ``q`` contributes
    ``-q_c w_c (1 - p_c)^gamma log p_c``, and the batch mean divides by ``sum_i w[y_i]``. With
    ``gamma=0`` and ``alpha=None`` the result equals ``F.cross_entropy`` with the same
    ``weight`` and ``label_smoothing``.
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must be [B, C], got shape {tuple(logits.shape)}")
    num_classes = logits.shape[1]
    log_p = F.log_softmax(logits.float(), dim=-1)
    q = F.one_hot(target, num_classes).to(log_p.dtype)
    if label_smoothing > 0:
        q = q * (1.0 - label_smoothing) + label_smoothing / num_classes
    per_class = -log_p
    if gamma > 0:
        per_class = per_class * (1.0 - log_p.exp()).clamp_min(0.0).pow(gamma)
    if weight is not None:
        w = weight.to(log_p)
        per_class = per_class * w
        denom = w[target].sum()
    else:
        denom = torch.tensor(float(target.shape[0]), device=logits.device)
    loss = (q * per_class).sum(dim=-1).sum() / denom.clamp_min(torch.finfo(log_p.dtype).tiny)
    if alpha is not None:
        loss = loss * alpha
    return loss


class FocalLoss(nn.Module):
    """Module form of :func:`focal_loss`."""

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | None = None,
        weight: Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.gamma = float(gamma)
        self.alpha = alpha
        self.label_smoothing = float(label_smoothing)
        self.register_buffer("weight", None if weight is None else weight.float())

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return focal_loss(
            logits, target, gamma=self.gamma, alpha=self.alpha, weight=self.weight,
            label_smoothing=self.label_smoothing,
        )


class CrossEntropy(nn.Module):
    """Cross-entropy with optional class weights and label smoothing (weights kept as a buffer)."""

    def __init__(self, weight: Tensor | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = float(label_smoothing)
        self.register_buffer("weight", None if weight is None else weight.float())

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(logits.float(), target, weight=self.weight, label_smoothing=self.label_smoothing)


def inverse_frequency_weights(labels: Sequence[int] | np.ndarray, num_classes: int) -> Tensor:
    """Class weights ``N / (C * n_c)`` from training labels (1.0 for classes with no example)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    if counts.shape[0] > num_classes:
        raise ValueError(f"labels contain a class index >= num_classes={num_classes}")
    total = counts.sum()
    weights = np.ones(num_classes, dtype=np.float64)
    seen = counts > 0
    weights[seen] = total / (num_classes * counts[seen])
    return torch.tensor(weights, dtype=torch.float32)
