"""IEMOCAP loader on a synthetic release tree."""

from __future__ import annotations

import logging

import pytest

from emofuse.data import prepare
from emofuse.data.iemocap import prepare_iemocap
from emofuse.errors import DataError

EVAL = """% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]
C-E2:\tNeutral;\t()
A-E3:\tval 3; act 2; dom  2;\t()

[10.0100 - 11.3925]\tSes01F_impro01_M001\texc\t[3.5000, 3.5000, 3.0000]

[14.8872 - 18.0175]\tSes01F_impro01_M002\tfru\t[2.0000, 3.0000, 3.0000]

[20.0000 - 21.5000]\tSes01F_impro01_F003\tang\t[1.5000, 4.0000, 4.0000]
"""
TRANSCRIPT = """Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.
Ses01F_impro01_M001 [010.0100-011.3925]: Do you have your forms?
Ses01F_impro01_M002 [014.8872-018.0175]: Yeah.
"""


def _tree(root, eval_text=EVAL):
    s = root / "Session1"
    (s / "dialog" / "EmoEvaluation").mkdir(parents=True)
    (s / "dialog" / "transcriptions").mkdir(parents=True)
    (s / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt").write_text(eval_text)
    (s / "dialog" / "transcriptions" / "Ses01F_impro01.txt").write_text(TRANSCRIPT)
    wav = s / "sentences" / "wav" / "Ses01F_impro01"
    wav.mkdir(parents=True)
    for u in ("F000", "M001", "M002"):
        (wav / f"Ses01F_impro01_{u}.wav").write_bytes(b"\0")
    return root


def test_four_class_with_excited(tmp_path, caplog):
    _tree(tmp_path)
    with caplog.at_level(logging.INFO, logger="emofuse.data"):
        s = prepare("iemocap", tmp_path)
    assert [(x.id, x.speaker, x.label) for x in s] == [
        ("Ses01F_impro01_F000", "Ses01F", "neutral"), ("Ses01F_impro01_M001", "Ses01M", "happy"),
        ("Ses01F_impro01_F003", "Ses01F", "angry")]
    assert s[0].sources["text"] == "Excuse me." and s[0].sources["audio"].name == "Ses01F_impro01_F000.wav"
    assert s[1].meta["valence"] == 3.5 and s[1].meta["improvised"] and s[1].meta["emotion_code"] == "exc"
    assert "dropped 1" in caplog.text and "fru" in caplog.text
    # F003 has neither wav nor transcript: warned by name, modalities absent
    assert s[2].sources == {} and "Ses01F_impro01_F003" in caplog.text
    with pytest.raises(DataError, match="F003"):
        prepare_iemocap(tmp_path, strict=True)


def test_options(tmp_path):
    _tree(tmp_path)
    assert len(prepare_iemocap(tmp_path, excited_as_happy=False)) == 2
    every = prepare_iemocap(tmp_path, four_class=False, excited_as_happy=False)
    assert [x.label for x in every] == ["neutral", "excited", "frustrated", "angry"]


def test_malformed_lines(tmp_path):
    _tree(tmp_path, EVAL.replace("\tang\t", "\tzzz\t"))
    with pytest.raises(DataError, match=r"Ses01F_impro01\.txt.*zzz"):
        prepare_iemocap(tmp_path)
    with pytest.raises(DataError, match="Session"):
        prepare_iemocap(tmp_path / "Session1")


def test_malformed_evaluation_line(tmp_path):
    _tree(tmp_path, EVAL.replace("[2.5000, 2.5000, 2.5000]", "[2.5, oops]"))
    with pytest.raises(DataError, match="line 3"):
        prepare_iemocap(tmp_path)
