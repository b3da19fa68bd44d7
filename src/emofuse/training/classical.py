"""Classical baseline: standardise + logistic regression on per-clip (pooled) feature vectors.

The regularisation strength C is chosen on the validation speakers; the model is then refitted
on training + validation speakers with that C (the validation speakers are part of the training
side, never the test fold). `export_logreg` turns the fitted pipeline into an ordinary checkpoint
model (`emofuse.models.linear.LogisticRegression`) with the same probabilities.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

DEFAULT_C_GRID = (0.01, 0.1, 1.0)


@dataclass
class LogRegResult:
    """Test-set predictions, the chosen regularisation strength and the refitted pipeline
    (`StandardScaler` + `LogisticRegression`)."""

    probabilities: np.ndarray
    chosen_c: float
    model: Any = None


def _fit(x: np.ndarray, y: np.ndarray, c: float, seed: int):
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000, random_state=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return model


def fit_predict_logreg(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                       x_test: np.ndarray | Sequence[np.ndarray], num_classes: int,
                       c_grid: tuple[float, ...] = DEFAULT_C_GRID, seed: int = 0,
                       x_refit: np.ndarray | None = None, y_refit: np.ndarray | None = None) -> LogRegResult:
    """Pick C by validation UA, refit on train+val, return class probabilities for the test set
    (columns for every class index 0..num_classes-1, zeros for classes absent from training).

    ``x_test`` may be a list of matrices of the same test samples (the original features and
    test-time augmented views): their probabilities are averaged. ``x_refit``/``y_refit`` replace
    the validation rows added for the refit (e.g. validation samples with augmented copies)."""
    best_c, best_score = c_grid[0], -1.0
    if len(y_val):
        for c in c_grid:
            score = balanced_accuracy_score(y_val, _fit(x_train, y_train, c, seed).predict(x_val))
            if score > best_score:
                best_c, best_score = c, score
    if x_refit is None or y_refit is None:
        x_refit, y_refit = x_val, y_val
    model = _fit(np.concatenate([x_train, x_refit]), np.concatenate([y_train, y_refit]), best_c, seed)
    from emofuse.inputs.plan import average_over_views

    views = [x_test] if isinstance(x_test, np.ndarray) else list(x_test)
    proba = np.zeros((len(views[0]), num_classes), dtype=np.float64)
    proba[:, model.classes_] = average_over_views(model.predict_proba, views)  # test-time views
    return LogRegResult(probabilities=proba, chosen_c=best_c, model=model)


#: Logit of a class the pipeline never saw in training: its probability is 0 in float32, as in
#: `fit_predict_logreg` (a finite number, so checkpoints stay free of inf).
ABSENT_CLASS_LOGIT = -1e4


def export_logreg(pipeline: Any, num_classes: int, input_dims: dict[str, int]):
    """``(model, stats)``: a fitted ``StandardScaler`` + ``LogisticRegression`` pipeline over the
    concatenated per-modality vectors (in ``input_dims`` order) as a registered
    ``logistic_regression`` model plus per-modality standardisation statistics
    (`emofuse.inputs.normalize.Stats`), giving the same class probabilities as ``predict_proba`` (classes
    absent from training get probability 0). A modality absent at predict time is standardised to
    zeros, i.e. replaced by its training mean."""
    import torch

    from emofuse.models import create_model

    scaler, logreg = pipeline[0], pipeline[-1]
    classes = np.asarray(logreg.classes_, dtype=int)
    coef, intercept = np.asarray(logreg.coef_, dtype=np.float64), np.asarray(logreg.intercept_, dtype=np.float64)
    total = sum(input_dims.values())
    if coef.shape[1] != total or len(scaler.mean_) != total:
        raise ValueError(f"the pipeline reads {coef.shape[1]} features, input_dims add up to {total}")
    weight = np.zeros((num_classes, total))
    bias = np.full(num_classes, ABSENT_CLASS_LOGIT)
    if len(classes) == 2:  # binary: P(classes[1]) = sigmoid(z) = softmax([0, z])[1]
        weight[classes[1]], bias[classes[1]], bias[classes[0]] = coef[0], intercept[0], 0.0
    else:
        weight[classes], bias[classes] = coef, intercept
    model = create_model("logistic_regression", num_classes=num_classes, input_dims=input_dims)
    with torch.no_grad():
        model.linear.weight.copy_(torch.from_numpy(weight))
        model.linear.bias.copy_(torch.from_numpy(bias))
    bounds = np.cumsum([0, *input_dims.values()])
    stats = {m: (scaler.mean_[a:b].astype(np.float32), scaler.scale_[a:b].astype(np.float32))
             for m, a, b in zip(input_dims, bounds[:-1], bounds[1:])}
    return model, stats
