"""OF-CMAER-CAT: cross-modal attention, adaptive weighting and a contextual transformer (Sharma et al. 2026).

Equation numbers follow the paper:

* (1) ``S_i = F_i(X_i)``: a Conv1D stack over each modality's sequence (padded frames are zeroed
  before every convolution, so they cannot leak in through the kernel);
* (2) ``e_i = masked_mean(S_i)``;
* (3)-(4) cross-modal attention alignment (CMAA): for every ordered pair (i, j), i's sequence
  attends over j's, ``A_ij = softmax(Q_i K_j^T / sqrt(d_k))``, ``c_ij = mean_t(A_ij V_j)``;
* (5)-(6) bilinear compatibility ``alpha_ij = softmax_j(e_i^T W_b e_j)`` over the *other present*
  modalities, ``c_i = sum_j alpha_ij c_ij``;
* (7) gated residual fusion ``z_i = LN(e_i + g_i ⊙ c_i)``, ``g_i = sigmoid(W_g [e_i; c_i])``.
  We apply (3)-(7) frame by frame: i's frames attend over j's, the per-frame contexts are mixed
  with the compatibilities ``alpha_ij`` and the gated residual gives a sequence ``Z_i``; the
  modality token is ``z_i = mean_t(Z_i)``;
* (8)-(10) adaptive weighting with missing-modality masks (AWOM): reliability
  ``r_i = MLP([mean_t(Z_i); var_t(Z_i)])`` (mean and variance over i's valid frames, so a
  modality whose frames disagree can be down-weighted; a feature-wise mean/variance of a
  LayerNormed vector would be constant), ``w = softmax(r)``, ``w_i <- w_i m_i / sum_j w_j m_j``;
* contextual transformer over the modality tokens ``z_i`` (+ modality embeddings), with a key
  padding mask for absent modalities; its outputs are the tokens weighted in (11);
* (11) ``h = sum_i w_i z_i``; (12) ``p = dropout(ReLU(W_p h))``; (13) logits ``= W_c p``;
* (14) cross-entropy (added by the trainer);
* (15)-(17) symmetric InfoNCE between the pooled embeddings of each modality pair of the same
  sample, temperature tau, over samples where both are present;
* reconstruction: a decoder per modality maps ``h`` back to the present ``e_i`` (MSE);
* (18) entropy of the modality weights, normalised by log(#present);
* (19) ``L = L_CE + lambda_c L_con + lambda_r L_rec + lambda_e L_ent``: the last three are
  returned in ``aux_losses`` already weighted.

The published ablation ladder is reproduced with constructor flags (disabled components create
no parameters): CNN only -> +CMAA -> +AWOM -> +contrastive -> +transformer. Without CMAA
``z_i = e_i``; without AWOM the present modalities are averaged with equal weights.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from emofuse.errors import ConfigError
from emofuse.models.base import EmotionModel, ModelOutput, masked_mean
from emofuse.models.layers import CrossAttention, downsample_frames, masked_softmax
from emofuse.models.registry import register_model


def info_nce(a: Tensor, b: Tensor, temperature: float) -> Tensor:
    """Symmetric InfoNCE (15)-(17) between row-aligned embeddings ``a``, ``b`` ``[N, D]``.

    Row k of ``a`` and row k of ``b`` come from the same sample (the positive pair); the other rows
    of the batch are the negatives. Embeddings are L2-normalised; returns a scalar.
    """
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def masked_variance(x: Tensor, mask: Tensor) -> Tensor:
    """Per-feature variance over the valid frames of ``x [B, T, D]`` (zeros for all-masked rows)."""
    mean = masked_mean(x, mask)
    return masked_mean((x - mean.unsqueeze(1)).pow(2), mask)


class ModalityCNN(nn.Module):
    """Eq. (1): a stack of same-padded Conv1D + GELU layers over one modality's frames."""

    def __init__(self, input_dim: int, d_model: int, layers: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd (same padding), got {kernel_size}")
        dims = [input_dim] + [d_model] * layers
        self.convs = nn.ModuleList(nn.Conv1d(dims[k], dims[k + 1], kernel_size, padding="same") for k in range(layers))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        keep = mask.unsqueeze(1).to(x.dtype)  # [B, 1, T]
        h = x.transpose(1, 2)
        for conv in self.convs:
            h = self.dropout(F.gelu(conv(h * keep)))
        return (h * keep).transpose(1, 2)  # [B, T, d_model]


@register_model("of_cmaer_cat")
class OFCMAERCAT(EmotionModel):
    """OF-CMAER-CAT (Sharma et al. 2026), Eqs. (1)-(19); see the module docstring.

    Args:
        num_classes: number of classes.
        input_dims: modality -> feature dim (any of audio/face/text/meta; >= 2 for CMAA/contrastive).
        d_model: width of the CNN encoders, attention and modality tokens.
        conv_layers, kernel_size: Conv1D stack of Eq. (1).
        heads: attention heads in CMAA and the transformer.
        transformer_layers: depth of the contextual block.
        reliability_hidden: hidden width of the reliability MLP (8).
        proj_dim: width of the projection layer (12).
        contrastive_dim: width of the InfoNCE projection head.
        temperature: InfoNCE temperature tau.
        lambda_con, lambda_rec, lambda_ent: loss weights of Eq. (19).
        use_cmaa, use_awom, use_contrastive, use_reconstruction, use_transformer: ladder flags.
        frame_stride: average this many consecutive frames of every sequence before F_i (1 = off;
            a CPU-budget option: CMAA's cost grows with the square of the frame count).
    """

    test_input_dims = {"audio": 12, "face": 7, "text": 10}
    test_seq_lens = {"audio": 6, "face": 4, "text": 5}
    test_kwargs = {"d_model": 8, "heads": 2, "reliability_hidden": 4, "proj_dim": 8, "contrastive_dim": 4,
                   "frame_stride": 2}

    def __init__(
        self,
        num_classes: int,
        input_dims: dict[str, int],
        d_model: int = 128,
        conv_layers: int = 2,
        kernel_size: int = 3,
        heads: int = 4,
        transformer_layers: int = 1,
        reliability_hidden: int = 32,
        proj_dim: int = 128,
        contrastive_dim: int = 64,
        dropout: float = 0.2,
        temperature: float = 0.07,
        lambda_con: float = 0.1,
        lambda_rec: float = 0.1,
        lambda_ent: float = 0.01,
        use_cmaa: bool = True,
        use_awom: bool = True,
        use_contrastive: bool = True,
        use_reconstruction: bool = True,
        use_transformer: bool = True,
        frame_stride: int = 1,
    ) -> None:
        super().__init__(num_classes, input_dims)
        if d_model % heads:
            raise ConfigError(f"d_model ({d_model}) must be divisible by heads ({heads})")
        if int(frame_stride) < 1:
            raise ConfigError(f"frame_stride must be >= 1, got {frame_stride}")
        self.frame_stride = int(frame_stride)
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        if (use_cmaa or use_contrastive) and len(self.modalities) < 2:
            raise ConfigError("use_cmaa and use_contrastive need at least two modalities; turn them off for one")
        self.use_cmaa, self.use_awom, self.use_transformer = bool(use_cmaa), bool(use_awom), bool(use_transformer)
        self.use_contrastive, self.use_reconstruction = bool(use_contrastive), bool(use_reconstruction)
        self.temperature = float(temperature)
        self.lambda_con, self.lambda_rec, self.lambda_ent = float(lambda_con), float(lambda_rec), float(lambda_ent)
        mods = self.modalities

        self.encoders = nn.ModuleDict({m: ModalityCNN(self.input_dims[m], d_model, conv_layers, kernel_size, dropout) for m in mods})
        if self.use_cmaa:
            self.proj_q = nn.ModuleDict({m: nn.Linear(d_model, d_model) for m in mods})
            self.proj_k = nn.ModuleDict({m: nn.Linear(d_model, d_model) for m in mods})
            self.proj_v = nn.ModuleDict({m: nn.Linear(d_model, d_model) for m in mods})
            self.attention = CrossAttention(heads, dropout)
            self.bilinear = nn.Parameter(torch.empty(d_model, d_model))  # W_b of (5)
            nn.init.xavier_uniform_(self.bilinear)
            self.gate = nn.Linear(2 * d_model, d_model)  # W_g of (7)
            self.norm = nn.LayerNorm(d_model)
        if self.use_transformer:
            self.modality_embedding = nn.Parameter(torch.randn(len(mods), d_model) * 0.02)
            layer = nn.TransformerEncoderLayer(d_model, heads, 2 * d_model, dropout, batch_first=True, norm_first=True)
            self.transformer = nn.TransformerEncoder(layer, transformer_layers, enable_nested_tensor=False)
        if self.use_awom:
            # no output bias: a shared shift of every r_i cancels in the softmax of (9)
            self.reliability = nn.Sequential(
                nn.Linear(2 * d_model, reliability_hidden), nn.ReLU(), nn.Linear(reliability_hidden, 1, bias=False)
            )
        self.projection = nn.Sequential(nn.Linear(d_model, proj_dim), nn.ReLU(), nn.Dropout(dropout))  # (12)
        self.classifier = nn.Linear(proj_dim, num_classes)  # (13)
        if self.use_contrastive:
            self.contrastive_head = nn.Linear(d_model, contrastive_dim)
        if self.use_reconstruction:
            self.decoders = nn.ModuleDict({m: nn.Linear(d_model, d_model) for m in mods})

    # -- components ---------------------------------------------------------------------------

    def _align(self, seqs: dict[str, Tensor], masks: dict[str, Tensor], pooled: Tensor, present: Tensor,
               explanations: dict[str, Tensor]) -> dict[str, Tensor]:
        """(3)-(7): cross-modal attention, bilinear compatibility and gated residual, frame by frame.

        Returns ``Z_i [B, T_i, d]`` for every modality: ``Z_i = LN(S_i + g ⊙ C_i)`` with
        ``C_i = sum_j alpha_ij (A_ij V_j)`` the compatibility-weighted attended context of i's frames.
        """
        mods = self.modalities
        q = {m: self.proj_q[m](seqs[m]) for m in mods}
        k = {m: self.proj_k[m](seqs[m]) for m in mods}
        v = {m: self.proj_v[m](seqs[m]) for m in mods}
        n, d = len(mods), pooled.shape[-1]
        scores = torch.einsum("bid,de,bje->bij", pooled, self.bilinear, pooled) / math.sqrt(d)
        others = present.unsqueeze(1) & present.unsqueeze(2) & ~torch.eye(n, dtype=torch.bool, device=present.device)
        compatibility = masked_softmax(scores, others, dim=-1)  # alpha_ij, (5)-(6)
        explanations["compatibility"] = compatibility
        aligned = {}
        for i, mi in enumerate(mods):
            context = torch.zeros_like(seqs[mi])  # C_i
            for j, mj in enumerate(mods):
                if i == j:
                    continue
                attended, weights = self.attention(q[mi], k[mj], masks[mj], value=v[mj], query_mask=masks[mi])  # (3)-(4)
                explanations[f"attention/{mi}->{mj}"] = weights
                context = context + compatibility[:, i, j, None, None] * attended
            gate = torch.sigmoid(self.gate(torch.cat([seqs[mi], context], dim=-1)))  # (7)
            aligned[mi] = self.norm(seqs[mi] + gate * context) * masks[mi].unsqueeze(-1).to(context.dtype)
        return aligned

    def _contextualise(self, tokens: Tensor, present: Tensor) -> Tensor:
        """Transformer over modality tokens; absent modalities are masked keys (rows with none present attend all)."""
        padding = ~present & present.any(dim=1, keepdim=True)
        return self.transformer(tokens + self.modality_embedding, src_key_padding_mask=padding)

    def _weights(self, aligned: dict[str, Tensor], masks: dict[str, Tensor], tokens: Tensor, present: Tensor) -> Tensor:
        """(8)-(10): reliability from ``[mean_t(Z_i); var_t(Z_i)]`` -> softmax -> renormalised by availability.

        Without AWOM the present modalities get equal weights.
        """
        if not self.use_awom:
            return present.float() / present.float().sum(dim=1, keepdim=True).clamp_min(1.0)
        spread = torch.stack([masked_variance(aligned[m], masks[m]) for m in self.modalities], dim=1)
        stats = torch.cat([tokens, spread], dim=-1)
        reliability = self.reliability(stats).squeeze(-1)  # r_i, (8)
        weights = torch.softmax(reliability, dim=-1) * present  # (9)-(10)
        return weights / weights.sum(dim=1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)

    def _contrastive(self, pooled: Tensor, present: Tensor) -> Tensor:
        """(15)-(17) averaged over modality pairs that have >= 2 samples with both present; 0 if none."""
        projected = self.contrastive_head(pooled)
        losses = []
        for i, j in itertools.combinations(range(len(self.modalities)), 2):
            both = present[:, i] & present[:, j]
            if int(both.sum()) >= 2:
                losses.append(info_nce(projected[both, i], projected[both, j], self.temperature))
        return torch.stack(losses).mean() if losses else projected.sum() * 0.0

    def _reconstruction(self, fused: Tensor, pooled: Tensor, present: Tensor) -> Tensor:
        """MSE between decoded ``h`` and the (detached) pooled embedding of each present modality."""
        decoded = torch.stack([self.decoders[m](fused) for m in self.modalities], dim=1)
        per_item = (decoded - pooled.detach()).pow(2).mean(dim=-1)  # [B, M]
        return (per_item * present).sum() / present.sum().clamp_min(1)

    @staticmethod
    def _entropy(weights: Tensor, present: Tensor) -> Tensor:
        """(18): entropy of the modality weights / log(#present) (0 for samples with one modality)."""
        count = present.sum(dim=1)
        entropy = -(weights * weights.clamp_min(torch.finfo(weights.dtype).tiny).log()).sum(dim=1)
        normalised = torch.where(count > 1, entropy / count.clamp_min(2).log(), torch.zeros_like(entropy))
        return normalised.mean()

    # -- forward ------------------------------------------------------------------------------

    def forward(self, inputs: dict[str, Tensor], masks: dict[str, Tensor]) -> ModelOutput:
        mods = self.modalities
        masks = {m: masks[m].bool() for m in mods}
        if self.frame_stride > 1:
            strided = {m: downsample_frames(inputs[m], masks[m], self.frame_stride) for m in mods}
            inputs, masks = {m: x for m, (x, _) in strided.items()}, {m: k for m, (_, k) in strided.items()}
        present = torch.stack([masks[m].any(dim=-1) for m in mods], dim=1)  # [B, M]
        keep = present.unsqueeze(-1).float()
        seqs = {m: self.encoders[m](inputs[m], masks[m]) for m in mods}  # (1)
        pooled = torch.stack([masked_mean(seqs[m], masks[m]) for m in mods], dim=1) * keep  # e_i, (2)

        explanations: dict[str, Tensor] = {}
        aligned = self._align(seqs, masks, pooled, present, explanations) if self.use_cmaa else seqs
        tokens = torch.stack([masked_mean(aligned[m], masks[m]) for m in mods], dim=1) * keep  # z_i = mean_t(Z_i)
        weights = self._weights(aligned, masks, tokens, present)
        if self.use_transformer:
            tokens = self._contextualise(tokens, present) * keep
        fused = (weights.unsqueeze(-1) * tokens).sum(dim=1)  # (11)
        logits = self.classifier(self.projection(fused))  # (12)-(13)
        explanations["modality_weights"] = weights

        aux: dict[str, Tensor] = {}
        if self.use_contrastive:
            aux["contrastive"] = self.lambda_con * self._contrastive(pooled, present)
        if self.use_reconstruction:
            aux["reconstruction"] = self.lambda_rec * self._reconstruction(fused, pooled, present)
        if self.use_awom:
            aux["entropy"] = self.lambda_ent * self._entropy(weights, present)
        return ModelOutput(logits=logits, explanations=explanations, aux_losses=aux, embedding=fused)


#: The published component ladder as constructor flags (mirrors configs/of_cmaer_cat_ladder.yaml).
LADDER: dict[str, dict[str, bool]] = {
    "cnn_only": dict(use_cmaa=False, use_awom=False, use_contrastive=False, use_reconstruction=False, use_transformer=False),
    "+cmaa": dict(use_cmaa=True, use_awom=False, use_contrastive=False, use_reconstruction=False, use_transformer=False),
    "+awom": dict(use_cmaa=True, use_awom=True, use_contrastive=False, use_reconstruction=False, use_transformer=False),
    "+contrastive": dict(use_cmaa=True, use_awom=True, use_contrastive=True, use_reconstruction=True, use_transformer=False),
    "+transformer": dict(use_cmaa=True, use_awom=True, use_contrastive=True, use_reconstruction=True, use_transformer=True),
}
