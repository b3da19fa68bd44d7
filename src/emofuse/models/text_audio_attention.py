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

Encoders stay out of the model; :func:`load_text_encoder` / :func:`load_audio_encoder` load a
Hugging Face encoder from a *local* folder (no hub access) and :func:`encode_text` /
:func:`encode_audio` turn raw text / 16 kHz waveforms into the ``[B, T, D]`` states + masks this
model (and the others) consume.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from emofuse.errors import ConfigError, DataError
from emofuse.models.base import EmotionModel, ModelOutput, masked_mean, presence
from emofuse.models.layers import masked_softmax
from emofuse.models.registry import register_model


def masked_attention_weights(scores: Tensor, key_mask: Tensor, query_mask: Tensor | None = None) -> Tensor:
    """Softmax of ``scores [B, h, T_q, T_k]`` over valid keys only.

    Rows whose keys are all masked (an absent modality) get all-zero weights instead of the NaN
    a plain ``-inf`` masked softmax gives; padded query rows are zeroed too. Masked keys receive
    exactly zero weight, so their values cannot leak into the output.
    """
    weights = masked_softmax(scores, key_mask[:, None, None, :])
    if query_mask is not None:
        weights = weights * query_mask[:, None, :, None].to(scores.dtype)
    return weights


class CrossModalAttention(nn.Module):
    """Multi-head scaled dot-product attention of one modality's sequence over another's.

    Projections belong to the caller (per modality), so one modality's ``W_Q``/``W_K``/``W_V`` can
    serve several directed pairs. Returns the attended sequence ``[B, T_q, h * d_k]`` and the
    attention map ``[B, h, T_q, T_k]`` (rows sum to 1 over valid keys, 0 when none are valid).
    """

    def __init__(self, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = int(heads)
        self.dropout = nn.Dropout(dropout)

    def _split(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, q_mask: Tensor, k_mask: Tensor) -> tuple[Tensor, Tensor]:
        qh, kh, vh = self._split(q), self._split(k), self._split(v)
        scores = qh @ kh.transpose(-1, -2) / math.sqrt(qh.shape[-1])
        weights = masked_attention_weights(scores, k_mask, q_mask)
        attended = self.dropout(weights) @ vh  # [B, h, T_q, d_k]
        b, _, t_q, _ = attended.shape
        return attended.transpose(1, 2).reshape(b, t_q, -1), weights


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
        self.attention = CrossModalAttention(heads, attention_dropout)
        self.head = nn.Sequential(
            nn.Linear(4 * d_model, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
        )

    def forward(self, inputs: dict[str, Tensor], masks: dict[str, Tensor]) -> ModelOutput:
        q, k, v, mask = {}, {}, {}, {}
        for m in ("text", "audio"):
            mask[m] = masks[m].bool()
            x = inputs[m] * mask[m].unsqueeze(-1).to(inputs[m].dtype)  # padded frames carry nothing
            q[m], k[m], v[m] = self.proj_q[m](x), self.proj_k[m](x), self.proj_v[m](x)
        t2a, w_t2a = self.attention(q["text"], k["audio"], v["audio"], mask["text"], mask["audio"])
        a2t, w_a2t = self.attention(q["audio"], k["text"], v["text"], mask["audio"], mask["text"])
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


# --------------------------------------------------------------------------------------------
# Encoder loading (Hugging Face transformers, local folders only)
# --------------------------------------------------------------------------------------------


@dataclass
class LoadedEncoder:
    """A frozen pretrained encoder and its preprocessor (tokenizer / feature extractor or None)."""

    model: Any
    preprocessor: Any | None
    hidden_size: int


def _import_transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("loading a pretrained encoder needs the 'transformers' package: pip install transformers") from exc
    transformers.logging.set_verbosity_error()
    return transformers


def check_model_folder(path: str | Path) -> Path:
    """``path`` as a folder holding a saved Hugging Face model (DataError naming it otherwise)."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(folder, "encoder folder not found (hub downloads are disabled: pass a local folder)")
    if not (folder / "config.json").is_file():
        raise DataError(folder, "not a saved Hugging Face model: config.json is missing")
    return folder


def _load_model(folder: Path) -> Any:
    transformers = _import_transformers()
    try:
        model = transformers.AutoModel.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(folder, f"cannot load the encoder weights: {exc}") from exc
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_text_encoder(path: str | Path) -> LoadedEncoder:
    """Load a frozen BERT-like text encoder and its tokenizer from a local folder."""
    folder = check_model_folder(path)
    transformers = _import_transformers()
    model = _load_model(folder)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(folder, f"cannot load the tokenizer: {exc}") from exc
    return LoadedEncoder(model, tokenizer, int(model.config.hidden_size))


def load_audio_encoder(path: str | Path) -> LoadedEncoder:
    """Load a frozen wav2vec-like speech encoder (and its feature extractor, if saved) from a local folder."""
    folder = check_model_folder(path)
    transformers = _import_transformers()
    model = _load_model(folder)
    extractor = None
    if (folder / "preprocessor_config.json").is_file():
        try:
            extractor = transformers.AutoFeatureExtractor.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(folder, f"cannot load the feature extractor: {exc}") from exc
    return LoadedEncoder(model, extractor, int(model.config.hidden_size))


@torch.no_grad()
def encode_text(encoder: LoadedEncoder, texts: Sequence[str], max_length: int = 128) -> tuple[Tensor, Tensor]:
    """Token states ``[B, T, D]`` and mask ``[B, T]`` (True = real token) for a batch of strings."""
    if encoder.preprocessor is None:
        raise ConfigError("encode_text needs an encoder loaded with load_text_encoder (it has no tokenizer)")
    batch = encoder.preprocessor(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    out = encoder.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return out.last_hidden_state, batch["attention_mask"].bool()


@torch.no_grad()
def encode_audio(encoder: LoadedEncoder, waveforms: Sequence[np.ndarray], sample_rate: int = 16000) -> tuple[Tensor, Tensor]:
    """Frame states ``[B, T, D]`` and mask ``[B, T]`` for mono waveforms at ``sample_rate``.

    Waveforms are normalised to zero mean / unit variance (what wav2vec 2.0 extractors do) and
    right-padded; the frame mask comes from the model's own length arithmetic.
    """
    if sample_rate != 16000:
        raise ConfigError(f"wav2vec-style encoders expect 16 kHz audio, got {sample_rate} Hz")
    if not waveforms:
        raise ConfigError("encode_audio needs at least one waveform")
    lengths = [int(len(w)) for w in waveforms]
    if encoder.preprocessor is not None:
        batch = encoder.preprocessor(
            [np.asarray(w, dtype=np.float32) for w in waveforms], sampling_rate=sample_rate, padding=True, return_tensors="pt"
        )
        values = batch["input_values"]
    else:
        values = torch.zeros(len(waveforms), max(lengths))
        for i, w in enumerate(waveforms):
            x = torch.as_tensor(np.asarray(w, dtype=np.float32))
            values[i, : len(x)] = (x - x.mean()) / (x.std(unbiased=False) + 1e-7)
    sample_mask = torch.arange(values.shape[1])[None, :] < torch.tensor(lengths)[:, None]
    # group-norm feature encoders (wav2vec2-base) must see zero padding and no attention mask
    use_mask = getattr(encoder.model.config, "feat_extract_norm", "layer") != "group"
    kwargs = {"attention_mask": sample_mask.long()} if use_mask else {}
    states = encoder.model(input_values=values * sample_mask, **kwargs).last_hidden_state
    frame_lengths = encoder.model._get_feat_extract_output_lengths(torch.tensor(lengths))
    frame_mask = torch.arange(states.shape[1])[None, :] < frame_lengths[:, None]
    return states, frame_mask
