"""Cross-modal attention + Tucker fusion (after Kumar et al., 2025).

Pipeline (section numbers refer to docs/models/tucker.md, which follows the paper's order):

1. Audio encoder (2D CNN): the log-mel input ``[B, T, n_mels]`` (optionally averaged over
   ``time_stride`` consecutive frames first, a CPU-budget option; the paper keeps every frame) is treated as an image
   ``[B, 1, n_mels, T]``; conv3x3-BN-ReLU blocks pool frequency by 2 each (never time), so the
   output is a sequence ``[B, T, C * F']`` projected to ``d``.
2. Visual encoder: bidirectional GRU over face frame features ``[B, T_v, D_v]`` projected to ``d``.
3. Temporal alignment: both sequences are resampled to ``T_common`` (published 60) by mask-aware
   linear interpolation (`interpolate_to_length`); a length-1 input (per-clip action units) is
   repeated over ``T_common``.
4. Bidirectional cross-attention (4 heads): ``a' = LN(a + MHA(a, v, v))``, ``v' = LN(v + MHA(v, a, a))``.
5. Tucker projection of the time-aligned outer products ``X[t] = ã_t ⊗ ṽ_t`` (``ã = [a'; 1]``,
   the TFN constant of Zadeh et al. 2017 so unimodal terms survive an absent modality)::

       G = X ×₁ A_timeᵀ ×₂ A_audioᵀ ×₃ A_visualᵀ,
       G[b, r, p, q] = Σ_t A_time[t, r] (A_audioᵀ ã_t)[p] (A_visualᵀ ṽ_t)[q]

   computed factor-first (`tucker_core`) so ``[B, T, D_a, D_v]`` is never materialised.
6. Factorised bilinear pooling (MFB, Yu et al. ICCV 2017, Eq. 3-5, extended to the 3-way core):
   ``z_o = Σ_{s≤k} Σ_{r,p,q} G[r,p,q] W_t[r,o,s] W_a[p,o,s] W_v[q,o,s]``, sum-pooled over the ``k``
   factors, then power (signed sqrt) and L2 normalisation; a linear classifier on ``z``.

Absent modality: its sequence is zeros and every cross-attention output reading from it or
written to it is zeroed (see `CrossAttention`), so only the constant-1 terms of the
Tucker factors carry it. Explanations: ``"attention/audio->face"`` (audio queries, face keys)
and ``"attention/face->audio"``, per head ``[B, heads, T_common, T_common]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from emofuse.errors import ConfigError, DataError
from emofuse.models.base import EmotionModel, ModelOutput, presence
from emofuse.models.layers import CrossAttention, downsample_frames, interpolate_to_length
from emofuse.models.registry import register_model

REQUIRED_MODALITIES = ("audio", "face")


# --------------------------------------------------------------------------------------------
# Tucker core: naive (reference) and factorised (used by the model)
# --------------------------------------------------------------------------------------------

def tucker_core_naive(a: Tensor, v: Tensor, a_time: Tensor, a_audio: Tensor, a_visual: Tensor) -> Tensor:
    """Reference: materialise ``X [B, T, D_a, D_v]`` (``X[t] = a_t ⊗ v_t``), then the three mode
    products ``X ×₁ A_timeᵀ ×₂ A_audioᵀ ×₃ A_visualᵀ`` → ``G [B, R_t, R_a, R_v]``."""
    x = torch.einsum("bti,btj->btij", a, v)
    x = torch.einsum("btij,tr->brij", x, a_time)
    x = torch.einsum("brij,ip->brpj", x, a_audio)
    return torch.einsum("brpj,jq->brpq", x, a_visual)


def tucker_core(a: Tensor, v: Tensor, a_time: Tensor, a_audio: Tensor, a_visual: Tensor) -> Tensor:
    """Factor-first Tucker core ``G[b,r,p,q] = Σ_t A_time[t,r] (A_audioᵀ a_t)[p] (A_visualᵀ v_t)[q]``.

    ``a [B, T, D_a]``, ``v [B, T, D_v]``, ``a_time [T, R_t]``, ``a_audio [D_a, R_a]``,
    ``a_visual [D_v, R_v]``. Largest intermediate ``[B, T, R_t·R_a]`` instead of ``[B, T, D_a, D_v]``.
    """
    pa = a @ a_audio  # [B, T, R_a]
    pv = v @ a_visual  # [B, T, R_v]
    batch, steps, r_a = pa.shape
    left = (a_time.unsqueeze(0).unsqueeze(-1) * pa.unsqueeze(2)).reshape(batch, steps, -1)  # [B,T,R_t*R_a]
    core = left.transpose(1, 2) @ pv  # [B, R_t*R_a, R_v]
    return core.reshape(batch, a_time.shape[1], r_a, pv.shape[-1])


# --------------------------------------------------------------------------------------------
# Encoders and pooling
# --------------------------------------------------------------------------------------------

class LogMelCNN(nn.Module):
    """2D CNN over a log-mel "image" ``[B, 1, n_mels, T]`` that pools frequency, keeps time."""

    def __init__(self, n_mels: int, channels: Sequence[int], out_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch, freq = 1, n_mels
        for ch in channels:
            layers += [nn.Conv2d(in_ch, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(),
                       nn.MaxPool2d((2, 1), ceil_mode=True)]
            in_ch, freq = ch, math.ceil(freq / 2)
        self.convs = nn.Sequential(*layers)
        self.proj = nn.Linear(in_ch * freq, out_dim)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x [B, T, n_mels]`` → ``[B, T, out_dim]``.

        Padded frames are zeroed before every conv (BatchNorm's shift makes them non-zero after
        each block), so a valid frame next to padding sees the same zeros as at the end of an
        unpadded clip: the output does not depend on how much padding follows a clip.
        """
        m = mask.unsqueeze(-1).to(x.dtype)
        frames = m.transpose(1, 2).unsqueeze(1)  # [B, 1, 1, T], broadcasts over channels and frequency
        h = x.transpose(1, 2).unsqueeze(1) * frames  # [B, 1, n_mels, T]
        for layer in self.convs:
            h = layer(h)
            if isinstance(layer, nn.MaxPool2d):  # end of a block: re-zero padding before the next conv
                h = h * frames
        h = h.permute(0, 3, 1, 2).flatten(2)  # [B, T, C*F']
        return self.proj(h) * m


class FrameBiGRU(nn.Module):
    """Bidirectional GRU over per-frame visual features, projected to ``out_dim``."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.gru = nn.GRU(in_dim, hidden, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * hidden, out_dim)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x [B, T, D]`` → ``[B, T, out_dim]``. The GRU reads each clip's valid frames in order, also
        those after a masked one (a frame without a face), and each output goes back to its frame."""
        m = mask.unsqueeze(-1).to(x.dtype)
        order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)  # valid frames first (identity for padding)
        lengths = mask.sum(-1).clamp_min(1).cpu()
        valid_first = torch.gather(x * m, 1, order.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        packed = nn.utils.rnn.pack_padded_sequence(valid_first, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        out = torch.empty_like(out).scatter_(1, order.unsqueeze(-1).expand(-1, -1, out.shape[-1]), out)
        return self.proj(out) * m


class TuckerBilinearPooling(nn.Module):
    """Factorised bilinear pooling of a Tucker core ``G [B, R_t, R_a, R_v]`` to ``[B, out_dim]``.

    ``z_o = Σ_s Σ_{r,p,q} G[r,p,q] W_t[r,(o,s)] W_a[p,(o,s)] W_v[q,(o,s)]`` (MFB, Yu et al. 2017, with
    a rank-``k`` CP weight per output), sum-pooled over ``s``; then signed sqrt and L2 norm.
    """

    def __init__(self, ranks: Sequence[int], out_dim: int, factors: int) -> None:
        super().__init__()
        rt, ra, rv = ranks
        self.out_dim, self.factors = out_dim, factors
        width = out_dim * factors
        self.w_time = nn.Parameter(torch.randn(rt, width) / math.sqrt(rt))
        self.w_audio = nn.Parameter(torch.randn(ra, width) / math.sqrt(ra))
        self.w_visual = nn.Parameter(torch.randn(rv, width) / math.sqrt(rv))

    def pool_core(self, core: Tensor) -> Tensor:
        """Unnormalised pooled vector from the materialised core ``G``."""
        h = torch.einsum("brpq,qj->brpj", core, self.w_visual)
        h = torch.einsum("brpj,pj->brj", h, self.w_audio)
        z = torch.einsum("brj,rj->bj", h, self.w_time)
        return z.view(-1, self.out_dim, self.factors).sum(-1)

    def pool_factors(self, pa: Tensor, pv: Tensor, a_time: Tensor) -> Tensor:
        """The same vector from the projected sequences ``pa = ÃA_audio``, ``pv = ṼA_visual`` without
        forming ``G``: ``z_j = Σ_t (A_time W_t)[t,j] (pa_t·W_a[:,j]) (pv_t·W_v[:,j])``."""
        z = torch.einsum("tj,btj,btj->bj", a_time @ self.w_time, pa @ self.w_audio, pv @ self.w_visual)
        return z.view(-1, self.out_dim, self.factors).sum(-1)

    @staticmethod
    def normalise(z: Tensor, eps: float = 1e-8) -> Tensor:
        """Power normalisation ``sign(z)(√(|z|+ε) − √ε)`` then L2 (MFB Sec. 3.2); finite gradient at 0."""
        z = torch.sign(z) * (torch.sqrt(z.abs() + eps) - math.sqrt(eps))
        return F.normalize(z, dim=-1)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------

@register_model("tucker_fusion")
class TuckerFusion(EmotionModel):
    """Cross-modal attention + Tucker fusion of audio (log-mel) and face frame features.

    Args:
        d_model: common width ``d`` of both sequences (paper: 256).
        t_common: aligned sequence length (paper: 60).
        heads: cross-attention heads (paper: 4).
        ranks: Tucker ranks ``(R_t, R_a, R_v)`` (paper: 30, 128, 128).
        pool_dim: size of the pooled vector (paper: 512).
        pool_factors: MFB factors ``k`` per output (not given in the paper; MFB used 5).
        cnn_channels: channels of the log-mel CNN blocks (one frequency halving per block).
        gru_hidden: hidden size per direction of the visual BiGRU.
        time_stride: average this many consecutive log-mel frames before the CNN (1 = the paper;
            larger values cut the CNN's cost proportionally, the sequence still has a time axis
            and is aligned to ``t_common`` afterwards).
        pool_from: ``"core"`` materialises ``G`` then pools it (the paper's order); ``"factors"``
            computes the identical vector straight from the factor projections (cheaper).
        dropout: dropout on attention weights and before the classifier.
    """

    test_input_dims = {"audio": 16, "face": 7}
    test_seq_lens = {"audio": 20, "face": 5}
    test_kwargs = {"d_model": 16, "t_common": 8, "heads": 4, "ranks": (4, 6, 6), "pool_dim": 8,
                   "pool_factors": 2, "cnn_channels": (4, 8), "gru_hidden": 8, "time_stride": 2}

    def __init__(self, num_classes: int, input_dims: dict[str, int], d_model: int = 64, t_common: int = 32,
                 heads: int = 4, ranks: Sequence[int] = (8, 24, 24), pool_dim: int = 128, pool_factors: int = 2,
                 cnn_channels: Sequence[int] = (8, 16), gru_hidden: int = 32, pool_from: str = "core",
                 dropout: float = 0.1, time_stride: int = 1) -> None:
        super().__init__(num_classes, input_dims)
        missing = [m for m in REQUIRED_MODALITIES if m not in input_dims]
        if missing or len(input_dims) != 2:
            raise ConfigError(f"tucker_fusion needs exactly the modalities {REQUIRED_MODALITIES}, got {tuple(input_dims)}")
        ranks = tuple(int(r) for r in ranks)
        if len(ranks) != 3 or min(ranks) < 1:
            raise ConfigError(f"ranks must be three positive integers (R_t, R_a, R_v), got {ranks}")
        if d_model % heads:
            raise ConfigError(f"d_model ({d_model}) must be divisible by heads ({heads})")
        if pool_from not in ("core", "factors"):
            raise ConfigError(f"pool_from must be 'core' or 'factors', got {pool_from!r}")
        if int(time_stride) < 1:
            raise ConfigError(f"time_stride must be >= 1, got {time_stride}")
        self.modalities = REQUIRED_MODALITIES
        self.t_common, self.pool_from, self.time_stride = int(t_common), pool_from, int(time_stride)
        self.audio_encoder = LogMelCNN(self.input_dims["audio"], cnn_channels, d_model)
        self.face_encoder = FrameBiGRU(self.input_dims["face"], gru_hidden, d_model)
        self.attn_audio_to_face = CrossAttention(heads, dropout, dim=d_model)
        self.attn_face_to_audio = CrossAttention(heads, dropout, dim=d_model)
        self.norm_audio = nn.LayerNorm(d_model)
        self.norm_face = nn.LayerNorm(d_model)
        rt, ra, rv = ranks
        self.factor_time = nn.Parameter(torch.randn(self.t_common, rt) / math.sqrt(self.t_common))
        self.factor_audio = nn.Parameter(torch.randn(d_model + 1, ra) / math.sqrt(d_model + 1))
        self.factor_visual = nn.Parameter(torch.randn(d_model + 1, rv) / math.sqrt(d_model + 1))
        self.pooling = TuckerBilinearPooling(ranks, pool_dim, pool_factors)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(pool_dim, num_classes))

    @staticmethod
    def _with_one(x: Tensor) -> Tensor:
        return torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)

    def forward(self, inputs: dict[str, Tensor], masks: dict[str, Tensor]) -> ModelOutput:
        for m in self.modalities:
            if m not in inputs or m not in masks:
                raise DataError(None, f"tucker_fusion: batch has no {m!r} input/mask")
        mask_a, mask_v = masks["audio"], masks["face"]
        pres_a = presence(mask_a).view(-1, 1, 1)
        pres_v = presence(mask_v).view(-1, 1, 1)
        audio_in, mask_a = downsample_frames(inputs["audio"], mask_a, self.time_stride)
        audio = self.audio_encoder(audio_in, mask_a)
        face = self.face_encoder(inputs["face"], mask_v)
        audio, al_mask_a = interpolate_to_length(audio, mask_a, self.t_common)
        face, al_mask_v = interpolate_to_length(face, mask_v, self.t_common)
        a2f, w_a2f = self.attn_audio_to_face(audio, face, al_mask_v)
        f2a, w_f2a = self.attn_face_to_audio(face, audio, al_mask_a)
        audio = self.norm_audio(audio + a2f) * pres_a
        face = self.norm_face(face + f2a) * pres_v
        a_tilde, v_tilde = self._with_one(audio), self._with_one(face)
        if self.pool_from == "core":
            core = tucker_core(a_tilde, v_tilde, self.factor_time, self.factor_audio, self.factor_visual)
            z = self.pooling.pool_core(core)
        else:
            z = self.pooling.pool_factors(a_tilde @ self.factor_audio, v_tilde @ self.factor_visual, self.factor_time)
        z = self.pooling.normalise(z)
        explanations = {
            "attention/audio->face": w_a2f * pres_a.unsqueeze(-1),
            "attention/face->audio": w_f2a * pres_v.unsqueeze(-1),
        }
        return ModelOutput(logits=self.classifier(z), explanations=explanations, embedding=z)
