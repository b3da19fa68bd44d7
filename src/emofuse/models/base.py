"""The model interface shared by every emofuse model.

A model receives a dict of modality tensors and a dict of masks and returns logits plus
optional explanations:

* ``inputs[m]``: float tensor ``[B, T_m, D_m]``. Vector features (e.g. per-clip action units,
  eGeMAPS functionals) are passed as sequences of length 1: ``[B, 1, D_m]``.
* ``masks[m]``: bool tensor ``[B, T_m]``; True marks a valid (non-padded) frame. A modality that is
  absent for a sample has an all-False row: ``presence(masks[m])`` gives the per-sample presence.
  Models must give finite logits when any subset of modalities is absent (and must not let absent
  inputs leak into the output).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class ModelOutput:
    """What a model returns.

    Attributes:
        logits: ``[B, num_classes]``.
        explanations: named tensors explaining the decision, e.g. ``"modality_weights"``
            ``[B, M]`` (ordered as ``model.modalities``) or ``"attention/audio->face"``
            ``[B, heads, T_q, T_k]``.
        aux_losses: model-specific, already weighted losses added to the classification loss
            during training (contrastive, reconstruction, entropy, ...).
        embedding: optional fused representation ``[B, D]``.
    """

    logits: Tensor
    explanations: dict[str, Tensor] = field(default_factory=dict)
    aux_losses: dict[str, Tensor] = field(default_factory=dict)
    embedding: Tensor | None = None


def presence(mask: Tensor) -> Tensor:
    """Per-sample presence ``[B]`` (float 0/1) from a frame mask ``[B, T]``."""
    return mask.any(dim=-1).to(torch.float32)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over time of ``x [B, T, D]`` using ``mask [B, T]``; all-masked rows give zeros."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


class EmotionModel(nn.Module):
    """Base class: stores the constructor arguments so a checkpoint can rebuild the model.

    Subclasses take ``num_classes`` and ``input_dims`` (modality -> feature dim) plus their own
    keyword hyper-parameters, and implement :meth:`forward`.
    """

    #: registry name, set by ``@register_model``
    model_name: str = ""

    def __init__(self, num_classes: int, input_dims: dict[str, int]) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if not input_dims:
            raise ValueError("input_dims must name at least one modality")
        self.num_classes = int(num_classes)
        self.input_dims = {k: int(v) for k, v in input_dims.items()}
        self.modalities: tuple[str, ...] = tuple(input_dims)
        self.hparams_: dict[str, Any] = {}

    def forward(self, inputs: dict[str, Tensor], masks: dict[str, Tensor]) -> ModelOutput:  # pragma: no cover
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description: ``create_model(**config)`` rebuilds the architecture."""
        return {
            "name": self.model_name,
            "num_classes": self.num_classes,
            "input_dims": dict(self.input_dims),
            "kwargs": dict(self.hparams_),
        }
