"""Generic manifest loader and the `prepare` dispatcher."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.data import DATASETS, default_labels, labels_in, prepare
from emofuse.data.manifest import prepare_manifest
from emofuse.errors import ConfigError, DataError


def _manifest(tmp_path, rows, header="id,speaker,label,audio,text,face_npy,label_audio,label_face,session"):
    (tmp_path / "a.wav").write_bytes(b"\0")
    np.save(tmp_path / "f.npy", np.ones((4, 3), dtype=np.float64))
    path = tmp_path / "m.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_manifest_rows(tmp_path):
    path = _manifest(tmp_path, ["u1,s1,sad,a.wav,hello,f.npy,sad,neutral,3", "u2,s2,,,just text,,,,4"])
    s = prepare("manifest", path, labels=["sad", "neutral"])
    assert s[0].sources["audio"] == tmp_path / "a.wav" and s[0].sources["face"].dtype == np.float32
    assert s[0].extra_labels == {"label_audio": "sad", "label_face": "neutral"} and s[0].meta["session"] == "3"
    assert s[1].label is None and s[1].sources == {"text": "just text"} and s[1].dataset == "manifest"
    assert labels_in(s) == ["sad"] and labels_in(s, "label_face") == ["neutral"]


def test_manifest_errors(tmp_path):
    with pytest.raises(DataError, match=r"row 2.*'happy'"):
        prepare_manifest(_manifest(tmp_path, ["u1,s1,happy,a.wav,,,,,"]), labels=["sad"])
    with pytest.raises(DataError, match=r"row 2.*label_face.*'angry'"):
        prepare_manifest(_manifest(tmp_path, ["u1,s1,sad,a.wav,,,,angry,"]), labels=["sad"])
    with pytest.raises(DataError, match=r"m\.csv.*row 3.*missing\.wav"):
        prepare_manifest(_manifest(tmp_path, ["u1,s1,sad,a.wav,,,,,", "u2,s1,sad,missing.wav,,,,,"]))
    with pytest.raises(DataError, match="speaker"):
        prepare_manifest(_manifest(tmp_path, ["u1,sad,a.wav"], header="id,label,audio"))
    with pytest.raises(DataError, match="at least one of"):
        prepare_manifest(_manifest(tmp_path, ["u1,s1,sad"], header="id,speaker,label"))
    with pytest.raises(DataError, match="duplicate id"):
        prepare_manifest(_manifest(tmp_path, ["u1,s1,sad,a.wav,,,,,", "u1,s2,sad,a.wav,,,,,"]))
    np.save(tmp_path / "nan.npy", np.array([1.0, np.nan]))
    with pytest.raises(DataError, match="NaN"):
        prepare_manifest(_manifest(tmp_path, ["u1,s1,sad,,,nan.npy,,,"]))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="obj.npy"):
        prepare_manifest(_manifest(tmp_path, ["u1,s1,sad,,,obj.npy,,,"]))


def test_dispatch():
    assert DATASETS == ("cremad", "deap_arousal", "deap_valence", "goemotions", "goemotions_ekman", "iemocap",
                        "iemocap_speaker", "meld", "mosei", "ravdess", "manifest")  # registry names (sorted), then the CSV loader
    assert len(default_labels("ravdess")) == 8 and default_labels("iemocap") == ["neutral", "happy", "angry", "sad"]
    assert len(default_labels("meld")) == 7 and len(default_labels("cremad")) == 6
    with pytest.raises(ConfigError, match="unknown dataset"):
        prepare("affectnet", ".")
    with pytest.raises(ConfigError, match="au_csv"):
        prepare("meld", ".", au_csv="x")
    with pytest.raises(ConfigError):
        default_labels("manifest")


def test_write_manifest_round_trip(tmp_path):
    from emofuse.data.manifest import write_manifest
    from emofuse.data.record import Sample

    (tmp_path / "a.wav").write_bytes(b"\0")
    s = [Sample("x/1", "s1", "meld", "joy", {"audio": tmp_path / "a.wav", "text": "hi, there",
                                            "face": np.arange(3, dtype=np.float32)},
                {"sentiment": "positive"}, {"split": "dev", "season": 3})]
    out = write_manifest(s, tmp_path / "out" / "m.csv")
    (back,) = prepare_manifest(out)
    assert (back.id, back.speaker, back.label, back.dataset) == ("x/1", "s1", "joy", "meld")
    assert back.sources["audio"].resolve() == (tmp_path / "a.wav").resolve() and back.sources["text"] == "hi, there"
    assert np.array_equal(back.sources["face"], np.arange(3)) and back.extra_labels == {"label_sentiment": "positive"}
    assert back.meta["season"] == "3"
