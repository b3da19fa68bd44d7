"""A BERT-like encoder fine-tuned end to end with a classification head (the "fine-tuned RoBERTa"
baseline of the ERC literature, EmoBERTa's recipe with speaker names and context in the sequence).

``TextClassifier`` reads ``[B, T, 2]`` inputs (token id, segment id; `emofuse.inputs.conversation`)
with a ``[B, T]`` mask and returns logits from the ``[CLS]`` state (or the masked mean of the token
states) through dropout and a linear layer. ``multi_label`` heads are trained with a sigmoid per class
(GoEmotions). The architecture is rebuilt from the encoder's ``config.json`` (saved in a fine-tuned
checkpoint), so a checkpoint loads without the original folder; `from_pretrained` starts from a local
folder's weights (the offline MiniLM by default; nothing is downloaded).

Optimisation helpers: `parameter_groups` gives layer-wise learning-rate decay (LLRD; Howard & Ruder
2018, Sun et al. 2019 "How to fine-tune BERT": layer ``l`` of ``L`` gets ``lr * decay**(L - l)``,
the embeddings ``lr * decay**(L + 1)``... counted from the head, which gets ``lr``), and
`freeze_lower_layers` stops gradients into the embeddings and the first ``k`` layers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from emofuse.encoders.base import check_model_folder, import_transformers
from emofuse.errors import ConfigError, DataError

POOLINGS = ("cls", "mean")
_LAYER = re.compile(r"(?:^|\.)(?:layer|layers)\.(\d+)\.")


class TextClassifier(nn.Module):
    """Encoder + dropout + linear head (see the module docstring)."""

    def __init__(self, encoder_config: dict[str, Any], num_classes: int, *, pooling: str = "cls",
                 dropout: float = 0.1, multi_label: bool = False) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling={pooling!r} must be one of {', '.join(POOLINGS)}")
        if num_classes < 2:
            raise ConfigError(f"num_classes must be >= 2, got {num_classes}")
        transformers = import_transformers()
        config = _config_from_dict(transformers, encoder_config)
        self.encoder = transformers.AutoModel.from_config(config, add_pooling_layer=False) \
            if config.model_type in ("bert", "roberta") else transformers.AutoModel.from_config(config)
        self.encoder_config = config.to_dict()
        self.num_classes = int(num_classes)
        self.pooling = pooling
        self.multi_label = bool(multi_label)
        self.dropout = nn.Dropout(float(dropout))
        self.head = nn.Linear(int(config.hidden_size), self.num_classes)
        self.segment_types = int(getattr(config, "type_vocab_size", 1) or 1)
        self.vocab_size = int(config.vocab_size)

    @classmethod
    def from_pretrained(cls, folder: str | Path, num_classes: int, **kwargs: Any) -> "TextClassifier":
        """A classifier whose encoder starts from the weights saved in ``folder`` (offline)."""
        folder = check_model_folder(folder)
        transformers = import_transformers()
        try:
            pretrained = transformers.AutoModel.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(folder, f"cannot load the encoder weights: {exc}") from exc
        model = cls(pretrained.config.to_dict(), num_classes, **kwargs)
        missing, unexpected = model.encoder.load_state_dict(pretrained.state_dict(), strict=False)
        unexpected = [k for k in unexpected if not k.startswith("pooler.")]
        if unexpected or [k for k in missing if not k.endswith("position_ids")]:
            raise DataError(folder, f"encoder weights do not fit its config (missing {missing[:3]}, unexpected {unexpected[:3]})")
        return model

    def forward(self, inputs: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits [B, C], pooled [B, H])`` for ``inputs [B, T, 2]`` (ids, segments), ``mask [B, T]``."""
        ids, segments = self._ids(inputs, mask)
        kwargs = {"input_ids": ids, "attention_mask": mask.long()}
        if self.segment_types >= 2:
            kwargs["token_type_ids"] = segments
        states = self.encoder(**kwargs).last_hidden_state
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return self.head(self.dropout(pooled)), pooled

    def _ids(self, inputs: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        if inputs.ndim != 3 or inputs.shape[-1] not in (1, 2):
            raise ValueError(f"text inputs must be [B, T, 2] (token id, segment id), got {tuple(inputs.shape)}")
        ids = torch.where(mask, inputs[..., 0].round(), torch.zeros_like(inputs[..., 0])).long()
        if bool(((ids < 0) | (ids >= self.vocab_size)).any()):
            raise ValueError(f"token ids outside the vocabulary [0, {self.vocab_size})")
        segments = inputs[..., 1].round().long() if inputs.shape[-1] == 2 else torch.zeros_like(ids)
        segments = torch.where(mask, segments, torch.zeros_like(segments)).clamp(0, self.segment_types - 1)
        return ids, segments

    def probabilities(self, logits: Tensor) -> Tensor:
        """Softmax over classes, or a sigmoid per class for a multi-label head."""
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)

    # -- optimisation -------------------------------------------------------------------------

    def num_layers(self) -> int:
        return int(self.encoder_config.get("num_hidden_layers") or self.encoder_config.get("n_layers") or 0)

    def layer_of(self, name: str) -> int:
        """Depth of parameter ``name``: 0 embeddings, 1..L the encoder layers, L + 1 the head/pooler."""
        if not name.startswith("encoder."):
            return self.num_layers() + 1
        found = _LAYER.search(name)
        if found:
            return int(found.group(1)) + 1
        return 0 if "embeddings" in name else self.num_layers() + 1

    def freeze_lower_layers(self, k: int) -> None:
        """No gradients into the embeddings and the first ``k`` encoder layers (``k = 0``: none frozen)."""
        if k < 0 or k > self.num_layers():
            raise ConfigError(f"freeze_layers={k} must be in [0, {self.num_layers()}]")
        for name, param in self.named_parameters():
            param.requires_grad_(not (k > 0 and self.layer_of(name) <= k))

    def parameter_groups(self, lr: float, weight_decay: float, decay: float = 1.0) -> list[dict[str, Any]]:
        """AdamW groups with layer-wise learning-rate decay: depth ``d`` gets ``lr * decay**(L + 1 - d)``;
        biases and LayerNorm weights get no weight decay."""
        if not 0.0 < decay <= 1.0:
            raise ConfigError(f"layer_lr_decay={decay} must be in (0, 1]")
        top = self.num_layers() + 1
        groups: dict[tuple[int, bool], list[Tensor]] = {}
        for name, param in self.named_parameters():
            if param.requires_grad:
                no_decay = param.ndim < 2 or name.endswith(".bias")
                groups.setdefault((self.layer_of(name), no_decay), []).append(param)
        return [{"params": params, "lr": lr * decay ** (top - depth), "weight_decay": 0.0 if nd else weight_decay}
                for (depth, nd), params in sorted(groups.items())]


def _config_from_dict(transformers: Any, data: dict[str, Any]) -> Any:
    """A transformers config from its ``to_dict()`` form (``model_type`` picks the class)."""
    if not isinstance(data, dict) or "model_type" not in data:
        raise ConfigError("encoder_config must be a transformers config dict with model_type")
    values = {k: v for k, v in data.items() if k not in ("model_type", "transformers_version", "architectures")}
    try:
        return transformers.AutoConfig.for_model(data["model_type"], **values)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"encoder_config: {exc}") from None
