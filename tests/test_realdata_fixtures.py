"""The real-data fixtures of conftest.py: a plain RAVDESS copy (no manifest.csv) is recognised, and every
other corpus a test needs skips, naming what is missing, when the data root lacks it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

TESTS = Path(__file__).resolve().parent
FIXTURES = ["shared_data", "ravdess_manifest", "ravdess_au", "ravdess_video", "cremad_dir", "meld_dir"]
PROBE = """
import pytest

@pytest.mark.parametrize("name", {fixtures!r})
def test_probe(name, request):
    request.getfixturevalue(name)
"""


def _run_probe(tmp_path: Path, root: Path) -> dict[str, str]:
    """Request each fixture in a fresh pytest with EMOFUSE_DATA=root: {fixture: "passed" or the skip reason}."""
    (tmp_path / "test_probe.py").write_text(PROBE.format(fixtures=FIXTURES))
    env = {**os.environ, "EMOFUSE_DATA": str(root), "PYTHONPATH": os.pathsep.join(
        [str(TESTS), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-rsp", "-q",
                           "test_probe.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    outcome = {}
    for line in done.stdout.splitlines():
        for name in FIXTURES:
            if f"[{name}]" in line and line.startswith("PASSED"):
                outcome[name] = "passed"
        if line.startswith("SKIPPED") and "test_probe.py" in line:
            outcome.setdefault("_skips", "")
            outcome["_skips"] += line + "\n"
    assert "failed" not in done.stdout.splitlines()[-1] and "error" not in done.stdout.splitlines()[-1], done.stdout
    return outcome


def test_a_plain_ravdess_copy_is_recognised_and_missing_corpora_are_named(tmp_path):
    root = tmp_path / "data"
    actor = root / "ravdess-speech-16k" / "Actor_03"
    actor.mkdir(parents=True)
    sf.write(actor / "03-01-02-01-01-01-03.wav", np.zeros(1600, dtype=np.float32), 16000)  # no manifest.csv
    run = tmp_path / "run"
    run.mkdir()
    outcome = _run_probe(run, root)
    assert outcome.get("shared_data") == "passed", outcome
    skips = outcome["_skips"]
    assert skips.count("SKIPPED") == 5, skips
    for missing in ("manifest.csv", "ravdess-openface-au", "ravdess-actor05-video", "cremad-sample",
                    "meld-text/train_sent_emo.csv"):
        assert missing in skips, (missing, skips)


def test_a_folder_without_ravdess_files_is_not_ravdess(tmp_path):
    root = tmp_path / "data"
    (root / "ravdess-speech-16k" / "Actor_01").mkdir(parents=True)
    (root / "ravdess-speech-16k" / "Actor_01" / "notes.txt").write_text("x")
    (root / "cremad-sample").mkdir()
    (root / "cremad-sample" / "1001_DFA_ANG_XX.wav").write_bytes(b"x")
    run = tmp_path / "run"
    run.mkdir()
    outcome = _run_probe(run, root)
    assert outcome.get("cremad_dir") == "passed", outcome
    assert "RAVDESS speech" in outcome["_skips"] and "ravdess-speech-16k" in outcome["_skips"]
