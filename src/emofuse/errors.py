"""Exceptions raised by emofuse. The CLI turns every `EmofuseError` into a one-line message."""

from __future__ import annotations

from pathlib import Path


class EmofuseError(Exception):
    """Base class for errors a user can act on (bad input, bad config, leaking split)."""


class DataError(EmofuseError):
    """A file or record is missing, malformed or unusable. The message always names the file."""

    #: the per-file status a batch prediction reports for this error (see `emofuse.inference.predictor.Prediction`)
    status = "error"

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class NoSpeechError(DataError):
    """A recording holds no speech (``status = "no_speech"``) or less than a model needs
    (``status = "too_short"``): it gets a status, never an emotion label."""

    def __init__(self, path: str | Path | None, problem: str, status: str = "no_speech") -> None:
        if status not in ("no_speech", "too_short"):
            raise ValueError(f"status must be 'no_speech' or 'too_short', got {status!r}")
        self.status = status
        super().__init__(path, problem)


class SpeakerOverlapError(EmofuseError):
    """Train, validation and test partitions share a speaker (or another grouping key)."""


class ConfigError(EmofuseError):
    """An option, model name or configuration value is invalid."""
