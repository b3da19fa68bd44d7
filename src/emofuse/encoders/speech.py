"""wav2vec-like speech encoders: load one from a local folder, turn 16 kHz waveforms into frame states."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from emofuse.encoders.base import (LoadedEncoder, check_model_folder, import_transformers, load_frozen_model,
                                   load_preprocessor)
from emofuse.errors import ConfigError


def load_audio_encoder(path: str | Path) -> LoadedEncoder:
    """Load a frozen wav2vec-like speech encoder (and its feature extractor, if saved) from a local folder."""
    folder = check_model_folder(path)
    transformers = import_transformers()
    model = load_frozen_model(folder)
    extractor = None
    if (folder / "preprocessor_config.json").is_file():
        extractor = load_preprocessor(folder, transformers.AutoFeatureExtractor, "feature extractor")
    return LoadedEncoder(model, extractor, int(model.config.hidden_size))


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
