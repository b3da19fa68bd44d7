"""BERT-like text encoders: load one from a local folder, turn strings into token states."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from emofuse.encoders.base import (LoadedEncoder, check_model_folder, import_transformers, load_frozen_model,
                                   load_preprocessor)
from emofuse.errors import ConfigError


def load_text_encoder(path: str | Path) -> LoadedEncoder:
    """Load a frozen BERT-like text encoder and its tokenizer from a local folder."""
    folder = check_model_folder(path)
    transformers = import_transformers()
    model = load_frozen_model(folder)
    tokenizer = load_preprocessor(folder, transformers.AutoTokenizer, "tokenizer")
    return LoadedEncoder(model, tokenizer, int(model.config.hidden_size))


@torch.no_grad()
def encode_text(encoder: LoadedEncoder, texts: Sequence[str], max_length: int = 128) -> tuple[Tensor, Tensor]:
    """Token states ``[B, T, D]`` and mask ``[B, T]`` (True = real token) for a batch of strings."""
    if encoder.preprocessor is None:
        raise ConfigError("encode_text needs an encoder loaded with load_text_encoder (it has no tokenizer)")
    batch = encoder.preprocessor(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    out = encoder.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return out.last_hidden_state, batch["attention_mask"].bool()
