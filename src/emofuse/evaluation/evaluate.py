"""Scoring a saved checkpoint (or seed ensemble) on a fold's held-out speakers through its input plan."""

from __future__ import annotations

from typing import TYPE_CHECKING
from pathlib import Path
from typing import Any
import numpy as np
from emofuse.errors import DataError
from emofuse.features.store import FeatureStore
from emofuse.inputs.plan import InputPlan
from emofuse.evaluation.metrics import classification_metrics
from emofuse.experiments.lineup import dataset_instance

if TYPE_CHECKING:
    from emofuse.data.specs import DatasetInstance


def evaluate_checkpoint(checkpoint: Path, dataset: str | DatasetInstance, data_root: str | Path | None, *,
                        fold: int = 1, cache_dir: str | None = None, report_dir: str | None = None) -> dict[str, Any]:
    """Score a checkpoint on a fold's test speakers (refuses a fold whose test speakers it trained on).

    ``dataset`` is a registered name, a loaded `DatasetInstance` or a CSV manifest path; a manifest's
    folds are the ones saved with the checkpoint by ``emofuse train`` (`emofuse.data.specs.folds_file_for`).

    A seed-ensemble folder (``ensemble.json``, see `emofuse.inference.checkpoint.checkpoint_members`) is scored
    on the class probabilities averaged over its members, each with its own standardisation.
    """
    from emofuse.inference.checkpoint import load_members
    from emofuse.evaluation.reports import plot_confusion, write_json_atomic
    from emofuse.data.splits import partition

    checkpoint = Path(checkpoint)
    members = load_members([checkpoint])
    ckpt = members[0]
    data = dataset_instance(dataset, data_root, folds_dir=checkpoint, must_exist=True)
    samples, dataset = data.samples, data.name
    chosen = data.select_folds(str(fold))[0]
    for member in members:
        trained_on = set(member.meta.get("train_speakers", [])) | set(member.meta.get("val_speakers", []))
        leak = sorted(trained_on & set(chosen.test))
        if leak:
            from emofuse.errors import SpeakerOverlapError

            raise SpeakerOverlapError(f"{checkpoint}: trained on speakers {leak} that are in fold {fold}'s test set")
    _, _, test_idx = partition(samples, chosen)
    test = [samples[i] for i in test_idx]
    store = FeatureStore(test, cache_dir)
    index = {lab: i for i, lab in enumerate(ckpt.labels)}
    for s in test:
        if s.label not in index:
            raise DataError(s.id, f"label {s.label!r} is not in the checkpoint's label map {ckpt.labels}")
    y_true = [index[s.label] for s in test]
    plans = [member.input_plan for member in members]
    probs = np.mean([view_averaged_probs(member, plan, store, y_true) for member, plan in zip(members, plans)],
                    axis=0)
    metrics = classification_metrics(y_true, probs.argmax(1), ckpt.labels)
    metrics["ensemble_members"] = len(members)
    metrics["test_time_augment"] = sorted({f for plan in plans for f in plan.test_time_speeds})
    if report_dir:
        write_json_atomic(Path(report_dir) / "metrics.json", metrics)
        plot_confusion(np.asarray(metrics["confusion"]), ckpt.labels, Path(report_dir) / "confusion.png",
                       title=f"{checkpoint.name} on {dataset} fold {fold}")
    return metrics


def view_averaged_probs(member, plan: InputPlan, store: FeatureStore, y_true: list[int],
                        view: Any = None) -> np.ndarray:
    """One checkpoint's class probabilities for the store's samples: inputs built by its input plan
    (arrays shared between members through the store), standardised with its own statistics,
    averaged over the original and its test-time views, then scaled by its calibration temperature
    (as `emofuse.inference.predictor.Predictor` does). With ``view`` (e.g. a corruption), the
    samples' sources under that view, without test-time views (views do not compose)."""
    from emofuse.evaluation.calibration import apply_temperature
    from emofuse.training.data import FeatureDataset
    from emofuse.training.fit import predict_proba_mean

    stats = plan.saved_stats(member.extras)
    ids = [s.id for s in store.samples]
    views = (None, *plan.test_views) if view is None else (view,)
    return apply_temperature(predict_proba_mean(member.model, [
        FeatureDataset(plan.standardized(plan.arrays(store, v), stats), y_true, ids, dims=member.model.input_dims)
        for v in views]), member.temperature)
