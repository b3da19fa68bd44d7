"""The feature-extractor interface (with its declarations: source, modality, produces, frame
rate) and the registry that maps names to extractors."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

import numpy as np
import soxr

from emofuse.errors import ConfigError, DataError
from emofuse.features.sources import get_source, list_sources


class FeatureExtractor:
    """Turns one input of a sample into a float32 feature matrix ``[T, D]`` (vectors: ``[1, D]``).

    Subclasses are dataclasses whose fields are their configuration; ``name`` + ``config()``
    identify the output exactly and form the cache key, so every field that changes the
    numbers must be a field (and nothing that does not, e.g. thread counts, should be).

    Declarations (class attributes, or properties where they follow the configuration):
    ``source`` (the source kind read, `emofuse.features.sources`), ``modality`` (the modality
    it feeds by default, `emofuse.data.modalities`), ``produces`` (``"vector"``: one ``[1, D]``
    per clip, or ``"sequence"``: ``[T, D]``) and ``frame_rate`` (frames per second of a sequence,
    None for vectors and for sequences without a time axis, such as text tokens). The driver
    (`emofuse.features.driver.extract`) calls `process` on inputs the source kind loads.
    """

    name: ClassVar[str] = ""
    #: The source kind read (`emofuse.features.sources`): ``"audio"`` (a waveform,
    #: ``__call__(wave, sr)``), ``"text"`` (strings, ``compute_texts``), ``"table"``, ``"meta"``, ``"signal"``.
    source: ClassVar[str] = "audio"
    #: The modality it feeds by default.
    modality: ClassVar[str] = "audio"
    #: ``"vector"`` (``[1, D]`` per clip) or ``"sequence"`` (``[T, D]``).
    produces: ClassVar[str] = "sequence"
    #: Frames per second of a sequence (None: a vector, or no time axis).
    frame_rate: ClassVar[float | None] = None
    #: Rate the extractor works at; other input rates are resampled first.
    sample_rate: ClassVar[int] = 16000
    #: Whether its sequences may hold whole NaN rows: frames without data, e.g. no face found
    #: (`emofuse.inputs.missing`); the driver and cache reject any NaN from other extractors.
    missing_rows: ClassVar[bool] = False

    @property
    def dim(self) -> int | None:
        """Feature dimension D (None where the data decides it, e.g. the columns of a table)."""
        raise NotImplementedError

    def process(self, inputs: list[Any]) -> list[np.ndarray | None]:
        """Features of several inputs as the source kind loads them (audio: waveforms at
        ``sample_rate``); None for an input that yields no features (the modality is absent)."""
        return self.batch(inputs, self.sample_rate)

    def config(self) -> dict[str, Any]:
        """JSON-able configuration (dataclass fields not starting with an underscore)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}

    def identity(self) -> dict[str, Any]:
        """Extra cache-key content that is not an option, e.g. a fingerprint of the model files a
        configuration points at. Empty for extractors whose options say everything (the audio ones,
        whose cache keys therefore stay as they were)."""
        return {}

    def compute(self, wave: np.ndarray) -> np.ndarray:
        """Features of one validated float32 mono waveform at ``sample_rate``; subclasses implement."""
        raise NotImplementedError

    def __call__(self, wave: np.ndarray, sr: int) -> np.ndarray:
        """Features ``[T, D]`` of one waveform at rate ``sr``."""
        return self.compute(self.prepare(wave, sr))

    def batch(self, waves: list[np.ndarray], sr: int) -> list[np.ndarray]:
        """Features of several waveforms; loops by default, overridden where batching is faster."""
        return [self(wave, sr) for wave in waves]

    def prepare(self, wave: np.ndarray, sr: int) -> np.ndarray:
        """Check a waveform (1-D, finite, non-empty) and resample it to ``sample_rate``."""
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1:
            raise DataError(None, f"{self.name}: expected a mono waveform [N], got shape {wave.shape}")
        if wave.size == 0:
            raise DataError(None, f"{self.name}: empty waveform")
        if not np.isfinite(wave).all():
            raise DataError(None, f"{self.name}: waveform contains NaN or infinite samples")
        if sr != self.sample_rate:
            wave = soxr.resample(wave, sr, self.sample_rate, quality="HQ").astype(np.float32, copy=False)
        return np.ascontiguousarray(wave)

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({options})"


_REGISTRY: dict[str, Callable[..., FeatureExtractor]] = {}


PRODUCES = ("vector", "sequence")


def register(cls: type[FeatureExtractor]) -> type[FeatureExtractor]:
    """Class decorator adding an extractor to the registry under ``cls.name`` (its declarations
    are checked: a registered source kind and modality, ``produces`` vector or sequence)."""
    from emofuse.data.modalities import list_modalities

    if not cls.name or cls.name in _REGISTRY:
        raise ValueError(f"extractor name {cls.name!r} is empty or already registered")
    if cls.source not in list_sources():
        raise ValueError(f"extractor {cls.name!r}: unknown source {cls.source!r}; sources: {', '.join(list_sources())}")
    if cls.modality not in list_modalities():
        raise ValueError(f"extractor {cls.name!r}: unknown modality {cls.modality!r}")
    if cls.produces not in PRODUCES:
        raise ValueError(f"extractor {cls.name!r}: produces must be 'vector' or 'sequence', got {cls.produces!r}")
    _REGISTRY[cls.name] = cls
    return cls


def list_extractors(source: str | None = "audio") -> list[str]:
    """Names accepted by `get_extractor`, sorted: the extractors reading ``source`` (``"audio"``
    by default; any kind of `emofuse.features.sources.list_sources`), or every extractor when
    ``source`` is None."""
    if source is not None:
        get_source(source)  # ConfigError naming the known kinds
    return sorted(n for n, cls in _REGISTRY.items() if source is None or getattr(cls, "source", "audio") == source)


def get_extractor(name: str, **cfg: Any) -> FeatureExtractor:
    """Build the extractor registered as ``name`` with options ``cfg``.

    Raises:
        ConfigError: unknown name (the message lists the known ones) or invalid option.
    """
    if name not in _REGISTRY:
        raise ConfigError(f"unknown feature extractor {name!r}; choose one of: {', '.join(list_extractors(None))}")
    factory = _REGISTRY[name]
    if dataclasses.is_dataclass(factory):
        allowed = {f.name for f in dataclasses.fields(factory) if f.init and not f.name.startswith("_")}
        unknown = sorted(set(cfg) - allowed)
        if unknown:
            raise ConfigError(
                f"feature extractor {name!r} has no option(s) {', '.join(unknown)}; "
                f"options: {', '.join(sorted(allowed)) or '(none)'}"
            )
    try:
        return factory(**cfg)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"feature extractor {name!r}: {exc}") from exc
