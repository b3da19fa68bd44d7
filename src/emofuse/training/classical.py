"""Classical baseline: standardise + logistic regression on per-clip (pooled) feature vectors.

The regularisation strength C is chosen on the validation speakers; the model is then refitted
on training + validation speakers with that C (the validation speakers are part of the training
side, never the test fold). `export_logreg` turns the fitted pipeline into an ordinary checkpoint
model (`emofuse.models.linear.LogisticRegression`) with the same probabilities.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from emofuse.errors import ConfigError, DataError

if TYPE_CHECKING:
    from emofuse.data.record import Sample
    from emofuse.features.store import FeatureStore
    from emofuse.inputs.plan import InputPlan
    from emofuse.recipes import Recipe

log = logging.getLogger("emofuse.training.classical")

DEFAULT_C_GRID = (0.01, 0.1, 1.0)


@dataclass
class LogRegResult:
    """Test-set predictions, the chosen regularisation strength and the refitted pipeline
    (`StandardScaler` + `LogisticRegression`)."""

    probabilities: np.ndarray
    chosen_c: float
    model: Any = None
    #: validation probabilities of the chosen C's model trained without the validation samples
    #: (for calibration; None without validation samples), and that model
    val_probabilities: np.ndarray | None = None
    val_model: Any = None
    #: out-of-fold probabilities over the training + validation speakers and their classes
    #: (`out_of_fold_probabilities`): what the refitted model is calibrated on
    calibration_probabilities: np.ndarray | None = None
    calibration_y: np.ndarray | None = None


def _fit(x: np.ndarray, y: np.ndarray, c: float, seed: int, balanced: bool = False):
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000, random_state=seed,
                                                               class_weight="balanced" if balanced else None))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return model


def fit_predict_logreg(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                       x_test: np.ndarray | Sequence[np.ndarray], num_classes: int,
                       c_grid: tuple[float, ...] = DEFAULT_C_GRID, seed: int = 0,
                       x_refit: np.ndarray | None = None, y_refit: np.ndarray | None = None,
                       balanced: bool = False) -> LogRegResult:
    """Pick C by validation UA, refit on train+val, return class probabilities for the test set
    (columns for every class index 0..num_classes-1, zeros for classes absent from training).

    ``x_test`` may be a list of matrices of the same test samples (the original features and
    test-time augmented views): their probabilities are averaged. ``x_refit``/``y_refit`` replace
    the validation rows added for the refit (e.g. validation samples with augmented copies).
    ``balanced`` weights each class by the inverse of its frequency (class-balanced training)."""
    best_c, best_score, val_proba, val_model = c_grid[0], -1.0, None, None
    if len(y_val):
        for c in c_grid:
            first = _fit(x_train, y_train, c, seed, balanced)
            score = balanced_accuracy_score(y_val, first.predict(x_val))
            if score > best_score:
                best_c, best_score, val_model = c, score, first
                val_proba = np.zeros((len(x_val), num_classes), dtype=np.float64)
                val_proba[:, first.classes_] = first.predict_proba(x_val)
    if x_refit is None or y_refit is None:
        x_refit, y_refit = x_val, y_val
    model = _fit(np.concatenate([x_train, x_refit]), np.concatenate([y_train, y_refit]), best_c, seed, balanced)
    from emofuse.inputs.plan import average_over_views

    views = [x_test] if isinstance(x_test, np.ndarray) else list(x_test)
    proba = np.zeros((len(views[0]), num_classes), dtype=np.float64)
    proba[:, model.classes_] = average_over_views(model.predict_proba, views)  # test-time views
    return LogRegResult(probabilities=proba, chosen_c=best_c, model=model, val_probabilities=val_proba,
                        val_model=val_model)


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


@dataclass
class ClassicalData:
    """A classical recipe's per-clip matrices over the samples that have every modality."""

    samples: list[Sample]
    x: np.ndarray
    y: np.ndarray
    #: modality -> width of its block of columns in ``x`` (in column order)
    dims: dict[str, int]
    train_views: list[np.ndarray]
    test_views: list[np.ndarray]
    #: how the matrices were built (saved in a trained checkpoint)
    plan: InputPlan | None = None
    #: class-balanced training (the recipe's ``train.sampler: balanced``)
    balanced: bool = False


def feature_matrix(arrays: dict[str, list[np.ndarray | None]], rows: Sequence[int]) -> np.ndarray:
    """One row per sample index in ``rows``: its pooled vectors of every modality, concatenated in
    ``arrays`` order (the input plan's ``arrays`` of a classical recipe)."""
    return np.stack([np.concatenate([arrays[m][i][0] for m in arrays]) for i in rows])


def classical_data(recipe: Recipe, samples: list[Sample], store: FeatureStore, labels: list[str]) -> ClassicalData:
    """The recipe's input plan (pooled vectors) concatenated per clip, for the original and each
    augmented view; samples lacking a modality are left out (with a warning)."""
    from emofuse.inputs.plan import InputPlan

    plan = InputPlan.from_recipe(recipe)
    feats = plan.arrays(store)
    train_views, test_views = plan.view_arrays(store)
    index = {lab: i for i, lab in enumerate(labels)}
    keep = [i for i in range(len(samples)) if all(v[m][i] is not None for v in (feats, *train_views.values(),
                                                                                   *test_views.values()) for m in v)]
    if len(keep) < len(samples):
        log.warning("%s: %d of %d samples lack a modality and are left out of the classical baseline",
                    recipe.name, len(samples) - len(keep), len(samples))
    if not keep:
        raise DataError(None, f"{recipe.name}: no sample has every modality of {list(feats)}")

    kept = [samples[i] for i in keep]
    return ClassicalData(kept, feature_matrix(feats, keep), np.array([index[s.label] for s in kept]),
                         {m: int(feats[m][keep[0]].shape[-1]) for m in feats},
                         [feature_matrix(v, keep) for v in train_views.values()],
                         [feature_matrix(v, keep) for v in test_views.values()], plan,
                         balanced=recipe.train.get("sampler") == "balanced")


def fit_classical_fold(data: ClassicalData, fold, num_classes: int, seed: int = 0, calibrate: bool = True):
    """``(result, test indices)``: the logistic regression with C chosen on the fold's validation
    samples, refitted on training + validation (each with its speed-perturbed copies), and its
    probabilities for the test samples averaged over the test-time views. A fold without test
    groups (``emofuse train --fold 0``) is scored on its validation samples (not held out).
    ``calibrate`` also computes the out-of-fold probabilities it is calibrated on (five more fits)."""
    from emofuse.data.splits import partition

    tr, va, te = partition(data.samples, fold)
    if not fold.test:
        te = va
    for part, idx in (("train", tr), ("validation", va), ("test", te)):
        if not idx:
            raise ConfigError(f"fold {fold.name}: the {part} partition has no samples")
    x, y, views = data.x, data.y, data.train_views
    x_tr = np.concatenate([x[tr], *(v[tr] for v in views)])
    y_tr = np.concatenate([y[tr]] * (1 + len(views)))
    x_va = np.concatenate([x[va], *(v[va] for v in views)])
    y_va = np.concatenate([y[va]] * (1 + len(views)))
    res = fit_predict_logreg(x_tr, y_tr, x[va], y[va], [x[te], *(v[te] for v in data.test_views)], num_classes,
                             seed=seed, x_refit=x_va, y_refit=y_va, balanced=data.balanced)
    if calibrate:
        res.calibration_probabilities, res.calibration_y = out_of_fold_probabilities(data, tr + va, res.chosen_c,
                                                                                     num_classes, seed)
    return res, te


#: speaker groups of the out-of-fold predictions the logistic baseline is calibrated on
CALIBRATION_SPLITS = 5


def out_of_fold_probabilities(data: ClassicalData, idx: Sequence[int], c: float, num_classes: int,
                              seed: int = 0) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Probabilities of the samples ``idx`` (training + validation speakers) each predicted by a model
    of the same C trained without its speaker group (`CALIBRATION_SPLITS` groups, augmented copies of
    the other groups included, test-time views averaged): what the refitted model's temperature and
    abstention threshold are fitted on. The 120 clips of two validation actors alone gave
    temperatures from 0.7 to 3.1 across RAVDESS folds; these are ten times as many. ``(None, None)``
    with fewer than two speakers."""
    from sklearn.model_selection import GroupKFold

    from emofuse.inputs.plan import average_over_views

    idx = np.asarray(idx)
    groups = np.array([data.samples[i].speaker for i in idx])
    splits = min(CALIBRATION_SPLITS, len(set(groups)))
    if splits < 2:
        return None, None
    probs = np.zeros((len(idx), num_classes))
    for fit_rows, held_rows in GroupKFold(n_splits=splits).split(idx, groups=groups):
        rows = idx[fit_rows]
        x_fit = np.concatenate([data.x[rows], *(v[rows] for v in data.train_views)])
        y_fit = np.concatenate([data.y[rows]] * (1 + len(data.train_views)))
        model = _fit(x_fit, y_fit, c, seed, data.balanced)
        held = idx[held_rows]
        views = [data.x[held], *(v[held] for v in data.test_views)]
        probs[np.ix_(held_rows, model.classes_)] = average_over_views(model.predict_proba, views)
    return probs, data.y[idx]
