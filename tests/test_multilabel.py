"""Multi-label metrics, dev-chosen per-class thresholds, and the GoEmotions results row."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from emofuse.evaluation.multilabel import binarize, group_columns, multilabel_metrics, predict, select_thresholds


def test_binarize_and_unknown_labels():
    y = binarize([("a", "c"), (), ("b",)], ["a", "b", "c"])
    assert y.tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 0]] and y.dtype == np.int8
    with pytest.raises(ValueError, match="row 0: label 'z'"):
        binarize([("z",)], ["a"])


def test_thresholds_maximise_each_class_f1_on_dev():
    # class 0 is separable at 0.3 (positives at 0.35/0.4, negatives at 0.1/0.2);
    # class 1 positives score high (0.8/0.9), a negative scores 0.6; class 2 never occurs
    probs = np.array([[0.35, 0.9, 0.1], [0.4, 0.8, 0.2], [0.1, 0.6, 0.3], [0.2, 0.1, 0.4]])
    y = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]])
    thr = select_thresholds(probs, y, grid=np.round(np.arange(0.05, 1.0, 0.05), 2))
    assert 0.2 < thr[0] <= 0.35 and 0.6 < thr[1] <= 0.8 and thr[2] == 0.5
    assert (predict(probs, thr) == y).all()
    # ties are broken towards 0.5: any threshold in (0.2, 0.35] is perfect for class 0; 0.35 is nearest
    assert thr[0] == pytest.approx(0.35)


def test_metrics_match_scikit_learn_and_define_wa_ua():
    rng = np.random.default_rng(0)
    y = (rng.random((200, 5)) < 0.3).astype(np.int8)
    probs = np.clip(y * 0.4 + rng.random((200, 5)) * 0.6, 0, 1)
    thr = np.array([0.5, 0.4, 0.6, 0.5, 0.5])
    m = multilabel_metrics(probs, y, thr, list("abcde"))
    pred = (probs >= thr).astype(int)
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["micro_f1"] == pytest.approx(f1_score(y, pred, average="micro"))
    assert m["wa"] == pytest.approx(np.mean((pred == y).all(axis=1)))  # exact-match accuracy
    recalls = [(pred[:, c] & y[:, c]).sum() / y[:, c].sum() for c in range(5)]
    assert m["ua"] == pytest.approx(np.mean(recalls))
    assert m["per_class"]["b"]["threshold"] == 0.4 and m["per_class"]["a"]["support"] == int(y[:, 0].sum())
    with pytest.raises(ValueError, match="must both be"):
        multilabel_metrics(probs[:, :4], y, 0.5, list("abcd"))
    with pytest.raises(ValueError, match="binary"):
        multilabel_metrics(probs, y * 2, 0.5, list("abcde"))


def test_group_columns_takes_the_maximum_and_the_union():
    probs = np.array([[0.1, 0.7, 0.2], [0.5, 0.1, 0.3]])
    y = np.array([[0, 1, 0], [1, 0, 1]])
    p, g = group_columns(probs, y, ["x1", "x2", "z"], {"x": ["x1", "x2"], "z": ["z"]})
    assert p.tolist() == [[0.7, 0.2], [0.5, 0.3]] and g.tolist() == [[1, 0], [1, 1]]
    with pytest.raises(ValueError, match="not among"):
        group_columns(probs, y, ["x1", "x2", "z"], {"x": ["nope"]})


def test_goemotions_row_has_the_shared_fields():
    from emofuse.data.goemotions import EKMAN_LABELS, GOEMOTIONS_LABELS, TO_EKMAN
    from emofuse.experiments.goemotions import multilabel_row

    rng = np.random.default_rng(1)
    labels, probs = {}, {}
    for split, n in (("dev", 300), ("test", 300)):
        y = np.zeros((n, 28), dtype=np.int8)
        y[np.arange(n), rng.integers(0, 28, n)] = 1
        labels[split], probs[split] = y, np.clip(y * 0.5 + rng.random((n, 28)) * 0.5, 0, 1)
    row = multilabel_row("toy", probs, labels, train_seconds=1.5)
    for key in ("wa", "ua", "macro_f1", "weighted_f1"):
        assert 0 <= row[f"{key}_mean"] <= 1 and row[f"{key}_std"] == 0.0
    assert row["modalities"] == ["text"] and row["train_seconds"] == 1.5 and row["macro_f1_mean"] > 0.9
    assert row["macro_f1_ekman"] == row["macro_f1_ekman_from28"] and 0 < row["micro_f1"] <= 1
    assert list(row["per_class"]) == GOEMOTIONS_LABELS and list(row["per_class_ekman"]) == EKMAN_LABELS
    assert set(TO_EKMAN) == set(GOEMOTIONS_LABELS)
