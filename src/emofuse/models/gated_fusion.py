"""Adaptive gated fusion with metadata-conditioned gates ("Algorithm 2").

Inputs are features from frozen encoders: ``"face"`` (h_v), ``"audio"`` (h_a), ``"text"`` (h_t),
plus an optional ``"meta"`` vector (e.g. speaker gender / age one-hot) encoded by ``m = enc(meta)``.
Following Algorithm 2:

1. per-modality projection ``h_i = ReLU(W_p^i x_i)`` of the pooled feature (or of the dialogue
   context, see below), set to 0 when modality i is absent;
2. scalar gates ``g_i = sigmoid(W_i [h_i; m] + b_i)``;
3. ``alpha = softmax(g)`` over the modalities *present* for the sample (absent ones get exactly 0);
4. gated sum ``h = sum_i alpha_i h_i``;
5. enhanced fusion ``e = softmax(W_f) ⊙ [h_v, h_a, h_t] + b`` where ``W_f`` is ``[M, H]`` and the
   softmax runs over the present modalities for every hidden unit;
6. FC head on ``[h; e]``.

Dialogue context (the published design uses up to 10 previous turns): modalities named in
``context_modalities`` are read as *turn sequences* ``[B, turns, D]`` of utterance-level
features, oldest first, the last valid turn being the utterance to classify. They are encoded by
a unidirectional GRU over the valid turns and ``h_i`` is the GRU state at the last valid turn.
Other modalities are masked-mean pooled over their frame axis. The data side (building the turn
windows, ``max_dialogue_length: 10``) belongs to the dataset loader, not to this model.

If ``"meta"`` is absent (for a sample or from ``input_dims``), ``m = 0``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from emofuse.errors import ConfigError
from emofuse.models.base import EmotionModel, ModelOutput, masked_mean, presence
from emofuse.models.layers import masked_softmax
from emofuse.models.registry import register_model

#: The paper's fused modalities, in its order (face, audio, text: the order of the gates and of
#: ``[h_v, h_a, h_t]``); any other registered modality but ``meta`` is fused after them.
PAPER_ORDER = ("face", "audio", "text")


def fused_order(modalities: Sequence[str]) -> tuple[str, ...]:
    """The fused modalities among ``modalities``: the paper's first, then other registered ones
    (registry order); ``meta`` conditions the gates instead."""
    from emofuse.data.modalities import list_modalities

    order = [*PAPER_ORDER, *(m for m in list_modalities() if m not in PAPER_ORDER and m != "meta")]
    return tuple(m for m in order if m in modalities)


def last_valid_state(states: Tensor, mask: Tensor) -> Tensor:
    """``states [B, T, H]`` at each row's last valid index (zeros for all-masked rows)."""
    t = mask.shape[1]
    positions = torch.arange(t, device=mask.device).expand_as(mask)
    last = torch.where(mask, positions, torch.zeros_like(positions)).max(dim=1).values
    picked = states[torch.arange(states.shape[0], device=states.device), last]
    return picked * presence(mask).unsqueeze(-1)


class DialogueContextEncoder(nn.Module):
    """GRU over a dialogue's turns; the representation is the state at the last valid turn."""

    def __init__(self, input_dim: int, hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRU(input_dim, hidden, batch_first=True)

    def forward(self, turns: Tensor, mask: Tensor) -> Tensor:
        # Masked turns are zeroed before the GRU: a unidirectional GRU's state at the last valid turn
        # then depends on valid turns only.
        states, _ = self.gru(turns * mask.unsqueeze(-1).to(turns.dtype))
        return last_valid_state(states, mask)


@register_model("gated_fusion")
class GatedFusion(EmotionModel):
    """Algorithm 2: metadata-conditioned adaptive gated fusion of face, audio and text.

    Args:
        num_classes: number of classes.
        input_dims: any non-empty subset of ``face``/``audio``/``text``, optionally ``meta``.
        hidden: width H of each projected modality representation ``h_i``.
        meta_hidden: width of the metadata encoding ``m``.
        head_hidden: width of the FC head's hidden layer.
        dropout: dropout on the projections and in the head.
        context_modalities: modalities whose sequence axis is dialogue turns (GRU context mode).
    """

    test_input_dims = {"face": 7, "audio": 12, "text": 10, "meta": 4}
    test_seq_lens = {"face": 1, "audio": 6, "text": 4, "meta": 1}
    test_kwargs = {"hidden": 8, "meta_hidden": 4, "head_hidden": 8, "context_modalities": ["text"]}

    def __init__(
        self,
        num_classes: int,
        input_dims: dict[str, int],
        hidden: int = 256,
        meta_hidden: int = 32,
        head_hidden: int = 128,
        dropout: float = 0.2,
        context_modalities: Sequence[str] = (),
    ) -> None:
        super().__init__(num_classes, input_dims)
        from emofuse.data.modalities import list_modalities

        unknown = set(self.modalities) - set(list_modalities())
        if unknown:
            raise ConfigError(f"gated_fusion takes registered modalities ({', '.join(list_modalities())}); "
                              f"unknown inputs: {sorted(unknown)}")
        self.fused = fused_order(self.input_dims)
        if not self.fused:
            raise ConfigError("gated_fusion needs at least one of face/audio/text")
        bad_context = set(context_modalities) - set(self.fused)
        if bad_context:
            raise ConfigError(f"context_modalities must be fused inputs {self.fused}, got {sorted(bad_context)}")
        self.context_modalities = tuple(context_modalities)
        self.has_meta = "meta" in self.input_dims
        self.meta_hidden = int(meta_hidden) if self.has_meta else 0

        self.context = nn.ModuleDict({m: DialogueContextEncoder(self.input_dims[m], hidden) for m in self.context_modalities})
        self.project = nn.ModuleDict(
            {m: nn.Linear(hidden if m in self.context else self.input_dims[m], hidden) for m in self.fused}
        )
        if self.has_meta:
            self.meta_encoder = nn.Linear(self.input_dims["meta"], self.meta_hidden)
        self.gates = nn.ModuleDict({m: nn.Linear(hidden + self.meta_hidden, 1) for m in self.fused})
        self.fusion_logits = nn.Parameter(torch.zeros(len(self.fused), hidden))  # W_f
        self.fusion_bias = nn.Parameter(torch.zeros(len(self.fused) * hidden))  # b
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Sequential(
            nn.Linear(hidden + len(self.fused) * hidden, head_hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(head_hidden, num_classes),
        )

    def _modality_state(self, m: str, x: Tensor, mask: Tensor) -> Tensor:
        pooled = self.context[m](x, mask) if m in self.context else masked_mean(x, mask)
        return torch.relu(self.project[m](pooled))

    def forward(self, inputs: dict[str, Tensor], masks: dict[str, Tensor]) -> ModelOutput:
        present = torch.stack([presence(masks[m].bool()) for m in self.fused], dim=1).bool()  # [B, M]
        states = torch.stack(
            [self.dropout(self._modality_state(m, inputs[m], masks[m].bool())) for m in self.fused], dim=1
        ) * present.unsqueeze(-1)  # [B, M, H], absent rows exactly 0
        batch = states.shape[0]

        if self.has_meta:
            meta_mask = masks["meta"].bool()
            meta = torch.relu(self.meta_encoder(masked_mean(inputs["meta"], meta_mask)))
            meta = meta * presence(meta_mask).unsqueeze(-1)
        else:
            meta = states.new_zeros(batch, 0)

        gates = torch.cat(
            [torch.sigmoid(self.gates[m](torch.cat([states[:, i], meta], dim=-1))) for i, m in enumerate(self.fused)], dim=1
        )  # g_i, [B, M]
        alpha = masked_softmax(gates, present)  # [B, M]
        gated = (alpha.unsqueeze(-1) * states).sum(dim=1)  # h

        per_unit = masked_softmax(self.fusion_logits.unsqueeze(0).expand(batch, -1, -1), present.unsqueeze(-1), dim=1)
        enhanced = (per_unit * states).flatten(1) + self.fusion_bias  # softmax(W_f) ⊙ [h_v,h_a,h_t] + b
        fused = torch.cat([gated, enhanced], dim=-1)

        weights = states.new_zeros(batch, len(self.modalities))  # aligned with self.modalities; meta = 0
        for i, m in enumerate(self.fused):
            weights[:, self.modalities.index(m)] = alpha[:, i]
        return ModelOutput(
            logits=self.head(fused),
            explanations={"modality_weights": weights},
            embedding=fused,
        )
