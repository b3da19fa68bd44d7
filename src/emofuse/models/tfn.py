"""Tensor Fusion Network (Zadeh et al., EMNLP 2017).

Each modality m has a subnetwork giving ``z_m ∈ R^{d_m}`` (Sec. 3.1–3.2: language → LSTM;
acoustic and visual → mean over time then a 3-layer fully connected network). The tensor fusion
layer (Sec. 3.3, Eq. 1) appends a constant 1 to each and takes their outer product

    z^m = [z_T; 1] ⊗ [z_A; 1] ⊗ [z_V; 1]

which holds the unimodal, bimodal and trimodal interactions in one ``Π(d_m + 1)`` vector,
followed by the sentiment inference subnetwork (Sec. 3.4: fully connected layers).

The same class gives uni-, bi- and tri-modal TFNs: the modalities are the keys of
``input_dims``. An absent modality has ``z_m = 0``, so ``[0; 1]`` keeps exactly the
interaction terms of the modalities that are present (nothing leaks from the absent one).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from emofuse.models.base import EmotionModel, ModelOutput, masked_mean, presence
from emofuse.models.registry import register_model


class MeanPoolSubnet(nn.Module):
    """Acoustic/visual subnetwork: masked mean over time, then 3 fully connected ReLU layers."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(in_dim), nn.Dropout(dropout),
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, out_dim), nn.ReLU(),
        )

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.net(masked_mean(x, mask))


class LSTMSubnet(nn.Module):
    """Language subnetwork: LSTM over the (token) sequence, final valid hidden state → linear."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_dim, hidden, batch_first=True)
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, out_dim), nn.ReLU())

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        lengths = mask.sum(-1).clamp_min(1).cpu()
        # valid frames first, in order (identity for end padding): a masked frame inside the
        # sequence (e.g. no face) is skipped, never read
        x = x * mask.unsqueeze(-1).to(x.dtype)
        x = torch.gather(x, 1, torch.argsort((~mask).to(torch.int8), dim=1, stable=True).unsqueeze(-1).expand_as(x))
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return self.out(h[-1])


@register_model("tfn")
class TensorFusionNetwork(EmotionModel):
    """TFN with ``[z;1]`` outer-product fusion over 1–3 (or more) modalities.

    Args:
        subnet_dims: ``d_m`` per modality (default 32 for every modality, as in the paper's
            acoustic/visual subnetworks); a dict or one int for all.
        subnet_hidden: hidden width of the subnetworks.
        fusion_hidden: width of the post-fusion layers (paper: 128).
        sequence_subnet: modalities encoded with the LSTM subnetwork (paper: language).
    """

    test_input_dims = {"text": 10, "audio": 12, "face": 7}
    test_seq_lens = {"text": 5, "audio": 8, "face": 1}
    test_kwargs = {"subnet_dims": 4, "subnet_hidden": 8, "fusion_hidden": 8}

    def __init__(self, num_classes: int, input_dims: dict[str, int], subnet_dims: int | dict[str, int] = 32,
                 subnet_hidden: int = 128, fusion_hidden: int = 128, dropout: float = 0.2,
                 sequence_subnet: tuple[str, ...] | list[str] = ("text",)) -> None:
        super().__init__(num_classes, input_dims)
        dims = subnet_dims if isinstance(subnet_dims, dict) else {m: int(subnet_dims) for m in input_dims}
        self.subnet_dims = {m: int(dims[m]) for m in self.modalities}
        self.subnets = nn.ModuleDict()
        for m, d in input_dims.items():
            cls = LSTMSubnet if m in sequence_subnet else MeanPoolSubnet
            self.subnets[m] = cls(d, subnet_hidden, self.subnet_dims[m], dropout)
        fused_dim = 1
        for d in self.subnet_dims.values():
            fused_dim *= d + 1
        self.fused_dim = fused_dim
        self.post_fusion = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(fused_dim, fusion_hidden), nn.ReLU(),
            nn.Linear(fusion_hidden, fusion_hidden), nn.ReLU(), nn.Linear(fusion_hidden, num_classes),
        )

    def fuse(self, zs: list[Tensor]) -> Tensor:
        """Eq. 1: flattened outer product of ``[z_m; 1]`` over modalities ``[B, Π(d_m+1)]``."""
        fused = None
        for z in zs:
            z1 = torch.cat([z, torch.ones_like(z[:, :1])], dim=-1)
            fused = z1 if fused is None else torch.einsum("bi,bj->bij", fused, z1).flatten(1)
        return fused

    def forward(self, inputs: dict[str, Tensor], masks: dict[str, Tensor]) -> ModelOutput:
        zs = []
        for m in self.modalities:
            z = self.subnets[m](inputs[m], masks[m]) * presence(masks[m]).unsqueeze(-1)
            zs.append(z)
        fused = self.fuse(zs)
        return ModelOutput(logits=self.post_fusion(fused), embedding=fused)
