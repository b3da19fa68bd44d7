"""Shared fixtures. Real-data tests use `shared_data` and skip (with the reason) when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from emofuse.paths import data_root


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = data_root()
    if root is None or not (root / "ravdess-speech-16k" / "manifest.csv").is_file():
        pytest.skip("real data not found: set EMOFUSE_DATA or place it at ../shared/data")
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test writes features to a private cache, never the user's."""
    if "EMOFUSE_TEST_CACHE" in os.environ:
        monkeypatch.setenv("EMOFUSE_CACHE", os.environ["EMOFUSE_TEST_CACHE"])
    else:
        monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
