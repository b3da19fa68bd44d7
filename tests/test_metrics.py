"""Metrics against hand-computed values; aggregation over folds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emofuse.evaluation.metrics import aggregate, classification_metrics, unweighted_accuracy

# 4 true "a" all correct, 2 true "b" of which one is predicted "a": WA 5/6, UA (1 + 1/2) / 2.
Y_TRUE = [0, 0, 0, 0, 1, 1]
Y_PRED = [0, 0, 0, 0, 0, 1]


def test_wa_ua_differ_on_imbalanced_example():
    m = classification_metrics(Y_TRUE, Y_PRED, ["a", "b"])
    assert m["wa"] == pytest.approx(5 / 6)
    assert m["ua"] == pytest.approx(0.75)
    assert m["n"] == 6


def test_precision_recall_f1_by_hand():
    m = classification_metrics(Y_TRUE, Y_PRED, ["a", "b"])
    f1_a, f1_b = 2 * 0.8 * 1.0 / 1.8, 2 * 1.0 * 0.5 / 1.5
    assert m["per_class"]["a"] == pytest.approx({"precision": 0.8, "recall": 1.0, "f1": f1_a, "support": 4})
    assert m["per_class"]["b"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": f1_b, "support": 2})
    assert m["macro_precision"] == pytest.approx(0.9)
    assert m["macro_recall"] == pytest.approx(0.75)
    assert m["macro_f1"] == pytest.approx((f1_a + f1_b) / 2)
    assert m["weighted_f1"] == pytest.approx((4 * f1_a + 2 * f1_b) / 6)
    assert m["confusion"] == [[4, 0], [1, 1]]


def test_absent_class_listed_but_not_averaged_into_ua():
    m = classification_metrics(Y_TRUE, Y_PRED, ["a", "b", "c"])
    assert m["ua"] == pytest.approx(0.75)  # "c" never occurs in y_true
    assert m["per_class"]["c"]["support"] == 0
    assert m["confusion"] == [[4, 0, 0], [1, 1, 0], [0, 0, 0]]
    assert m["macro_f1"] == pytest.approx(classification_metrics(Y_TRUE, Y_PRED, ["a", "b"])["macro_f1"])


def test_ua_equals_balanced_accuracy_from_sklearn():
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(3)
    t, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    assert unweighted_accuracy(t, p) == pytest.approx(balanced_accuracy_score(t, p))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="outside"):
        classification_metrics([0, 2], [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="entries"):
        classification_metrics([0, 1], [0], ["a", "b"])
    with pytest.raises(ValueError, match="zero samples"):
        classification_metrics([], [], ["a", "b"])


def test_aggregate_mean_and_sample_std():
    folds = [{"wa": 0.5, "ua": 0.4, "n": 10, "confusion": [[1]]}, {"wa": 0.7, "ua": 0.6, "n": 12, "confusion": [[2]]}]
    agg = aggregate(folds)
    assert agg["wa_mean"] == pytest.approx(0.6)
    assert agg["wa_std"] == pytest.approx(math.sqrt(0.02))  # ddof=1: sqrt((0.1^2 + 0.1^2) / 1)
    assert agg["ua_mean"] == pytest.approx(0.5)
    assert agg["n"] == 2
    assert "confusion_mean" not in agg and "n_mean" not in agg


def test_aggregate_single_value_has_zero_std_and_empty_raises():
    agg = aggregate([classification_metrics(Y_TRUE, Y_PRED, ["a", "b"])])
    assert agg["ua_mean"] == pytest.approx(0.75) and agg["ua_std"] == 0.0 and agg["n"] == 1
    with pytest.raises(ValueError):
        aggregate([])
