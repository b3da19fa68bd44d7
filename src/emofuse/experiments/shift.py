"""``emofuse benchmark CORPUS --protocol shift``: one recipe under the shift protocols.

For each recipe (`run_shift`), on the corpus's speaker-disjoint folds:

1. **clean**: the plain folds (the usual WA / UA / F1 row). The same trained models are then scored
   on corrupted copies of their test clips (`emofuse.inputs.views.corruption_views`, one corruption
   at a time so that only one corrupted feature set is in memory), and calibrated: a temperature
   and an abstention threshold fitted on each fold's validation speakers, ECE on its test speakers
   before and after (`emofuse.evaluation.calibration`).
2. **cross-sentence**: trained on the first sentence, scored within and across sentences.
3. **cross-gender**: trained on one gender, scored on test speakers of both (both directions).

The protocols are defined in `emofuse.evaluation.shift`. Classical (logistic) and neural recipes run
through the same steps; each trained fold is reduced to a `FoldOutput`.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from emofuse.data.record import Sample
from emofuse.evaluation.metrics import aggregate, classification_metrics
from emofuse.evaluation.shift import (GENDERS, check_speaker_disjoint, corruption_summary, gender_folds,
                                      gender_of, sentence_folds, split_runs)
from emofuse.features.store import FeatureStore
from emofuse.inputs.plan import InputPlan
from emofuse.recipes import Recipe
from emofuse.training.distributed import rank_zero_print

#: a corruption view -> probabilities of the fold's test (or validation) clips
Predict = Callable[[Any], np.ndarray]


@dataclass
class FoldOutput:
    """One trained fold x seed, as the shift summaries need it."""

    fold: str
    seed: int
    ids: list[str]
    y_true: list[int]
    probs: np.ndarray
    val_probs: np.ndarray
    val_y: list[int]
    train_seconds: float
    predict_view: Predict
    #: the model early stopping (or C) was chosen with, on the validation clips of a view
    predict_val_view: Predict | None = None
    #: what calibration is fitted on when not the validation clips (the logistic baseline's
    #: out-of-fold probabilities over training + validation speakers)
    cal_probs: np.ndarray | None = None
    cal_y: list[int] | None = None


# -- training one protocol's folds -------------------------------------------------------------

def neural_outputs(recipe: Recipe, samples: list[Sample], store: FeatureStore, folds: Sequence[Any],
                   labels: list[str], seeds: Sequence[int], max_epochs: int | None,
                   progress: bool) -> list[FoldOutput]:
    """Train a neural recipe on ``folds`` (`run_kfold`, its views included) and keep each model."""
    from emofuse.training.kfold import run_kfold
    from emofuse.training.recipe import neural_setup

    plan = InputPlan.from_recipe(recipe)
    feats, build, cfg = neural_setup(recipe, store, plan)
    if max_epochs:
        cfg = cfg.replace(max_epochs=max_epochs)
    kept: list[dict[str, Any]] = []
    train_views, test_views = plan.view_arrays(store)
    result = run_kfold(samples, feats, labels, folds, build, cfg, seeds=seeds, progress=progress,
                       standardize=plan.standardize, train_views=train_views, test_views=test_views,
                       on_fold_end=lambda fold, model, info: kept.append({"model": model, **info}))
    outputs = []
    for run, info in zip(result.runs, kept):
        predict = _neural_predictor(plan, store, info["model"], info["stats"], info["test_idx"], run.y_true)
        # without a refit the kept model is the early-stopped one, the model of the validation scores
        val_predict = None if cfg.refit else _neural_predictor(plan, store, info["model"], info["stats"],
                                                               info["val_idx"], info["val_y"])
        outputs.append(FoldOutput(run.fold, run.seed, list(run.ids), list(run.y_true), run.probs,
                                  info["val_probs"], info["val_y"], run.train_seconds, predict, val_predict))
    return outputs


def _neural_predictor(plan: InputPlan, store: FeatureStore, model: Any, stats: Any, test_idx: Sequence[int],
                      y_true: Sequence[int]) -> Predict:
    from emofuse.training.data import FeatureDataset
    from emofuse.training.fit import predict_proba

    def predict(view: Any) -> np.ndarray:
        arrays = plan.arrays(store, view)
        if stats:
            arrays = plan.standardized(arrays, stats)
        columns = {m: [col[i] for i in test_idx] for m, col in arrays.items()}
        ids = [store.samples[i].id for i in test_idx]
        return predict_proba(model, FeatureDataset(columns, list(y_true), ids, dims=model.input_dims))

    return predict


def classical_outputs(recipe: Recipe, samples: list[Sample], store: FeatureStore, folds: Sequence[Any],
                      labels: list[str], progress: bool, calibrate: bool = True) -> list[FoldOutput]:
    """Fit the logistic baseline on ``folds`` (C on validation, refit on train + validation; with
    ``calibrate``, also the out-of-fold probabilities it is calibrated on)."""
    from emofuse.data.splits import partition
    from emofuse.training.classical import classical_data, fit_classical_fold

    data = classical_data(recipe, samples, store, labels)
    position = {s.id: i for i, s in enumerate(store.samples)}
    rows = [position[s.id] for s in data.samples]
    outputs = []
    for fold in folds:
        start = time.perf_counter()
        res, te = fit_classical_fold(data, fold, len(labels), 0, calibrate=calibrate)
        seconds = time.perf_counter() - start
        _, va, _ = partition(data.samples, fold)
        val_probs = res.val_probabilities if res.val_probabilities is not None else np.zeros((0, len(labels)))
        predict = _classical_predictor(data, store, res.model, [rows[i] for i in te], len(labels))
        val_predict = None if res.val_model is None else \
            _classical_predictor(data, store, res.val_model, [rows[i] for i in va], len(labels))
        out = FoldOutput(fold.name, 0, [data.samples[i].id for i in te], [int(y) for y in data.y[te]],
                         res.probabilities, val_probs, [int(y) for y in data.y[va]], seconds, predict, val_predict,
                         res.calibration_probabilities,
                         None if res.calibration_y is None else [int(y) for y in res.calibration_y])
        outputs.append(out)
        if progress:
            m = classification_metrics(out.y_true, out.probs.argmax(1), labels)
            rank_zero_print(f"{recipe.name} {fold.name}: WA {m['wa']:.3f} UA {m['ua']:.3f}", file=sys.stderr)
    return outputs


def _classical_predictor(data: Any, store: FeatureStore, pipeline: Any, rows: Sequence[int],
                         num_classes: int) -> Predict:
    from emofuse.training.classical import feature_matrix

    def predict(view: Any) -> np.ndarray:
        x = feature_matrix(data.plan.arrays(store, view), rows)
        proba = np.zeros((len(rows), num_classes))
        proba[:, pipeline.classes_] = pipeline.predict_proba(x)
        return proba

    return predict


# -- the summaries -----------------------------------------------------------------------------

def calibration_summary(outputs: Sequence[FoldOutput]) -> dict[str, Any]:
    """Per fold: temperature and abstention threshold fitted on the validation speakers (the logistic
    baseline: on out-of-fold predictions over training + validation speakers, as `emofuse train`
    does); test ECE before / after, and the share of test clips answered with their accuracy. Mean ±
    std over folds."""
    from emofuse.evaluation.calibration import (apply_temperature, choose_threshold, expected_calibration_error,
                                                fit_temperature, selective_scores)

    per_fold = []
    for out in outputs:
        fit_probs, fit_y = (out.val_probs, out.val_y) if out.cal_probs is None else (out.cal_probs, out.cal_y)
        if fit_y is None or not len(fit_y):
            continue
        temp = fit_temperature(fit_probs, np.asarray(fit_y), kind="probs")
        test_cal = apply_temperature(out.probs, temp)
        threshold = choose_threshold(apply_temperature(fit_probs, temp), np.asarray(fit_y))
        selective = selective_scores(test_cal, np.asarray(out.y_true), threshold)
        per_fold.append({"temperature": temp, "threshold": threshold,
                         "ece_before": expected_calibration_error(out.probs, np.asarray(out.y_true)),
                         "ece_after": expected_calibration_error(test_cal, np.asarray(out.y_true)),
                         "coverage": selective.coverage, "answered_accuracy": selective.accuracy})
    agg = aggregate(per_fold) if per_fold else {}
    return {**agg, "per_fold": per_fold}


def corruption_scores(outputs: Sequence[FoldOutput], store: FeatureStore, labels: list[str],
                      views: dict[str, Any], progress: bool) -> tuple[dict[str, dict[str, float]], list[int]]:
    """WA / UA aggregate per corruption (each fold's model on its corrupted test clips) and the
    histogram of predicted classes over every corrupted clip."""
    scores: dict[str, dict[str, float]] = {}
    histogram = np.zeros(len(labels), dtype=int)
    for name, view in views.items():
        per_run, per_val = [], []
        for out in outputs:
            probs = out.predict_view(view)
            pred = probs.argmax(axis=1)
            histogram += np.bincount(pred, minlength=len(labels))
            per_run.append(classification_metrics(out.y_true, pred, labels))
            if out.predict_val_view is not None:
                per_val.append(classification_metrics(out.val_y, out.predict_val_view(view).argmax(1), labels))
        agg = aggregate(per_run)
        scores[name] = {k: float(agg[k]) for k in ("wa_mean", "wa_std", "ua_mean", "ua_std")}
        if per_val:
            scores[name]["val_ua_mean"] = float(aggregate(per_val)["ua_mean"])
        store.forget(view)
        gc.collect()
        if progress:
            rank_zero_print(f"  {name}: WA {agg['wa_mean']:.3f} UA {agg['ua_mean']:.3f}", file=sys.stderr)
    return scores, histogram.tolist()



def run_shift(recipe: Recipe, samples: list[Sample], store: FeatureStore, folds: Sequence[Any], labels: list[str],
              *, seeds: Sequence[int] = (0,), max_epochs: int | None = None, progress: bool = True,
              corruptions: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every shift protocol for one recipe; returns the results row (clean figures at the top level,
    ``shift``, ``calibration`` and ``corrupted_prediction_histogram`` beside them)."""
    def train(fold_list: Sequence[Any], calibrate: bool = False) -> list[FoldOutput]:
        check_speaker_disjoint(samples, fold_list)
        if recipe.classical:  # calibration is scored on the clean folds only
            return classical_outputs(recipe, samples, store, fold_list, labels, progress, calibrate)
        return neural_outputs(recipe, samples, store, fold_list, labels, seeds, max_epochs, progress)

    from emofuse.experiments.benchmark import fold_scores

    by_id = {s.id: s for s in samples}
    clean = train(folds, calibrate=True)
    clean_metrics = [classification_metrics(o.y_true, o.probs.argmax(1), labels) for o in clean]
    clean_agg = aggregate([{**m, "train_seconds": o.train_seconds} for m, o in zip(clean_metrics, clean)])
    if corruptions is None:
        from emofuse.inputs.views import corruption_views

        corruptions = corruption_views()
    corrupted, histogram = corruption_scores(clean, store, labels, corruptions, progress)
    from emofuse.media.corrupt import snr_kinds

    noises = snr_kinds()  # the target compares their 10 dB mean with clean
    levels = {name: getattr(view, "level", None) if getattr(view, "corruption", "") in noises else None
              for name, view in corruptions.items()}
    s_folds, key, first = sentence_folds(samples, folds)
    by_sentence = split_runs(train(s_folds), by_id, labels, lambda s: "within" if str(s.meta[key]) == first else "cross")
    gender: dict[str, Any] = {}
    for g in GENDERS:
        split = split_runs(train(gender_folds(samples, folds, g)), by_id, labels,
                           lambda s, g=g: "within" if gender_of(s) == g else "cross")
        gender[f"train_{g}"] = split
    row = {"model": recipe.name, "architecture": recipe.model, "modalities": recipe.modalities,
           "features": recipe.features, "protocol": "shift",
           **{f"{k}_{s}": float(clean_agg[f"{k}_{s}"]) for k in ("wa", "ua", "macro_f1", "weighted_f1")
              for s in ("mean", "std")},
           "train_seconds": float(clean_agg["train_seconds_mean"]),
           "per_fold": [fold_scores(o.fold, o.seed, m) for o, m in zip(clean, clean_metrics)],
           "shift": {"cross_sentence": {"sentence_key": key, "trained_on": first, **by_sentence},
                     "cross_gender": {**gender, **_gender_means(gender)},
                     "corruptions": corrupted,
                     "corruption_summary": corruption_summary(clean_agg, corrupted, levels)},
           "confusion": np.sum([m["confusion"] for m in clean_metrics], axis=0).tolist(),
           "calibration": calibration_summary(clean),
           "validation": validation_summary(clean, corrupted, labels),
           "corrupted_prediction_histogram": dict(zip(labels, histogram))}
    return row


def validation_summary(outputs: Sequence[FoldOutput], corrupted: dict[str, dict[str, float]],
                       labels: list[str]) -> dict[str, float]:
    """The validation speakers' clean UA and mean UA over the corruptions (of the models early stopping
    or C was chosen with): what recipes are compared by when one is picked (``selection_ua``, their
    mean), never the test folds."""
    clean = [classification_metrics(o.val_y, o.val_probs.argmax(1), labels)["ua"] for o in outputs if len(o.val_y)]
    corr = [c["val_ua_mean"] for c in corrupted.values() if "val_ua_mean" in c]
    if not clean or not corr:
        return {}
    out = {"clean_ua": float(np.mean(clean)), "corrupted_ua": float(np.mean(corr))}
    out["selection_ua"] = (out["clean_ua"] + out["corrupted_ua"]) / 2
    return out


def _gender_means(gender: dict[str, Any]) -> dict[str, Any]:
    """Mean of both directions: within-gender and cross-gender UA / WA, and their gap."""
    out: dict[str, Any] = {}
    for side in ("within", "cross"):
        for key in ("wa", "ua"):
            out[f"{side}_{key}_mean"] = float(np.mean([gender[d][side][f"{key}_mean"] for d in gender]))
    out["ua_gap"] = out["within_ua_mean"] - out["cross_ua_mean"]
    return out


def checkpoint_corruption_histogram(checkpoint: Any, samples: list[Sample], cache_dir: str | None,
                                    views: dict[str, Any] | None = None) -> dict[str, Any]:
    """A saved checkpoint's answers on ``samples`` under every corruption: the share of each predicted
    class over all corrupted clips (the issue's "no class over 30 %" check) and per corruption, and
    the accuracy per corruption. Clips it was trained on are included (it answers on every clip)."""
    from emofuse.evaluation.evaluate import view_averaged_probs
    from emofuse.inference.checkpoint import load_members

    if views is None:
        from emofuse.inputs.views import corruption_views

        views = corruption_views()
    members = load_members([checkpoint])
    labels = list(members[0].labels)
    y = [labels.index(s.label) if s.label in labels else 0 for s in samples]
    store = FeatureStore(samples, cache_dir, progress=False)
    total, per_view = np.zeros(len(labels), dtype=int), {}
    for name, view in views.items():
        probs = [view_averaged_probs(m, m.input_plan, store, y, view) for m in members]
        pred = np.mean(probs, axis=0).argmax(axis=1)
        counts = np.bincount(pred, minlength=len(labels))
        total += counts
        per_view[name] = {"shares": dict(zip(labels, (counts / counts.sum()).round(4).tolist())),
                          "wa": float(np.mean(pred == np.asarray(y)))}
        store.forget(view)
        gc.collect()
    shares = total / total.sum()
    return {"checkpoint": str(checkpoint), "clips": len(samples), "corruptions": list(views),
            "shares": dict(zip(labels, shares.round(4).tolist())), "max_share": float(shares.max()),
            "max_class": labels[int(shares.argmax())], "per_corruption": per_view}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m emofuse.experiments.shift histogram [--checkpoint DIR] --out FILE``."""
    import argparse

    from emofuse.evaluation.reports import write_json_atomic
    from emofuse.experiments.lineup import load_dataset
    from emofuse.inference.predictor import demo_checkpoint_dir

    parser = argparse.ArgumentParser(prog="python -m emofuse.experiments.shift")
    parser.add_argument("command", choices=("histogram",))
    parser.add_argument("--checkpoint", default=None, help="default: the shipped demo model")
    parser.add_argument("--data", default=None, help="data root (default: EMOFUSE_DATA)")
    parser.add_argument("--cache", default=None, help="feature cache (default: EMOFUSE_CACHE)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    from emofuse.paths import cache_root, data_root

    samples = load_dataset("ravdess", data_root(args.data))
    out = checkpoint_corruption_histogram(args.checkpoint or demo_checkpoint_dir(), samples, str(cache_root(args.cache)))
    write_json_atomic(args.out, out)
    print(f"{out['clips']} clips x {len(out['corruptions'])} corruptions: most answered class {out['max_class']} "
          f"({out['max_share']:.1%}); shares {out['shares']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
