"""RAVDESS loader: filename parsing, AU matching, bad input, real data."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from emofuse.data import RAVDESS_LABELS, prepare
from emofuse.data.ravdess import OPENFACE_AU_COLUMNS, parse_ravdess_name, prepare_ravdess, ravdess_from_manifest
from emofuse.errors import DataError

AU_HEADER = "clip_id,audio_path,actor,emotion," + ",".join(OPENFACE_AU_COLUMNS)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0")
    return path


def _au_csv(path: Path, clips: dict[str, float]) -> Path:
    lines = [AU_HEADER]
    for clip, value in clips.items():
        f = parse_ravdess_name(clip)
        lines.append(f"{clip},x,{int(f.actor)},{RAVDESS_LABELS[int(f.emotion) - 1]}," + ",".join([str(value)] * 35))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_parse_all_fields():
    f = parse_ravdess_name("02-02-06-02-02-02-12.mp4")
    m = f.meta()
    assert (m["modality"], m["vocal_channel"], m["emotion"], m["intensity"]) == ("video-only", "song", "fearful", "strong")
    assert (m["statement_text"], m["repetition"], m["actor"], m["gender"]) == ("Dogs are sitting by the door", 2, 12, "F")
    assert parse_ravdess_name("03-01-08-01-01-01-07").gender == "M"
    assert parse_ravdess_name("01-01-01-01-01-01-05_facecroppad.avi").suffix == "facecroppad"


@pytest.mark.parametrize("name", ["03-01-09-01-01-01-01.wav", "03-01-01-01-01-01.wav", "04-01-01-01-01-01-01.wav",
                                  "03-01-01-02-01-01-01.wav", "03-01-02-01-03-01-01.wav", "readme.wav"])
def test_malformed_filename_names_the_file(tmp_path, name):
    _touch(tmp_path / "Actor_01" / name)
    with pytest.raises(DataError, match=name.split(".")[0]):
        prepare_ravdess(tmp_path)


def test_kinds_select_files_and_sources(tmp_path):
    for n in ["03-01-05-01-01-01-01.wav", "01-01-05-01-01-01-01.mp4", "02-01-05-01-01-01-01.mp4",
              "03-02-04-02-02-01-02.flac"]:
        _touch(tmp_path / "Actor_0x" / n)
    audio = prepare_ravdess(tmp_path)
    assert [s.id for s in audio] == ["03-01-05-01-01-01-01", "03-02-04-02-02-01-02"]
    assert audio[1].speaker == "02" and audio[1].label == "sad" and audio[1].meta["gender"] == "F"
    assert set(audio[0].sources) == {"audio", "text"}
    assert audio[0].sources["text"] == "Kids are talking by the door"
    assert audio[1].sources["text"] == "Dogs are sitting by the door"
    av = prepare_ravdess(tmp_path, kinds=("av",))
    assert len(av) == 1 and av[0].sources["video"] == av[0].sources["audio"]
    video = prepare_ravdess(tmp_path, kinds=("video",))
    assert len(video) == 1 and set(video[0].sources) == {"video", "text"}
    assert len(prepare("ravdess", tmp_path, kinds=("audio", "av", "video"))) == 4
    with pytest.raises(ValueError):
        prepare_ravdess(tmp_path, kinds=("face",))


def test_au_matched_by_performance(tmp_path):
    _touch(tmp_path / "a" / "03-01-05-01-01-01-01.wav")
    _touch(tmp_path / "a" / "03-01-05-01-01-02-01.wav")
    csv = _au_csv(tmp_path / "au.csv", {"01-01-05-01-01-01-01": 0.5, "01-01-05-01-01-02-01": 1.5})
    samples = prepare_ravdess(tmp_path / "a", au_csv=csv)
    assert [float(s.sources["face"][0]) for s in samples] == [0.5, 1.5]
    assert samples[0].sources["face"].dtype == np.float32 and samples[0].meta["face_columns"] == OPENFACE_AU_COLUMNS


def test_missing_au_row_warns_or_raises(tmp_path, caplog):
    _touch(tmp_path / "a" / "03-01-05-01-01-01-01.wav")
    _touch(tmp_path / "a" / "03-01-05-01-01-02-01.wav")
    csv = _au_csv(tmp_path / "au.csv", {"01-01-05-01-01-01-01": 0.5})
    with caplog.at_level(logging.WARNING, logger="emofuse.data"):
        samples = prepare_ravdess(tmp_path / "a", au_csv=csv)
    assert "face" in samples[0].sources and "face" not in samples[1].sources
    assert "03-01-05-01-01-02-01" in caplog.text
    with pytest.raises(DataError, match="03-01-05-01-01-02-01"):
        prepare_ravdess(tmp_path / "a", au_csv=csv, strict=True)


def test_nan_in_au_csv_names_csv_and_clip(tmp_path):
    _touch(tmp_path / "a" / "03-01-05-01-01-01-01.wav")
    csv = _au_csv(tmp_path / "au.csv", {"01-01-05-01-01-01-01": float("nan")})
    with pytest.raises(DataError, match=r"au\.csv.*01-01-05-01-01-01-01.*NaN"):
        prepare_ravdess(tmp_path / "a", au_csv=csv)


def test_au_csv_emotion_disagreeing_with_clip_id(tmp_path):
    _touch(tmp_path / "a" / "03-01-05-01-01-01-01.wav")
    csv = _au_csv(tmp_path / "au.csv", {"01-01-05-01-01-01-01": 0.1})
    csv.write_text(csv.read_text().replace(",angry,", ",calm,"))
    with pytest.raises(DataError, match="disagrees"):
        prepare_ravdess(tmp_path / "a", au_csv=csv)


def test_manifest_text_column_is_checked(tmp_path):
    _touch(tmp_path / "Actor_01" / "03-01-05-01-02-01-01.wav")
    (tmp_path / "manifest.csv").write_text("path,text\nActor_01/03-01-05-01-02-01-01.wav,Dogs are sitting by the door\n")
    assert ravdess_from_manifest(tmp_path)[0].sources["text"] == "Dogs are sitting by the door"
    (tmp_path / "manifest.csv").write_text("path,text\nActor_01/03-01-05-01-02-01-01.wav,Kids are talking by the door\n")
    with pytest.raises(DataError, match="row 2: text"):
        ravdess_from_manifest(tmp_path)


def test_empty_root_and_missing_root(tmp_path):
    with pytest.raises(DataError, match="no RAVDESS files"):
        prepare_ravdess(tmp_path)
    with pytest.raises(DataError, match="not found"):
        prepare_ravdess(tmp_path / "nope")


@pytest.mark.realdata
def test_real_ravdess_with_action_units(ravdess_au, ravdess_manifest):
    au = ravdess_au / "ravdess-openface-au" / "au_clip_means.csv"
    samples = prepare("ravdess", ravdess_au / "ravdess-speech-16k", au_csv=au)
    assert len(samples) == 1440
    assert all(s.sources["face"].shape == (35,) for s in samples)
    counts = Counter(s.label for s in samples)
    assert counts["neutral"] == 96 and all(counts[c] == 192 for c in RAVDESS_LABELS[1:])
    assert sorted({s.speaker for s in samples}) == [f"{a:02d}" for a in range(1, 25)]
    assert {s.meta["gender"] for s in samples if s.speaker == "05"} == {"M"}
    listed = ravdess_from_manifest(ravdess_au / "ravdess-speech-16k")  # cross-checks the manifest's text column
    assert [s.id for s in listed] == [s.id for s in samples]
    assert {s.sources["text"] for s in listed} == {"Kids are talking by the door", "Dogs are sitting by the door"}


@pytest.mark.realdata
def test_real_ravdess_actor05_video(ravdess_video):
    au = ravdess_video / "ravdess-openface-au" / "au_clip_means.csv"
    samples = prepare_ravdess(ravdess_video / "ravdess-actor05-video", kinds=("av",), au_csv=au, strict=True)
    assert len(samples) == 66 and {s.speaker for s in samples} == {"05"}
    mp4 = [s for s in samples if s.sources["video"].suffix == ".mp4"]
    assert len(mp4) == 6 and all("audio" in s.sources for s in mp4)
