"""Shipped folds and the leakage checks."""

from __future__ import annotations

import json
import logging
from importlib import resources

import pytest

from emofuse.data.record import Sample
from emofuse.errors import ConfigError, SpeakerOverlapError
from emofuse.data.splits import (SPLIT_DATASETS, Fold, _compact_json, _generate, check_disjoint, check_folds_file,
                            group_of, load_folds, partition)


def _samples(speakers, per=2):
    return [Sample(id=f"{sp}_{i}", speaker=sp, dataset="t", label="a", meta={"split": sp}) for sp in speakers
            for i in range(per)]


@pytest.mark.parametrize("dataset", SPLIT_DATASETS)
def test_shipped_files_are_valid_and_match_generator(dataset):
    folds = load_folds(dataset)
    check_folds_file(folds)
    shipped = (resources.files("emofuse.data.splits") / f"{dataset}.json").read_text()
    assert shipped == _compact_json(_generate()[dataset]) + "\n"


def test_ravdess_protocol_exactly():
    folds = load_folds("ravdess")
    assert len(folds) == 6
    actors = [f"{a:02d}" for a in range(1, 25)]
    for k, f in enumerate(folds):
        assert f.test == tuple(actors[4 * k:4 * k + 4])
        nxt = (k + 1) % 6
        assert f.val == (actors[4 * nxt], actors[4 * nxt + 1])
        assert int(f.val[0]) % 2 == 1 and int(f.val[1]) % 2 == 0
        assert sorted(f.train) == sorted(set(actors) - set(f.test) - set(f.val)) and len(f.train) == 18


def test_other_protocols():
    cre = load_folds("cremad")
    assert len(cre) == 5 and sorted(g for f in cre for g in f.test) == [str(a) for a in range(1001, 1092)]
    iem = load_folds("iemocap")
    assert iem[0].test == ("Ses01F", "Ses01M") and iem[0].val == ("Ses02F", "Ses02M") and iem[4].val[0] == "Ses01F"


def test_meld_warns_not_speaker_disjoint(caplog):
    with caplog.at_level(logging.WARNING, logger="emofuse.data.splits"):
        (fold,) = load_folds("meld")
    assert fold.group_by == "meta.split" and "NOT speaker-disjoint" in caplog.text
    samples = _samples(["train", "dev", "test"])
    assert partition(samples, fold) == ([0, 1], [2, 3], [4, 5])


def test_partition_drops_unlisted_with_log(caplog):
    fold = Fold("f", train=("a", "b"), val=("c",), test=("d",))
    samples = _samples(["a", "b", "c", "d", "z"], per=1)
    with caplog.at_level(logging.WARNING, logger="emofuse.data.splits"):
        tr, va, te = partition(samples, fold)
    assert (tr, va, te) == ([0, 1], [2], [3]) and "1 sample(s)" in caplog.text and "z" in caplog.text


def test_overlap_is_refused():
    samples = _samples(["a", "b", "c"])
    with pytest.raises(SpeakerOverlapError, match="train/test share speaker b"):
        check_disjoint(samples, [0, 1, 2], [4], [3])
    with pytest.raises(SpeakerOverlapError, match="share 1 sample"):
        check_disjoint(samples, [0], [0], [4])
    check_disjoint(samples, [0, 1], [2, 3], [4, 5])
    with pytest.raises(SpeakerOverlapError, match="fold x"):
        partition(samples, Fold("x", train=("a", "b"), val=(), test=("b",)))


def test_check_folds_file_coverage():
    good = [Fold("1", ("b",), (), ("a",)), Fold("2", ("a",), (), ("b",))]
    check_folds_file(good)
    with pytest.raises(ConfigError, match="both fold"):
        check_folds_file([Fold("1", ("b",), (), ("a",)), Fold("2", ("b",), (), ("a",))])
    with pytest.raises(ConfigError, match="other groups"):
        check_folds_file([Fold("1", ("b",), (), ("a",)), Fold("2", ("a", "c"), (), ("b",))])


def test_group_of_and_errors(tmp_path):
    s = _samples(["a"], per=1)[0]
    assert group_of(s, "speaker") == "a" and group_of(s, "meta.split") == "a"
    with pytest.raises(ConfigError):
        group_of(s, "gender")
    with pytest.raises(Exception, match="meta\\['nope'\\]"):
        group_of(s, "meta.nope")
    with pytest.raises(ConfigError, match="no folds"):
        load_folds("affectnet")
    custom = tmp_path / "mine.json"
    custom.write_text(json.dumps({"folds": [{"name": "x", "train": ["a"], "val": [], "test": ["b"]}]}))
    assert load_folds(custom)[0].test == ("b",)


@pytest.mark.realdata
def test_real_ravdess_folds_partition(shared_data):
    from emofuse.data import prepare

    samples = prepare("ravdess", shared_data / "ravdess-speech-16k")
    for fold in load_folds("ravdess"):
        tr, va, te = partition(samples, fold)
        assert (len(tr), len(va), len(te)) == (18 * 60, 2 * 60, 4 * 60)
