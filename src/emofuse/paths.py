"""Where data and caches live: `EMOFUSE_DATA`, `EMOFUSE_CACHE` or sensible defaults."""

from __future__ import annotations

import os
from pathlib import Path


def data_root(explicit: str | Path | None = None) -> Path | None:
    """Root folder holding the corpora (e.g. ``ravdess-speech-16k/``); None when it cannot be found.

    Order: the explicit argument, ``$EMOFUSE_DATA``, then ``../shared/data`` relative to the
    working directory (the layout of this project's development machines).
    """
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get("EMOFUSE_DATA")
    if env:
        return Path(env)
    for candidate in (Path.cwd() / ".." / "shared" / "data", Path(__file__).resolve().parents[3] / "shared" / "data"):
        if candidate.is_dir():
            return candidate.resolve()
    return None


def cache_root(explicit: str | Path | None = None) -> Path:
    """Folder for cached features: the argument, ``$EMOFUSE_CACHE`` or ``~/.cache/emofuse``."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get("EMOFUSE_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "emofuse"
