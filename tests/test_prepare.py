"""`emofuse prepare` opens every file: bad ones are named, counts per label and speaker are printed."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emofuse.cli import main

GOOD = [("01", "03-01-01-01-01-01-01"), ("01", "03-01-05-01-01-01-01"), ("02", "03-01-05-02-01-01-02")]
GARBAGE = ("02", "03-01-04-01-02-01-02")


def _tone(path: Path, seconds: float = 0.3, sr: int = 16000) -> None:
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)


def _corpus(root: Path, garbage: bool = True) -> Path:
    """A tiny RAVDESS layout under root/ravdess-speech-16k; with ``garbage``, one .flac of random bytes."""
    for actor, stem in GOOD:
        folder = root / "ravdess-speech-16k" / f"Actor_{actor}"
        folder.mkdir(parents=True, exist_ok=True)
        _tone(folder / f"{stem}.wav")
    if garbage:
        bad = root / "ravdess-speech-16k" / f"Actor_{GARBAGE[0]}" / f"{GARBAGE[1]}.flac"
        bad.write_bytes(np.random.default_rng(0).bytes(4000))
    return root


def _garbage(root: Path) -> Path:
    return root / "ravdess-speech-16k" / f"Actor_{GARBAGE[0]}" / f"{GARBAGE[1]}.flac"


def test_garbage_flac_is_named_and_fails_the_command(tmp_path, capsys):
    root = _corpus(tmp_path / "data")
    out = tmp_path / "m.csv"
    assert main(["prepare", "ravdess", "--data", str(root), "--out", str(out), "--quiet"]) == 2
    cap = capsys.readouterr()
    bad_lines = [line for line in cap.err.splitlines() if line.startswith("emofuse: bad file:")]
    assert len(bad_lines) == 1 and str(_garbage(root)) in bad_lines[0]
    assert "1 of 4 files are bad" in cap.err and not out.exists()  # nothing written
    assert "4 files checked, 1 bad" in cap.out


def test_counts_per_label_and_speaker(tmp_path, capsys):
    root = _corpus(tmp_path / "data", garbage=False)
    out = tmp_path / "m.csv"
    assert main(["prepare", "ravdess", "--data", str(root), "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "ravdess: 3 samples, 2 speakers; 3 files checked, 0 bad, 0.9 s of audio" in text
    labels = text.split("per label:\n")[1].split("per speaker:\n")[0]
    assert labels.splitlines() == ["  neutral: 1", "  angry: 2"]  # the corpus's class order
    speakers = text.split("per speaker:\n")[1].splitlines()[:2]
    assert speakers == ["  01: 2", "  02: 1"]
    assert len(list(csv.DictReader(out.open()))) == 3


def test_keep_going_leaves_the_bad_files_samples_out(tmp_path, capsys):
    root = _corpus(tmp_path / "data")
    out = tmp_path / "m.csv"
    assert main(["prepare", "ravdess", "--data", str(root), "--out", str(out), "--quiet", "--keep-going",
                 "--jobs", "1"]) == 0
    cap = capsys.readouterr()
    assert str(_garbage(root)) in cap.err and "their 1 samples are left out" in cap.err
    assert "ravdess: 3 samples, 2 speakers; 4 files checked, 1 bad" in cap.out
    assert "  sad" not in cap.out  # the garbage file's label is not counted
    ids = [row["id"] for row in csv.DictReader(out.open())]
    assert GARBAGE[1] not in ids and len(ids) == 3


@pytest.mark.parametrize("damage", ["truncated_wav", "empty", "text"])
def test_other_bad_files_are_named(tmp_path, capsys, damage):
    root = _corpus(tmp_path / "data", garbage=False)
    victim = root / "ravdess-speech-16k" / "Actor_01" / f"{GOOD[0][1]}.wav"
    if damage == "truncated_wav":
        victim.write_bytes(victim.read_bytes()[:3000])  # the header still declares 0.3 s
    elif damage == "empty":
        victim.write_bytes(b"")
    else:
        victim.write_text("not audio\n" * 50)
    assert main(["prepare", "ravdess", "--data", str(root), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"emofuse: bad file: {victim}:" in err


def test_progress_bar_unless_quiet(tmp_path, capsys):
    root = _corpus(tmp_path / "data", garbage=False)
    assert main(["prepare", "ravdess", "--data", str(root)]) == 0
    assert "checking files" in capsys.readouterr().err
    assert main(["prepare", "ravdess", "--data", str(root), "--quiet"]) == 0
    assert "checking files" not in capsys.readouterr().err


def test_bad_jobs_value_is_one_line(tmp_path, capsys):
    root = _corpus(tmp_path / "data", garbage=False)
    assert main(["prepare", "ravdess", "--data", str(root), "--jobs", "0"]) == 2
    assert capsys.readouterr().err.strip() == "emofuse: error: --jobs must be at least 1, got 0"


def test_video_only_source_must_decode(tmp_path):
    from emofuse.data.check import check_samples
    from emofuse.data.record import Sample

    fake = tmp_path / "clip.mp4"
    fake.write_bytes(b"\x00" * 2000)
    good_audio = tmp_path / "a.wav"
    _tone(good_audio)
    samples = [Sample("a", "1", "x", "sad", sources={"audio": good_audio, "video": fake})]
    report = check_samples(samples, progress=False)
    assert list(report.bad) == [fake] and report.dropped == samples and report.good == []
