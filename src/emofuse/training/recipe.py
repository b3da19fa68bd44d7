"""Training a recipe on one fold into a checkpoint (or a seed ensemble), with its whole training setup
recorded so that stale ensemble members are retrained; the recipe's model factory and views."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING
from pathlib import Path
from typing import Any
from emofuse.data.record import Sample
from emofuse.errors import ConfigError
from emofuse.errors import DataError
from emofuse.features.store import FeatureStore
from emofuse.features.store import input_dims
from emofuse.features.store import vector_modalities
from emofuse.inputs.plan import InputPlan
from emofuse.evaluation.metrics import classification_metrics
from emofuse.recipes import Recipe
from emofuse.recipes import load_recipe
from emofuse.experiments.lineup import dataset_instance
from emofuse.training.classical import classical_data, fit_classical_fold
from emofuse.training.distributed import rank_zero_print

if TYPE_CHECKING:
    from emofuse.data.specs import DatasetInstance

log = logging.getLogger("emofuse.training.recipe")


def augmentation_fields(recipe: Recipe) -> dict[str, list[float]]:
    """The recipe's speed-perturbation settings for a results row (empty lists: none)."""
    return {"speed_perturb": list(recipe.train_speeds), "test_time_augment": list(recipe.test_speeds)}


def augmented_views(recipe: Recipe, store: FeatureStore):
    """``(train_views, test_views)``: view name (``speed0.9``) -> the recipe's inputs on that view
    (`InputPlan.view_arrays`); empty when the recipe asks for none or no view changes any of its
    features (see `emofuse.training.kfold.run_kfold`)."""
    return InputPlan.from_recipe(recipe).view_arrays(store)


def neural_setup(recipe: Recipe, store: FeatureStore, plan: InputPlan | None = None):
    """Inputs (built by the recipe's `InputPlan`), a model factory and the training config for a
    neural recipe."""
    from emofuse.models import create_model
    from emofuse.training.config import load_train_config

    feats = (plan or InputPlan.from_recipe(recipe)).arrays(store)
    kwargs = dict(recipe.model_kwargs)
    dims = input_dims(feats)
    if recipe.model == "attention_pooling":
        kwargs.setdefault("vector_modalities", vector_modalities(feats))
    cfg = load_train_config(recipe.train)

    def build():
        return create_model(recipe.model, num_classes=len(store.labels), input_dims=dims, **kwargs)

    return feats, build, cfg


def _feature_specs(recipe: Recipe) -> dict[str, dict[str, Any]]:
    """Checkpoint record of how each modality's features are computed (extractor configs, ``pooled``
    for a classical recipe, ``dialogue_window``): the ``features`` of the recipe's `InputPlan`."""
    return InputPlan.from_recipe(recipe).feature_specs()


#: the train settings `with_hardware` may override: how many processes, where, and how they synchronise
HARDWARE_KEYS = ("devices", "num_nodes", "strategy", "accelerator")


def with_hardware(recipe: Recipe, hardware: dict[str, Any] | None) -> Recipe:
    """``recipe`` with ``hardware`` (`HARDWARE_KEYS`) over its train settings; the same recipe when
    none is given. A neural recipe's settings change (its run key and training setup with them: two
    processes see other batches); a classical recipe is fitted in each process alike and is kept."""
    if not hardware or recipe.classical:
        return recipe
    unknown = sorted(set(hardware) - set(HARDWARE_KEYS))
    if unknown:
        raise ConfigError(f"not hardware settings: {', '.join(unknown)} (known: {', '.join(HARDWARE_KEYS)})")
    return dataclasses.replace(recipe, train={**recipe.train, **hardware})


def training_setup(recipe: Recipe, dataset: str, fold: int, seed: int, max_epochs: int | None) -> dict[str, Any]:
    """Everything that shapes a trained checkpoint's weights: the recipe's content, the effective
    training configuration (``--max-epochs`` and the seed applied), dataset, fold, seed and feature
    extractor settings. Saved in each checkpoint's ``meta.setup`` (with `setup_fingerprint`); a seed
    ensemble keeps a member only when it matches (see `_train_ensemble`)."""
    from emofuse.training.classical import DEFAULT_C_GRID
    from emofuse.training.config import load_train_config

    if recipe.classical:
        train: dict[str, Any] = {"c_grid": list(DEFAULT_C_GRID), "seed": seed}
        if recipe.train.get("sampler") == "balanced":
            train["class_weight"] = "balanced"
    else:
        cfg = load_train_config(recipe.train).replace(seed=seed)
        train = (cfg.replace(max_epochs=max_epochs) if max_epochs else cfg).to_dict()
    return {"recipe": {"name": recipe.name, "model": recipe.model, "features": recipe.features,
                       "model_kwargs": recipe.model_kwargs, "train": recipe.train, "data": recipe.data},
            "train": train, "dataset": dataset, "fold": fold, "seed": seed, "features": _feature_specs(recipe)}


def setup_fingerprint(setup: dict[str, Any]) -> str:
    """A short hash of a `training_setup` (its canonical JSON)."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(setup, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _setup_changes(old: Any, new: dict[str, Any]) -> str:
    """What differs between a saved `training_setup` and the wanted one, in words."""
    if not isinstance(old, dict):
        return "it records no training setup (trained by an older emofuse)"
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            changes += [f"{key}.{k} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        else:
            changes.append(f"{key} {a!r} -> {b!r}")
    return "its training setup differs: " + "; ".join(changes)


def _train_fold(data: DatasetInstance, fold: int):
    """The fold ``emofuse train --fold`` means: fold N of the dataset, or for 0 a training-only
    fold over every speaker, fold 1's validation speakers kept for early stopping / choosing C."""
    from emofuse.data.splits import Fold

    if fold != 0:
        return data.select_folds(str(fold))[0]
    first = data.folds[0]
    everyone = sorted({s.speaker for s in data.samples} - set(first.val))
    return Fold("all", train=tuple(everyone), val=first.val, test=(), group_by=first.group_by)


def _checkpoint_meta(recipe: Recipe, dataset: str, chosen, *, refit: bool, setup: dict[str, Any],
                     metrics: dict[str, Any], description: str | None) -> dict[str, Any]:
    """A trained checkpoint's ``meta``: which speakers trained the weights (``train_speakers``,
    validation speakers included after a refit), which chose the epoch or C (``val_speakers``),
    which are held out (``test_speakers``, empty for fold 0) and the held-out scores."""
    scores = {k: v for k, v in metrics.items() if k in ("wa", "ua", "macro_f1", "n")}
    held_out = bool(chosen.test)
    return {"recipe": recipe.name, "dataset": dataset, "fold": chosen.name, "seed": setup["seed"],
            "train_speakers": sorted({*chosen.train, *(chosen.val if refit else ())}),
            "val_speakers": list(chosen.val), "test_speakers": list(chosen.test), "refit": refit,
            "train_config": setup["train"], **augmentation_fields(recipe),
            "test_metrics": scores if held_out else {},
            **({} if held_out or refit else {"val_metrics": scores}),
            "setup": setup, "setup_fingerprint": setup_fingerprint(setup),
            "description": description or f"{recipe.name} trained on {dataset} "
                                          + (f"fold {chosen.name}" if held_out else "every speaker (fold 0)")}


def train_recipe(recipe_name: str | Recipe, dataset: str | DatasetInstance, data_root: str | Path | None, *,
                 out_dir: Path, fold: int = 1, cache_dir: str | None = None, max_epochs: int | None = None,
                 progress: bool = True, description: str | None = None, seeds: tuple[int, ...] = (0,),
                 num_folds: int | None = None, fold_seed: int | None = None,
                 hardware: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train a recipe on one fold (a neural one with early stopping on its validation speakers, a
    classical one with C chosen on them and refitted on training + validation), evaluate it on the
    fold's test speakers and save a checkpoint. ``fold=0`` trains on every speaker: fold 1's
    validation speakers only validate (and train too after a refit); there is no test set.

    With several ``seeds`` the result is a seed ensemble: one checkpoint per seed in
    ``out_dir/seed_<s>/`` plus ``out_dir/ensemble.json`` naming them (load ``out_dir`` with
    `emofuse.inference.predictor.Predictor` or ``emofuse evaluate``). A member already saved there is kept
    only when its whole `training_setup` matches (so an interrupted run resumes); otherwise it is
    retrained, saying why. The returned metrics are the ensemble's (probabilities averaged over
    members); empty without a held-out test set.

    ``dataset`` is a registered name, a CSV manifest path or a loaded `DatasetInstance`; a manifest's
    generated folds (``num_folds``, ``fold_seed``) are saved in ``out_dir`` (`emofuse.data.specs.folds_file_for`),
    where ``emofuse evaluate`` finds them. ``hardware`` (`with_hardware`: devices, num_nodes, strategy,
    accelerator) overrides the recipe's train settings, e.g. to train in several processes."""
    seeds = tuple(int(s) for s in seeds)
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ConfigError(f"seeds must be distinct and at least one, got {list(seeds)}")
    recipe = with_hardware(recipe_name if isinstance(recipe_name, Recipe) else load_recipe(recipe_name), hardware)
    if recipe.data.get("speaker_norm"):
        raise ConfigError(f"{recipe.name}: speaker-normalised recipes need each test speaker's other clips and are "
                          "benchmark-only; train the recipe without speaker_norm for a deployable checkpoint")
    if fold < 0:
        raise ConfigError(f"--fold must be 0 (every speaker) or a fold number, got {fold}")
    if recipe.classical and len(seeds) > 1:
        raise ConfigError(f"{recipe.name}: a logistic regression is deterministic, so several seeds would give "
                          "identical members; train it with one seed")
    data = dataset_instance(dataset, data_root, folds_dir=Path(out_dir), num_folds=num_folds, fold_seed=fold_seed,
                     progress=progress)
    if len(seeds) > 1:
        return _train_ensemble(recipe, data, data_root, out_dir=Path(out_dir), fold=fold, cache_dir=cache_dir,
                               max_epochs=max_epochs, progress=progress, description=description, seeds=seeds)
    samples, labels = data.samples, data.labels
    chosen = _train_fold(data, fold)
    setup = training_setup(recipe, data.key, fold, seeds[0], max_epochs)
    store = FeatureStore(samples, cache_dir, progress=progress)
    store.labels = labels
    train = _train_classical if recipe.classical else _train_neural
    metrics = train(recipe, samples, store, labels, chosen, setup, Path(out_dir), description, progress)
    if progress:
        if not chosen.test:
            rank_zero_print(f"saved {out_dir}; trained on every speaker, so there is no held-out score"
                  + (f" (validation speakers {', '.join(chosen.val)}: WA {metrics['wa']:.3f}, used for early "
                     "stopping)" if metrics else ""))
        else:
            rank_zero_print(f"saved {out_dir}; test WA {metrics['wa']:.3f} UA {metrics['ua']:.3f}")
    return metrics if chosen.test else {}


def _train_neural(recipe: Recipe, samples: list[Sample], store: FeatureStore, labels: list[str], chosen,
                  setup: dict[str, Any], out_dir: Path, description: str | None, progress: bool) -> dict[str, Any]:
    """`train_recipe` for a registered model: `run_kfold` on one fold, the checkpoint saved when it ends.
    Returns the scores (test speakers; for a training-only fold without refit, validation speakers)."""
    from emofuse.inference.checkpoint import save_checkpoint
    from emofuse.inputs.normalize import stats_to_tensors
    from emofuse.training.config import TrainConfig
    from emofuse.training.kfold import run_kfold

    plan = InputPlan.from_recipe(recipe)
    feats, build, _ = neural_setup(recipe, store, plan)
    cfg = TrainConfig.from_dict(setup["train"])
    saved: dict[str, Any] = {}

    def save(fold_obj, model, info):
        saved["metrics"] = {} if cfg.refit and not fold_obj.test else info["metrics"]
        save_checkpoint(out_dir, model, labels=labels, features=plan.feature_specs(), input_plan=plan,
                        extras=stats_to_tensors(info["stats"] or {}),
                        calibration=fold_calibration(info.get("val_probs"), info.get("val_y"), fold_obj),
                        meta=_checkpoint_meta(recipe, setup["dataset"], fold_obj, refit=cfg.refit, setup=setup,
                                              metrics=saved["metrics"], description=description))

    train_views, test_views = plan.view_arrays(store)
    run_kfold(samples, feats, labels, [chosen], build, cfg, seeds=(cfg.seed,), progress=progress,
              standardize=plan.standardize, on_fold_end=save, train_views=train_views, test_views=test_views)
    return saved["metrics"]


def _train_classical(recipe: Recipe, samples: list[Sample], store: FeatureStore, labels: list[str], chosen,
                     setup: dict[str, Any], out_dir: Path, description: str | None, progress: bool) -> dict[str, Any]:
    """`train_recipe` for ``model: logreg``: C chosen on the validation speakers, refitted on
    training + validation, saved as a ``logistic_regression`` checkpoint (`export_logreg`)."""
    from emofuse.training.classical import CALIBRATION_SPLITS, export_logreg
    from emofuse.inference.checkpoint import save_checkpoint
    from emofuse.inputs.normalize import stats_to_tensors

    data = classical_data(recipe, samples, store, labels)
    res, te = fit_classical_fold(data, chosen, len(labels), setup["seed"])
    metrics = classification_metrics(data.y[te], res.probabilities.argmax(1), labels) if chosen.test else {}
    model, stats = export_logreg(res.model, len(labels), data.dims)
    meta = _checkpoint_meta(recipe, setup["dataset"], chosen, refit=True, setup=setup, metrics=metrics,
                            description=description)
    where = (f"out-of-fold predictions over the training and validation speakers ({CALIBRATION_SPLITS} speaker "
             f"groups, C={res.chosen_c:g}), then refitted on all of them")
    calibration = fold_calibration(res.calibration_probabilities, res.calibration_y, chosen, where)
    save_checkpoint(out_dir, model, labels=labels, features=data.plan.feature_specs(), input_plan=data.plan,
                    extras=stats_to_tensors(stats), meta={**meta, "chosen_c": res.chosen_c}, calibration=calibration)
    return metrics


def fold_calibration(val_probs: Any, val_y: Any, fold, where: str | None = None) -> dict[str, Any] | None:
    """The checkpoint's ``calibration``: temperature and abstention threshold fitted on the fold's
    validation speakers (`emofuse.evaluation.calibration.calibration_block`); None without validation
    probabilities. The probabilities are those of the model chosen on them, before any refit."""
    import numpy as np

    from emofuse.evaluation.calibration import calibration_block

    if val_probs is None or val_y is None or not len(val_y) or np.asarray(val_probs).ndim != 2:
        return None
    where = where or f"validation speakers {', '.join(fold.val)} (fold {fold.name}), before any refit"
    return calibration_block(np.asarray(val_probs), np.asarray(val_y, dtype=np.int64), fitted_on=where)


def _train_ensemble(recipe: Recipe, data: DatasetInstance, data_root: str | Path | None, *, out_dir: Path, fold: int,
                    cache_dir: str | None, max_epochs: int | None, progress: bool, description: str | None,
                    seeds: tuple[int, ...]) -> dict[str, Any]:
    """`train_recipe` for several seeds: one member per seed, then ``ensemble.json`` (see there).
    A member already in ``out_dir`` is kept only when its saved `training_setup` is the one wanted;
    otherwise (another max_epochs, recipe content, fold, features, ...) it is retrained, with a
    warning saying what changed."""
    from emofuse.inference.checkpoint import CONFIG, read_config, save_ensemble

    members = []
    for seed in seeds:
        member = out_dir / f"seed_{seed}"
        members.append(member.name)
        if (member / CONFIG).is_file():
            setup = training_setup(recipe, data.key, fold, seed, max_epochs)
            try:
                meta = read_config(member)["meta"]
                stale = None if meta.get("setup_fingerprint") == setup_fingerprint(setup) \
                    else _setup_changes(meta.get("setup"), setup)
            except DataError as exc:
                stale = f"it cannot be read ({exc})"
            if stale is None:
                if progress:
                    rank_zero_print(f"keeping {member} (already trained: {recipe.name}, {data.name} fold {fold}, seed {seed}, "
                          "same training setup)")
                continue
            log.warning("retraining %s: %s", member, stale)
        train_recipe(recipe, data, data_root, out_dir=member, fold=fold, cache_dir=cache_dir,
                     max_epochs=max_epochs, progress=progress, description=description, seeds=(seed,))
    save_ensemble(out_dir, members, {"recipe": recipe.name, "dataset": data.key, "fold": fold, "seeds": list(seeds),
                                     "description": description or f"{recipe.name} seed ensemble ({len(seeds)} seeds)"})
    if fold == 0:
        return {}
    from emofuse.evaluation.evaluate import evaluate_checkpoint

    metrics = evaluate_checkpoint(out_dir, data, data_root, fold=fold, cache_dir=cache_dir)
    if progress:
        rank_zero_print(f"saved {out_dir} ({len(seeds)}-seed ensemble); test WA {metrics['wa']:.3f} UA {metrics['ua']:.3f}")
    return metrics
