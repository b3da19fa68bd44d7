"""CREMA-D loader."""

from __future__ import annotations

import logging

import pytest

from emofuse.data import prepare
from emofuse.data.cremad import parse_cremad_name, prepare_cremad
from emofuse.errors import DataError


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0")


def test_merges_audio_and_video_and_demographics(tmp_path, caplog):
    _touch(tmp_path / "AudioWAV" / "1002_IEO_HAP_HI.wav")
    _touch(tmp_path / "VideoFlash" / "1002_IEO_HAP_HI.flv")
    _touch(tmp_path / "VideoFlash" / "1003_TSI_SAD_LO.flv")
    demo = tmp_path / "VideoDemographics.csv"
    demo.write_text("ActorID,Age,Sex,Race,Ethnicity\n1002,21,Female,Caucasian,Not Hispanic\n")
    with caplog.at_level(logging.WARNING, logger="emofuse.data"):
        s = prepare_cremad(tmp_path, demographics_csv=demo)
    assert [x.id for x in s] == ["1002_IEO_HAP_HI", "1003_TSI_SAD_LO"]
    assert s[0].sources["audio"].suffix == ".wav" and s[0].sources["video"].suffix == ".flv"
    assert s[0].meta["gender"] == "F" and s[0].meta["age"] == 21 and s[0].meta["level"] == "high"
    assert s[0].meta["sentence_text"] == "It's eleven o'clock" and s[0].label == "happy"
    assert s[1].sources["audio"] == s[1].sources["video"] and s[1].meta["audio_in_video"]
    assert "1003_TSI_SAD_LO" in caplog.text
    with pytest.raises(DataError, match="1003"):
        prepare_cremad(tmp_path, demographics_csv=demo, strict=True)


@pytest.mark.parametrize("name", ["1001_DFA_XYZ_XX.wav", "1001_ABC_ANG_XX.wav", "1001_DFA_ANG_QQ.wav", "10_DFA_ANG_XX.wav"])
def test_malformed_names(tmp_path, name):
    _touch(tmp_path / name)
    with pytest.raises(DataError, match=name.split(".")[0]):
        prepare_cremad(tmp_path)


def test_bad_demographics(tmp_path):
    _touch(tmp_path / "1001_DFA_ANG_XX.wav")
    demo = tmp_path / "d.csv"
    demo.write_text("ActorID,Age,Sex\n1001,51,Male\n")
    with pytest.raises(DataError, match="Race"):
        prepare_cremad(tmp_path, demographics_csv=demo)


@pytest.mark.realdata
def test_real_cremad_clip(cremad_dir):
    (s,) = prepare("cremad", cremad_dir)
    assert (s.id, s.speaker, s.label) == ("1001_DFA_ANG_XX", "1001", "angry")
    assert s.meta["sentence_text"] == "Don't forget a jacket" and s.sources["video"].is_file()
    assert parse_cremad_name(s.sources["video"].name)["level"] == "unspecified"
