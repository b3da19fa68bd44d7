"""Multinomial logistic regression as a checkpoint model: the classical baseline
(`emofuse.training.classical`) exported so that `emofuse predict` / `evaluate` run it like any model."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from emofuse.models.base import EmotionModel, ModelOutput, masked_mean
from emofuse.models.registry import register_model


@register_model("logistic_regression")
class LogisticRegression(EmotionModel):
    """One linear layer over the per-clip vectors of every modality, concatenated in
    ``input_dims`` order (a sequence is averaged over its valid frames). Inputs are standardised
    by the checkpoint's statistics, so an absent modality (zeros) stands for its training mean.
    `emofuse.training.classical.export_logreg` fills it from a fitted scikit-learn pipeline."""

    test_input_dims = {"audio": 12, "face": 7}

    def __init__(self, num_classes: int, input_dims: dict[str, int]) -> None:
        super().__init__(num_classes, input_dims)
        self.linear = nn.Linear(sum(self.input_dims.values()), num_classes)

    def forward(self, inputs: dict[str, Tensor], masks: dict[str, Tensor]) -> ModelOutput:
        fused = torch.cat([masked_mean(inputs[m], masks[m]) for m in self.modalities], dim=-1)
        return ModelOutput(logits=self.linear(fused), embedding=fused)
