"""MELD loader."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

from emofuse.data import MELD_LABELS, prepare
from emofuse.data.meld import clean_text, prepare_meld
from emofuse.errors import DataError

HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"


def _csv(root, split, rows):
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{split}_sent_emo.csv").write_bytes((HEADER + "".join(rows)).encode("utf-8"))


def test_clean_text_repairs_mojibake():
    assert clean_text("You\u0092re") == "You\u2019re"
    assert clean_text("it\u00e2\u20ac\u2122s") == "it\u2019s"
    assert clean_text("  caf\u00e9\u00a0ok ") == "caf\u00e9 ok"


def test_clips_and_missing_clips(tmp_path, caplog):
    rows = ['1,Hi!,Ross,joy,positive,0,0,1,1,"00:00:01,000","00:00:02,000"\n',
            '2,"Oh, no.",Rachel,sadness,negative,0,1,1,1,"00:00:03,000","00:00:04,000"\n']
    _csv(tmp_path, "dev", rows)
    clips = tmp_path / "clips" / "dev_splits_complete"
    clips.mkdir(parents=True)
    (clips / "dia0_utt0.mp4").write_bytes(b"\0")
    with caplog.at_level(logging.WARNING, logger="emofuse.data"):
        s = prepare_meld(tmp_path, split="dev", clips_dir=tmp_path / "clips")
    assert s[0].sources["video"].name == "dia0_utt0.mp4" and s[0].sources["text"] == "Hi!"
    assert "video" not in s[1].sources and "dev_dia0_utt1" in caplog.text
    assert s[1].extra_labels == {"sentiment": "negative"} and s[1].meta["dialogue"] == "dev:0"
    assert s[1].speaker == "Rachel" and s[1].sources["text"] == "Oh, no."
    with pytest.raises(DataError, match="dia0_utt1"):
        prepare_meld(tmp_path, split="dev", clips_dir=tmp_path / "clips", strict=True)


def test_bad_rows(tmp_path):
    _csv(tmp_path, "dev", ['1,Hi,Ross,happiness,positive,0,0,1,1,a,b\n'])
    with pytest.raises(DataError, match=r"dev_sent_emo\.csv.*row 2.*happiness"):
        prepare_meld(tmp_path, split="dev")
    _csv(tmp_path, "dev", ['1,Hi,Ross,joy,positive,x,0,1,1,a,b\n'])
    with pytest.raises(DataError, match="Dialogue_ID"):
        prepare_meld(tmp_path, split="dev")
    with pytest.raises(DataError, match="train_sent_emo.csv"):
        prepare_meld(tmp_path)


def test_cp1252_file_is_read(tmp_path):
    (tmp_path / "dev_sent_emo.csv").write_bytes(
        HEADER.encode() + "1,It\u2019s fine,Ross,joy,positive,0,0,1,1,a,b\n".encode("cp1252"))
    (s,) = prepare_meld(tmp_path, split="dev")
    assert s.sources["text"] == "It\u2019s fine"


@pytest.mark.realdata
def test_real_meld_counts(meld_dir):
    s = prepare("meld", meld_dir)
    assert Counter(x.meta["split"] for x in s) == {"train": 9989, "dev": 1109, "test": 2610}
    assert {x.label for x in s} == set(MELD_LABELS)
    assert not any("\u00e2\u20ac" in x.sources["text"] for x in s)
