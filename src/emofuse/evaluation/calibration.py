"""Calibration and abstention: temperature scaling, expected calibration error, a confidence threshold.

* **Temperature scaling** (Guo et al. 2017): calibrated probabilities are ``softmax(z / T)``, with ``z``
  the logits, or equivalently the log-probabilities (``softmax(log p / T)`` equals ``softmax(z / T)``,
  since ``log p`` is ``z`` shifted per row). ``T`` minimises the negative log-likelihood of the labels on
  *validation* data (`fit_temperature`). ``T > 1`` softens an over-confident model; the argmax never
  changes, so accuracy is unchanged.
* **Expected calibration error** (`expected_calibration_error`): top-label ECE with ``n_bins``
  equal-width confidence bins on [0, 1] (bin ``i`` is ``(i/n, (i+1)/n]``, a confidence of exactly 0
  falls in the first): ``ECE = Σ_b |B_b|/N · |accuracy(B_b) − mean confidence(B_b)|``.
* **Abstention** (`choose_threshold`): a clip is *answered* when its top probability is ``>= threshold``,
  otherwise its outcome is "uncertain". The threshold is chosen on validation data by this rule:

  1. the **lowest** threshold (the most clips answered) whose answered clips reach ``target_accuracy``
     while answering at least ``min_coverage`` of the clips; 0.0 (never abstain) when all clips together
     already reach the target;
  2. when no threshold reaches the target at that coverage, the **highest** threshold that still
     answers at least ``min_coverage`` of the clips (abstain as much as allowed, no more).

  Candidate thresholds are the validation clips' own confidences, so the rule is exact, not gridded.

`calibration_block` does all of it for one validation set and returns the dictionary stored as
``calibration`` in a checkpoint's config.json. Only numpy is imported here; matplotlib is imported by
`reliability_plot` when called.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

#: Default abstention rule (documented in docs/calibration.md).
DEFAULT_TARGET_ACCURACY = 0.80
DEFAULT_MIN_COVERAGE = 0.5
DEFAULT_BINS = 15


class SelectiveScores(NamedTuple):
    """Share of clips answered (confidence ``>=`` threshold) and the accuracy on those (nan when none)."""

    coverage: float
    accuracy: float


class ReliabilityBin(NamedTuple):
    """One equal-width confidence bin: its edges, clip count, mean confidence and accuracy (nan if empty)."""

    lower: float
    upper: float
    count: int
    confidence: float
    accuracy: float


def _check(probs: np.ndarray, y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``probs`` as a float64 ``N x C`` array (and ``y`` as ``N`` ints in ``[0, C)``); ValueError otherwise."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"expected an N x C array of class scores (C >= 2), got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("class scores hold NaN or infinite values")
    if y is None:
        return p, None
    labels = np.asarray(y)
    if labels.shape != (len(p),):
        raise ValueError(f"expected {len(p)} labels, got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= p.shape[1]):
        raise ValueError(f"labels hold class indices outside [0, {p.shape[1]})")
    return p, labels


def looks_like_probabilities(scores: np.ndarray, atol: float = 1e-4) -> bool:
    """True when every row is non-negative and sums to 1 (within ``atol``)."""
    s = np.asarray(scores, dtype=np.float64)
    return bool(s.size) and bool((s >= 0).all()) and bool(np.allclose(s.sum(axis=-1), 1.0, atol=atol))


def _softmax(z: np.ndarray, temperature: float) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _log_scores(scores: np.ndarray, kind: str) -> np.ndarray:
    if kind not in ("auto", "probs", "logits"):
        raise ValueError(f"kind must be 'auto', 'probs' or 'logits', got {kind!r}")
    s = np.asarray(scores, dtype=np.float64)
    if kind == "probs" or (kind == "auto" and looks_like_probabilities(s)):
        return np.log(np.clip(s, 1e-12, 1.0))
    return s


def fit_temperature(probs_or_logits: np.ndarray, y: np.ndarray, grid: np.ndarray | None = None,
                    *, kind: str = "auto") -> float:
    """The temperature ``T`` minimising the mean negative log-likelihood of ``y`` under
    ``softmax(z / T)``, ``z`` the logits or the log of the probabilities (``kind='auto'`` treats
    non-negative rows summing to 1 as probabilities). Searched on a log grid from 0.25 to 8 (61 points),
    then refined ±6 % around the best point (25 points)."""
    scores, labels = _check(probs_or_logits, y)
    if not len(labels):
        raise ValueError("fitting a temperature needs at least one labelled clip")
    z = _log_scores(scores, kind)
    rows = np.arange(len(labels))

    def nll(t: float) -> float:
        p = _softmax(z, t)[rows, labels]
        return float(-np.log(np.clip(p, 1e-12, 1.0)).mean())

    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 61)) if grid is None else grid
    best = min(grid, key=nll)
    fine = best * np.exp(np.linspace(-0.06, 0.06, 25))
    return float(min(fine, key=nll))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` over the last axis (one clip or ``N x C``). ``T == 1`` returns ``probs``
    unchanged (a copy as float64), so an uncalibrated checkpoint gives exactly the same numbers."""
    t = float(temperature)
    if not np.isfinite(t) or t <= 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    p = np.array(probs, dtype=np.float64)
    if t == 1.0:
        return p
    return _softmax(np.log(np.clip(p, 1e-12, 1.0)), t)


def reliability_bins(probs: np.ndarray, y: np.ndarray, n_bins: int = DEFAULT_BINS) -> list[ReliabilityBin]:
    """The top-label reliability diagram's bins (equal width on [0, 1]; see the module docstring)."""
    p, labels = _check(probs, y)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == labels).astype(np.float64)
    index = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        mask = index == b
        n = int(mask.sum())
        out.append(ReliabilityBin(b / n_bins, (b + 1) / n_bins, n,
                                  float(conf[mask].mean()) if n else float("nan"),
                                  float(correct[mask].mean()) if n else float("nan")))
    return out


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, n_bins: int = DEFAULT_BINS) -> float:
    """Top-label expected calibration error with ``n_bins`` equal-width confidence bins."""
    bins = reliability_bins(probs, y, n_bins)
    total = sum(b.count for b in bins)
    if not total:
        raise ValueError("the expected calibration error needs at least one clip")
    return float(sum(b.count / total * abs(b.accuracy - b.confidence) for b in bins if b.count))


def selective_scores(probs: np.ndarray, y: np.ndarray, threshold: float) -> SelectiveScores:
    """Coverage (share of clips with top probability ``>= threshold``) and accuracy on those clips."""
    p, labels = _check(probs, y)
    if not len(labels):
        raise ValueError("selective scores need at least one clip")
    answered = p.max(axis=1) >= float(threshold)
    n = int(answered.sum())
    acc = float((p.argmax(axis=1)[answered] == labels[answered]).mean()) if n else float("nan")
    return SelectiveScores(n / len(labels), acc)


def choose_threshold(probs: np.ndarray, y: np.ndarray, target_accuracy: float = DEFAULT_TARGET_ACCURACY,
                     min_coverage: float = DEFAULT_MIN_COVERAGE) -> float:
    """The abstention threshold chosen on validation data by the rule in the module docstring."""
    p, labels = _check(probs, y)
    if not len(labels):
        raise ValueError("choosing a threshold needs at least one labelled clip")
    if not 0.0 <= min_coverage <= 1.0 or not 0.0 <= target_accuracy <= 1.0:
        raise ValueError("target_accuracy and min_coverage must lie in [0, 1]")
    conf = p.max(axis=1)
    correct = p.argmax(axis=1) == labels
    if correct.mean() >= target_accuracy:
        return 0.0
    order = np.argsort(-conf, kind="stable")
    conf, correct = conf[order], correct[order]
    # A threshold equal to a distinct confidence c answers every clip with confidence >= c: the
    # candidates are the last position of each run of equal confidences in the descending order.
    last = np.r_[np.nonzero(np.diff(conf))[0], len(conf) - 1]
    answered = last + 1
    coverage = answered / len(conf)
    accuracy = np.cumsum(correct)[last] / answered
    allowed = coverage >= min_coverage - 1e-12
    if not allowed.any():  # cannot happen for min_coverage <= 1, kept for clarity
        return 0.0
    good = allowed & (accuracy >= target_accuracy)
    pick = np.nonzero(good)[0][-1] if good.any() else np.nonzero(allowed)[0][0]
    return float(conf[last[pick]])


def calibration_block(val_probs: np.ndarray, val_y: np.ndarray, fitted_on: str,
                      target_accuracy: float = DEFAULT_TARGET_ACCURACY,
                      min_coverage: float = DEFAULT_MIN_COVERAGE, n_bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """Fit a temperature on uncalibrated validation probabilities, choose the threshold on the calibrated
    ones, and return the checkpoint's ``calibration`` dictionary (temperature, threshold, the rule, ECE
    before/after, the validation coverage/accuracy at the threshold, the clip count, ``fitted_on``)."""
    p, labels = _check(val_probs, val_y)
    t = fit_temperature(p, labels, kind="probs")
    calibrated = apply_temperature(p, t)
    thr = choose_threshold(calibrated, labels, target_accuracy, min_coverage)
    sel = selective_scores(calibrated, labels, thr)
    return {
        "temperature": round(t, 6), "threshold": round(thr, 6), "fitted_on": str(fitted_on),
        "target_accuracy": float(target_accuracy), "min_coverage": float(min_coverage),
        "ece_before": round(expected_calibration_error(p, labels, n_bins), 6),
        "ece_after": round(expected_calibration_error(calibrated, labels, n_bins), 6),
        "coverage": round(sel.coverage, 6), "accuracy_answered": round(sel.accuracy, 6),
        "n_validation": int(len(labels)), "n_bins": int(n_bins),
    }


def reliability_plot(series: Mapping[str, np.ndarray] | np.ndarray, y: np.ndarray, path: str | Path,
                     n_bins: int = DEFAULT_BINS, title: str = "") -> Path:
    """A reliability diagram (accuracy against mean confidence per bin, with the diagonal) as a PNG at
    ``path``; ``series`` is one ``N x C`` array or ``{name: probs}`` (e.g. before/after calibration),
    each drawn with its ECE in the legend. Written atomically; returns the path."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from emofuse.atomic import atomic_write_bytes

    curves = {"model": series} if not isinstance(series, Mapping) else dict(series)
    fig = Figure(figsize=(4.5, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    for name, probs in curves.items():
        bins = [b for b in reliability_bins(probs, y, n_bins) if b.count]
        ece = expected_calibration_error(probs, y, n_bins)
        ax.plot([b.confidence for b in bins], [b.accuracy for b in bins], marker="o",
                label=f"{name} (ECE {ece:.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top probability)", ylabel="accuracy", title=title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return atomic_write_bytes(path, buf.getvalue())
