"""Shared fixtures.

Real-data tests (marked ``realdata``) ask for the data they need and skip, with a reason that names
what is missing, when it is absent:

- ``data_root_dir``: the data root (``$EMOFUSE_DATA`` or ``../shared/data``);
- ``shared_data``: the data root, holding RAVDESS speech in ``ravdess-speech-16k/`` (this project's
  ``manifest.csv``, or a plain RAVDESS copy: ``Actor_XX`` folders of RAVDESS-named files);
- ``ravdess_manifest``: the same, and ``ravdess-speech-16k/manifest.csv`` exists;
- ``ravdess_au``: the same, and the OpenFace action-unit table ``ravdess-openface-au/au_clip_means.csv``;
- ``ravdess_video``: the data root, with ``ravdess-actor05-video/`` and the action-unit table;
- ``cremad_dir`` / ``meld_dir``: the ``cremad-sample/`` / ``meld-text/`` folder itself.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from emofuse.paths import data_root

RAVDESS_DIR = "ravdess-speech-16k"
AU_CSV = Path("ravdess-openface-au") / "au_clip_means.csv"
_ACTOR = re.compile(r"^Actor_\d\d$")


def _missing(what: str, path: Path) -> None:
    pytest.skip(f"real data missing: {what} not found at {path}")


def is_ravdess_copy(folder: Path) -> bool:
    """True for this project's RAVDESS folder (``manifest.csv``) or a plain RAVDESS copy: an
    ``Actor_XX`` folder (any depth) holding a file named like ``03-01-05-01-02-01-12.wav``."""
    if (folder / "manifest.csv").is_file():
        return True
    if not folder.is_dir():
        return False
    from emofuse.data.ravdess import parse_ravdess_name
    from emofuse.errors import DataError

    # found as the loader finds them (rglob: any depth; symbolic links to folders are not followed)
    for actor in sorted(p for p in folder.rglob("Actor_*") if p.is_dir() and _ACTOR.match(p.name)):
        for file in actor.iterdir():
            try:
                parse_ravdess_name(file.name)
            except DataError:
                continue
            return True
    return False


AU_WHAT = "the RAVDESS action-unit table (ravdess-openface-au)"


def _require_file(path: Path, what: str) -> None:
    """Skip the test, naming ``what`` and ``path``, unless ``path`` is a file."""
    if not path.is_file():
        _missing(what, path)


@pytest.fixture(scope="session")
def data_root_dir() -> Path:
    root = data_root()
    if root is None or not root.is_dir():
        pytest.skip("real data missing: no data root (set EMOFUSE_DATA or place the data at ../shared/data)"
                    + ("" if root is None else f"; {root} is not a folder"))
    return root


@pytest.fixture(scope="session")
def shared_data(data_root_dir: Path) -> Path:
    """The data root, with RAVDESS speech (manifest.csv or Actor_XX folders) in ravdess-speech-16k/."""
    folder = data_root_dir / RAVDESS_DIR
    if not is_ravdess_copy(folder):
        _missing("RAVDESS speech (manifest.csv or Actor_XX folders of RAVDESS-named files)", folder)
    return data_root_dir


@pytest.fixture(scope="session")
def ravdess_manifest(shared_data: Path) -> Path:
    """The data root, whose RAVDESS folder carries this project's manifest.csv."""
    _require_file(shared_data / RAVDESS_DIR / "manifest.csv", "this project's RAVDESS manifest.csv")
    return shared_data


@pytest.fixture(scope="session")
def ravdess_au(shared_data: Path) -> Path:
    """The data root, with RAVDESS speech and the OpenFace action-unit table (the face modality)."""
    _require_file(shared_data / AU_CSV, AU_WHAT)
    return shared_data


@pytest.fixture(scope="session")
def ravdess_video(data_root_dir: Path) -> Path:
    """The data root, with ravdess-actor05-video/ and the action-unit table."""
    folder = data_root_dir / "ravdess-actor05-video"
    if not folder.is_dir():
        _missing("the RAVDESS actor-5 videos (ravdess-actor05-video)", folder)
    _require_file(data_root_dir / AU_CSV, AU_WHAT)
    return data_root_dir


@pytest.fixture(scope="session")
def cremad_dir(data_root_dir: Path) -> Path:
    """The cremad-sample/ folder (at least one file in it)."""
    folder = data_root_dir / "cremad-sample"
    if not folder.is_dir() or not any(p.is_file() for p in folder.iterdir()):
        _missing("the CREMA-D sample (cremad-sample)", folder)
    return folder


@pytest.fixture(scope="session")
def meld_dir(data_root_dir: Path) -> Path:
    """The meld-text/ folder with MELD's three CSV files."""
    folder = data_root_dir / "meld-text"
    for split in ("train", "dev", "test"):
        _require_file(folder / f"{split}_sent_emo.csv", f"the MELD text (meld-text/{split}_sent_emo.csv)")
    return folder


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test writes features to a private cache, never the user's."""
    if "EMOFUSE_TEST_CACHE" in os.environ:
        monkeypatch.setenv("EMOFUSE_CACHE", os.environ["EMOFUSE_TEST_CACHE"])
    else:
        monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
