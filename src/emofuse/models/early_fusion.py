"""Early (feature-level) fusion: pooled features of every modality concatenated, then an MLP."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from emofuse.models.base import EmotionModel, ModelOutput, masked_mean, presence
from emofuse.models.registry import register_model


def mean_std_pool(x: Tensor, mask: Tensor) -> Tensor:
    """Masked mean and standard deviation over time: ``[B, T, D] -> [B, 2D]`` (zeros when absent)."""
    mean = masked_mean(x, mask)
    var = masked_mean(x * x, mask) - mean * mean
    return torch.cat([mean, torch.sqrt(var.clamp_min(1e-6)) * presence(mask).unsqueeze(-1)], dim=-1)


@register_model("early_concat")
class EarlyConcatFusion(EmotionModel):
    """Early fusion: for each modality the masked mean and std over time (a per-clip vector is its
    own mean, std 0), layer-normalised; absent modalities contribute zeros and a 0 presence flag;
    everything is concatenated and classified by a two-layer MLP."""

    test_input_dims = {"audio": 16, "face": 7}
    test_seq_lens = {"audio": 9, "face": 1}
    test_kwargs = {"hidden": 16}

    def __init__(self, num_classes: int, input_dims: dict[str, int], hidden: int = 512, dropout: float = 0.3) -> None:
        super().__init__(num_classes, input_dims)
        self.norms = nn.ModuleDict({m: nn.LayerNorm(2 * d) for m, d in input_dims.items()})
        total = sum(2 * d + 1 for d in input_dims.values())
        self.mlp = nn.Sequential(nn.Dropout(dropout), nn.Linear(total, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, num_classes))

    def forward(self, inputs: dict[str, Tensor], masks: dict[str, Tensor]) -> ModelOutput:
        parts = []
        for m in self.modalities:
            present = presence(masks[m]).unsqueeze(-1)
            parts.append(self.norms[m](mean_std_pool(inputs[m], masks[m])) * present)
            parts.append(present)
        fused = torch.cat(parts, dim=-1)
        return ModelOutput(logits=self.mlp(fused), embedding=fused)
