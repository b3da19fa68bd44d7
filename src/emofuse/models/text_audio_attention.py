"""Bidirectional text-audio cross-modal attention ("Algorithm 1").

The model consumes pre-computed encoder states: ``"text"`` ``[B, T_t, D_t]`` (BERT-like token
states) and ``"audio"`` ``[B, T_a, D_a]`` (wav2vec-like frame states). Following Algorithm 1:

1. per-modality projections ``Q_m = X_m W_Q^m``, ``K_m = X_m W_K^m``, ``V_m = X_m W_V^m``
   (``D_m -> h * d_k``, ``h`` heads);
2. text->audio attention ``softmax(Q_t K_a^T / sqrt(d_k)) V_a`` and audio->text
   ``softmax(Q_a K_t^T / sqrt(d_k)) V_t``;
3. masked mean pooling over the query axis gives ``T_att`` and ``A_att``; the "raw" vectors
   ``T_raw``, ``A_raw`` are masked means of the projected inputs (the value projections);
4. ``H = [T_att; A_att; T_raw; A_raw]`` -> FC + ReLU + dropout -> FC -> logits.

Encoders stay out of the model: `emofuse.encoders` loads a Hugging Face encoder from a *local*
folder and turns raw text / 16 kHz waveforms into the ``[B, T, D]`` states + masks this model (and
the others) consume. The attention itself is the shared `emofuse.models.layers.CrossAttention`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from emofuse.errors import ConfigError
from emofuse.models.base import EmotionModel, ModelOutput, masked_mean, presence
from emofuse.models.layers import CrossAttention
from emofuse.models.registry import register_model


@register_model("text_audio_attention")
class TextAudioAttention(EmotionModel):
    """Algorithm 1: bidirectional text<->audio cross-attention with mean pooling.

    Args:
        num_classes: number of emotion classes.
        input_dims: must contain ``"text"`` and ``"audio"`` (default encoders: 768 each).
        d_k: per-head dimension of the Q/K/V projections.
        heads: number of attention heads ``h``.
        hidden: width of the FC + ReLU layer.
        dropout: dropout after the FC layer.
        attention_dropout: dropout on attention weights (training only).
    """

    test_input_dims = {"text": 16, "audio": 12}
    test_seq_lens = {"text": 5, "audio": 7}
    test_kwargs = {"d_k": 4, "heads": 2, "hidden": 8}

    def __init__(
        self,
        num_classes: int,
        input_dims: dict[str, int],
        d_k: int = 64,
        heads: int = 4,
        hidden: int = 256,
        dropout: float = 0.3,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__(num_classes, input_dims)
        if set(self.modalities) != {"text", "audio"}:
            raise ConfigError(f"text_audio_attention needs exactly 'text' and 'audio' inputs, got {list(self.modalities)}")
        d_model = d_k * heads
        self.proj_q = nn.ModuleDict({m: nn.Linear(self.input_dims[m], d_model) for m in ("text", "audio")})
        self.proj_k = nn.ModuleDict({m: nn.Linear(self.input_dims[m], d_model) for m in ("text", "audio")})
        self.proj_v = nn.ModuleDict({m: nn.Linear(self.input_dims[m], d_model) for m in ("text", "audio")})
        self.attention = CrossAttention(heads, attention_dropout)
        self.head = nn.Sequential(
            nn.Linear(4 * d_model, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
        )

    def forward(self, inputs: dict[str, Tensor], masks: dict[str, Tensor]) -> ModelOutput:
        q, k, v, mask = {}, {}, {}, {}
        for m in ("text", "audio"):
            mask[m] = masks[m].bool()
            x = inputs[m] * mask[m].unsqueeze(-1).to(inputs[m].dtype)  # padded frames carry nothing
            q[m], k[m], v[m] = self.proj_q[m](x), self.proj_k[m](x), self.proj_v[m](x)
        t2a, w_t2a = self.attention(q["text"], k["audio"], mask["audio"], value=v["audio"], query_mask=mask["text"])
        a2t, w_a2t = self.attention(q["audio"], k["text"], mask["text"], value=v["text"], query_mask=mask["audio"])
        # masked_mean gives zeros when the query modality is absent; attention rows over an absent
        # key modality are zero, so an absent modality contributes exactly nothing.
        t_att, a_att = masked_mean(t2a, mask["text"]), masked_mean(a2t, mask["audio"])
        t_raw = masked_mean(v["text"], mask["text"]) * presence(mask["text"]).unsqueeze(-1)
        a_raw = masked_mean(v["audio"], mask["audio"]) * presence(mask["audio"]).unsqueeze(-1)
        fused = torch.cat([t_att, a_att, t_raw, a_raw], dim=-1)
        return ModelOutput(
            logits=self.head(fused),
            explanations={"attention/text->audio": w_t2a, "attention/audio->text": w_a2t},
            embedding=fused,
        )
