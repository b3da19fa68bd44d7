"""Temperature scaling, ECE, the abstention threshold rule and the reliability diagram."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.evaluation.calibration import (SelectiveScores, apply_temperature, calibration_block,
                                            choose_threshold, expected_calibration_error, fit_temperature,
                                            reliability_bins, reliability_plot, selective_scores)
from emofuse.inference import late_fusion
from emofuse.inference.late_fusion import softmax


def _sampled(n: int = 4000, classes: int = 6, temperature: float = 1.0, seed: int = 0):
    """Labels drawn from softmax(true logits); the model reports softmax(true logits * temperature)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, size=(n, classes))
    true = softmax(logits)
    y = np.array([rng.choice(classes, p=p) for p in true])
    return softmax(logits * temperature), y


def test_ece_of_a_hand_computed_example():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([0, 1, 0, 1])
    # bins of width 0.5: (0.5, 1] holds all four; by 15 bins: 0.9 x2 (acc .5), 0.6 (acc 1), 0.7 (acc 1)
    assert expected_calibration_error(probs, y, n_bins=1) == pytest.approx(abs(0.75 - 0.775))
    expected = 2 / 4 * abs(0.5 - 0.9) + 1 / 4 * abs(1 - 0.6) + 1 / 4 * abs(1 - 0.7)
    assert expected_calibration_error(probs, y, n_bins=15) == pytest.approx(expected)


def test_bins_are_equal_width_and_right_closed():
    probs = np.array([[0.5, 0.5], [0.6, 0.4], [1.0, 0.0]])
    bins = reliability_bins(probs, np.array([0, 0, 0]), n_bins=2)
    assert [(b.lower, b.upper, b.count) for b in bins] == [(0.0, 0.5, 1), (0.5, 1.0, 2)]


def test_a_calibrated_model_has_small_ece_and_an_overconfident_one_large():
    probs, y = _sampled()
    assert expected_calibration_error(probs, y) < 0.03
    sharp, _ = _sampled(temperature=3.0)
    assert expected_calibration_error(sharp, y) > 0.1


@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
def test_fit_temperature_recovers_the_scale_from_probabilities_or_logits(scale):
    probs, y = _sampled(temperature=scale)
    t_probs = fit_temperature(probs, y)
    assert t_probs == pytest.approx(scale, rel=0.08)
    assert fit_temperature(np.log(probs) + 5.0, y) == pytest.approx(t_probs, rel=1e-9)  # logits: shift-free


def test_temperature_scaling_lowers_ece_and_keeps_the_argmax():
    sharp, y = _sampled(temperature=3.0, seed=1)
    t = fit_temperature(sharp, y)
    calibrated = apply_temperature(sharp, t)
    assert np.array_equal(calibrated.argmax(1), sharp.argmax(1))
    np.testing.assert_allclose(calibrated.sum(1), 1.0)
    assert expected_calibration_error(calibrated, y) < expected_calibration_error(sharp, y) / 3


def test_temperature_one_is_exactly_the_identity():
    p = np.array([[0.123456789, 0.876543211], [0.3, 0.7]])
    assert np.array_equal(apply_temperature(p, 1.0), p)
    with pytest.raises(ValueError, match="positive"):
        apply_temperature(p, 0.0)


def test_late_fusion_name_still_fits_logits_identically():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(300, 7)) * 2.5
    y = rng.integers(0, 7, size=300)
    assert late_fusion.fit_temperature(logits, y) == fit_temperature(logits, y, kind="logits")


def test_selective_scores():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.55, 0.45], [0.4, 0.6]])
    y = np.array([0, 1, 0, 1])
    assert selective_scores(probs, y, 0.0) == SelectiveScores(1.0, 0.75)
    cov, acc = selective_scores(probs, y, 0.8)
    assert (cov, acc) == (0.5, 0.5)
    assert np.isnan(selective_scores(probs, y, 0.95).accuracy)


def test_choose_threshold_is_the_lowest_that_reaches_the_target():
    # confidences 0.95 .. 0.55; correct, correct, wrong, correct, correct, wrong, wrong, wrong
    conf = np.array([0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.55])
    correct = np.array([1, 1, 0, 1, 1, 0, 0, 0], bool)
    probs = np.stack([conf, 1 - conf], 1)
    y = np.where(correct, 0, 1)
    # accuracy answering the top k: 1, 1, .67, .75, .8, .67, .57, .5 -> lowest threshold with >= 0.8 is 0.75
    assert choose_threshold(probs, y, target_accuracy=0.8, min_coverage=0.5) == 0.75
    assert selective_scores(probs, y, 0.75) == SelectiveScores(5 / 8, 0.8)
    # the target needs coverage 5/8; with min_coverage 0.7 it is unreachable: abstain as much as allowed
    assert choose_threshold(probs, y, target_accuracy=0.8, min_coverage=0.7) == 0.7
    assert choose_threshold(probs, y, target_accuracy=0.5, min_coverage=0.5) == 0.0  # all answered reach it


def test_choose_threshold_treats_tied_confidences_together():
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.7, 0.3], [0.6, 0.4]])
    y = np.array([0, 0, 1, 1])
    thr = choose_threshold(probs, y, target_accuracy=0.66, min_coverage=0.5)
    assert thr == 0.7 and selective_scores(probs, y, thr).coverage == 0.75


def test_calibration_block_on_an_overconfident_model():
    sharp, y = _sampled(temperature=2.5, seed=4)
    block = calibration_block(sharp, y, fitted_on="validation speakers of each fold")
    assert block["temperature"] == pytest.approx(2.5, rel=0.1)
    assert block["ece_after"] < block["ece_before"]
    assert block["coverage"] >= 0.5 and 0 < block["threshold"] < 1
    assert block["fitted_on"] == "validation speakers of each fold" and block["n_validation"] == len(y)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="N x C"):
        expected_calibration_error(np.array([0.5, 0.5]), np.array([0]))
    with pytest.raises(ValueError, match="outside"):
        fit_temperature(np.array([[0.5, 0.5]]), np.array([2]))
    with pytest.raises(ValueError, match="labels"):
        choose_threshold(np.array([[0.5, 0.5]]), np.array([0, 1]))


def test_reliability_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    sharp, y = _sampled(n=500, temperature=2.0)
    out = reliability_plot({"before": sharp, "after": apply_temperature(sharp, 2.0)}, y, tmp_path / "r.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
