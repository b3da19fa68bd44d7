"""Sentiment regression (CMU-MOSEI): any registered model with a regression head, over a dataset's folds.

The regression head is a model wrapper (`RegressionHead`): the registered model is built with one
output per target (at least 2, the model interface's minimum; extra outputs are unused) and its
outputs are read as real-valued scores instead of class logits. `RegressionTask` trains it with
Lightning (the Trainer of `emofuse.training.fit.build_trainer`) on the L1 loss (as MMSA trains
Self-MM), auxiliary losses of the model added, early-stopping on the validation MAE of the first
target (sentiment). Inputs are built with the recipe's `InputPlan` and standardised on each fold's
training samples, exactly as classification recipes are.

Targets are ``meta`` values of the samples (`emofuse.data.mosei.LABEL_COLUMNS`: ``sentiment`` and the
six emotion intensities). Scores: `emofuse.evaluation.regression` (Acc-2 in both conventions, F1,
Acc-7, MAE, Pearson r) on the sentiment; MAE and r of each other target.

    python -m emofuse.experiments.regression tfn_mosei --dataset mosei --data DIR --out mosei.json
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from emofuse.errors import ConfigError, DataError
from emofuse.models.base import ModelOutput

DEFAULT_TARGETS = ("sentiment",)


class RegressionHead(nn.Module):
    """A registered model read as a regressor: its first ``n_targets`` outputs are the scores."""

    def __init__(self, model: nn.Module, n_targets: int) -> None:
        super().__init__()
        if not 1 <= n_targets <= model.num_classes:
            raise ConfigError(f"{n_targets} regression targets for a model with {model.num_classes} outputs")
        self.model, self.n_targets = model, int(n_targets)

    def forward(self, inputs: dict[str, Tensor], masks: dict[str, Tensor]) -> ModelOutput:
        out = self.model(inputs, masks)
        out.logits = out.logits[:, : self.n_targets]
        return out


def build_regressor(recipe: Any, dims: dict[str, int], n_targets: int) -> RegressionHead:
    """The recipe's model with one output per target (at least 2), wrapped as a `RegressionHead`."""
    from emofuse.models import create_model

    model = create_model(recipe.model, num_classes=max(2, n_targets), input_dims=dims, **recipe.model_kwargs)
    return RegressionHead(model, n_targets)


def _task_class():
    import lightning

    from emofuse.training.task import lr_lambda

    class RegressionTask(lightning.LightningModule):
        """L1 loss (+ the model's auxiliary losses); logs ``val_mae`` of the first target per epoch."""

        def __init__(self, model: RegressionHead, cfg: Any) -> None:
            super().__init__()
            self.model, self.cfg = model, cfg
            self._val: list[tuple[Tensor, Tensor]] = []

        def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
            out = self.model(batch["inputs"], batch["masks"])
            loss = nn.functional.l1_loss(out.logits, batch["targets"])
            for value in out.aux_losses.values():
                loss = loss + value
            self.log("train_loss", loss.detach(), batch_size=len(batch["ids"]), on_epoch=True)
            return loss

        def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
            out = self.model(batch["inputs"], batch["masks"])
            self._val.append((out.logits[:, 0].detach().float(), batch["targets"][:, 0]))

        def on_validation_epoch_end(self) -> None:
            if self._val:
                pred, true = (torch.cat(x) for x in zip(*self._val))
                self.log("val_mae", float((pred - true).abs().mean()))
            self._val.clear()

        def configure_optimizers(self) -> dict[str, Any]:
            optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
            total = int(self.trainer.estimated_stepping_batches) if self.trainer is not None else 1
            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total, self.cfg.warmup_ratio,
                                                                              self.cfg.schedule))
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    return RegressionTask


def _loader(features: dict[str, list], targets: np.ndarray, ids: list[str], dims: dict[str, int],
            batch_size: int, shuffle: bool, seed: int):
    from torch.utils.data import DataLoader

    from emofuse.training.data import FeatureDataset, collate

    ds = FeatureDataset(features, None, ids, dims=dims)
    rows = {sid: k for k, sid in enumerate(ids)}

    def collate_targets(batch: list[dict[str, Any]]) -> dict[str, Any]:
        out = collate(batch)
        out["targets"] = torch.from_numpy(targets[[rows[i] for i in out["ids"]]])
        return out

    gen = torch.Generator().manual_seed(int(seed)) if shuffle else None
    drop_last = shuffle and len(ds) > batch_size and len(ds) % batch_size == 1
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=gen, collate_fn=collate_targets,
                      drop_last=drop_last)


def fit_regressor(model: RegressionHead, train: tuple, val: tuple | None, cfg: Any) -> tuple[RegressionHead, int]:
    """Train on ``train`` = (features, targets, ids, dims); early-stop on ``val``'s MAE; best weights back."""
    import lightning
    from lightning.pytorch.callbacks import EarlyStopping

    from emofuse.training.fit import BestCheckpoint, build_trainer, load_best_weights

    lightning.seed_everything(cfg.seed, workers=True, verbose=False)
    task = _task_class()(model.train(), cfg)
    train_loader = _loader(*train, cfg.batch_size, True, cfg.seed)
    val_loader = _loader(*val, max(64, cfg.batch_size), False, 0) if val is not None else None
    with tempfile.TemporaryDirectory(prefix="emofuse-regression-") as tmp:
        best = BestCheckpoint(Path(tmp) / "best", "val_mae", "min") if val_loader is not None else None
        callbacks = [EarlyStopping(monitor="val_mae", mode="min", patience=cfg.patience), best] if best else []
        trainer = build_trainer(cfg, tmp, callbacks, enable_progress_bar=False, enable_model_summary=False)
        trainer.fit(task, train_loader, val_loader)
        kept = load_best_weights(task, best) if best is not None else None
    return model.cpu().eval(), (kept[0] if kept else int(trainer.current_epoch))


@torch.no_grad()
def predict_scores(model: RegressionHead, data: tuple) -> np.ndarray:
    """``[N, n_targets]`` scores for (features, targets, ids, dims), in the given order."""
    loader = _loader(*data, 64, False, 0)
    return np.concatenate([model(b["inputs"], b["masks"]).logits.float().numpy() for b in loader])


def target_matrix(samples: Sequence[Any], targets: Sequence[str]) -> np.ndarray:
    """``[N, K]`` float32 targets from each sample's ``meta`` (DataError naming a sample without one)."""
    out = np.zeros((len(samples), len(targets)), dtype=np.float32)
    for i, s in enumerate(samples):
        for k, name in enumerate(targets):
            value = s.meta.get(name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise DataError(s.id, f"no finite regression target {name!r} in its meta")
            out[i, k] = value
    return out


def run_regression(recipe: Any, samples: Sequence[Any], store: Any, folds: Sequence[Any], *,
                   targets: Sequence[str] = DEFAULT_TARGETS, seeds: Sequence[int] = (0,),
                   max_epochs: int | None = None) -> dict[str, Any]:
    """Train and score ``recipe`` as a regressor on every fold x seed; one benchmark-style row."""
    from emofuse.data.splits import partition
    from emofuse.evaluation.regression import aggregate_regression, emotion_metrics, regression_metrics
    from emofuse.inputs.plan import InputPlan
    from emofuse.training.config import load_train_config

    if recipe.classical:
        raise ConfigError(f"{recipe.name}: regression needs a neural recipe, not {recipe.model}")
    plan = InputPlan.from_recipe(recipe)
    arrays = plan.arrays(store)
    dims = {m: next(a.shape[1] for a in col if a is not None) for m, col in arrays.items()
            if any(a is not None for a in col)}
    arrays = {m: arrays[m] for m in dims}
    y = target_matrix(samples, targets)
    ids = [s.id for s in samples]
    cfg = load_train_config(recipe.train)
    if max_epochs:
        cfg = cfg.replace(max_epochs=int(max_epochs))
    runs = []
    for fold in folds:
        train, val, test = partition(list(samples), fold)
        if not train or not test:
            raise DataError(None, f"fold {fold.name}: {len(train)} training and {len(test)} test samples")
        std = plan.standardized(arrays, plan.fit_standardizer(arrays, train))

        def part(idx: list[int]) -> tuple:
            return {m: [std[m][i] for i in idx] for m in dims}, y[idx], [ids[i] for i in idx], dims

        for seed in seeds:
            torch.manual_seed(int(seed))  # the initial weights follow the seed, whatever ran before
            model = build_regressor(recipe, dims, len(targets))
            start = time.perf_counter()
            model, best_epoch = fit_regressor(model, part(train), part(val) if val else None, cfg.replace(seed=seed))
            seconds = time.perf_counter() - start
            pred = predict_scores(model, part(test))
            run = {"fold": fold.name, "seed": int(seed), "best_epoch": best_epoch, "train_seconds": seconds,
                   **regression_metrics(y[test, 0], pred[:, 0])}
            if len(targets) > 1:
                run["targets"] = emotion_metrics(y[test, 1:], pred[:, 1:], targets[1:])
            runs.append(run)
    return {"model": recipe.name, "architecture": recipe.model, "task": "regression", "targets": list(targets),
            "modalities": list(dims), "features": recipe.features, **aggregate_regression(runs),
            "train_seconds": float(np.mean([r["train_seconds"] for r in runs])), "runs": runs}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m emofuse.experiments.regression RECIPE --dataset mosei --data DIR --out FILE.json``."""
    from emofuse.atomic import atomic_write_text
    from emofuse.data.mosei import LABEL_COLUMNS
    from emofuse.data.specs import load_dataset
    from emofuse.features.store import FeatureStore
    from emofuse.recipes import load_recipe

    p = argparse.ArgumentParser(prog="python -m emofuse.experiments.regression", description=__doc__.split("\n")[0])
    p.add_argument("recipe")
    p.add_argument("--dataset", default="mosei")
    p.add_argument("--data", help="data root (default: $EMOFUSE_DATA)")
    p.add_argument("--targets", default="sentiment", help="'sentiment' or 'all' (sentiment + six emotions)")
    p.add_argument("--seeds", default="0")
    p.add_argument("--max-epochs", type=int)
    p.add_argument("--cache")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    import os

    data = load_dataset(args.dataset, args.data or os.environ.get("EMOFUSE_DATA"))
    targets = LABEL_COLUMNS if args.targets == "all" else tuple(t.strip() for t in args.targets.split(","))
    store = FeatureStore(data.samples, cache_dir=args.cache, progress=False)
    row = run_regression(load_recipe(args.recipe), data.samples, store, data.folds, targets=targets,
                         seeds=[int(s) for s in args.seeds.split(",")], max_epochs=args.max_epochs)
    result = {"title": f"{data.name} regression", "dataset": data.name, "date": date.today().isoformat(),
              "folds": [f.name for f in data.folds], "results": [row]}
    import json

    atomic_write_text(Path(args.out), json.dumps(result, indent=1) + "\n")
    print(f"{row['model']}: acc2 {row['acc2_mean']:.3f}  acc2_non0 {row['acc2_non0_mean']:.3f}  "
          f"acc7 {row['acc7_mean']:.3f}  mae {row['mae_mean']:.3f}  corr {row['corr_mean']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
