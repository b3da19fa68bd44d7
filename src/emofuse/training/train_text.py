"""``emofuse train-text``: fine-tune a text recipe on a corpus's official split and save a checkpoint.

The training part trains, the dev part picks the epoch (``train.monitor``) and, for a multi-label head,
the per-class thresholds (`emofuse.evaluation.multilabel.select_thresholds`); the test part is scored
once. The checkpoint (`emofuse.inference.text_checkpoint`) holds the weights, the tokenizer, the
conversation window and those thresholds, so `emofuse predict --text ... --model DIR` reads text exactly
as training did. An interrupted run resumes from ``<out>.work/last.ckpt``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emofuse.errors import ConfigError


@dataclass
class TextTrainResult:
    """Where the checkpoint went and how it scored."""

    out_dir: Path
    best_epoch: int
    dev: dict[str, Any]
    test: dict[str, Any]
    train_seconds: float
    probabilities: dict[str, np.ndarray]


def train_text(recipe_name: str | Path, dataset: str, data_root: str | Path, out_dir: str | Path, *, seed: int = 0,
               max_epochs: int | None = None, progress: bool = False) -> TextTrainResult:
    """Fine-tune ``recipe_name`` on ``dataset`` (see the module docstring) and write ``out_dir``."""
    from emofuse.encoders.base import import_transformers
    from emofuse.inference.text_checkpoint import save_text_checkpoint
    from emofuse.training.text import build_classifier, finetune_text, load_text_recipe, predict_logits
    from emofuse.training.text_data import text_splits, token_datasets

    recipe = load_text_recipe(recipe_name)
    splits = text_splits(dataset, data_root)
    if bool(recipe.head.get("multi_label", False)) != splits.multi_label:
        recipe.head = {**recipe.head, "multi_label": splits.multi_label}
    if max_epochs is not None:
        recipe.train = {**recipe.train, "max_epochs": int(max_epochs)}
    recipe.train = {**recipe.train, "progress": bool(progress)}
    if splits.multi_label and recipe.train_config.monitor not in ("val_mf1", "val_loss"):
        raise ConfigError(f"{recipe.name}: a multi-label corpus picks the epoch by val_mf1 or val_loss, "
                          f"not {recipe.train_config.monitor}")
    tokenizer = import_transformers().AutoTokenizer.from_pretrained(str(recipe.encoder_folder()), local_files_only=True)
    sets = token_datasets(splits, tokenizer, recipe.context)
    out = Path(out_dir)
    work = out.with_name(f"{out.name}.work")
    model = build_classifier(recipe, len(splits.labels))
    fit = finetune_text(recipe, sets["train"], sets["dev"], len(splits.labels), seed=seed, work_dir=work, model=model)
    probs = {part: fit.model.probabilities(torch.from_numpy(predict_logits(fit.model, sets[part]))).numpy()
             for part in ("dev", "test")}
    dev, test, thresholds = score_parts(probs, splits)
    save_text_checkpoint(out, fit.model, tokenizer, splits.labels, recipe.context, thresholds=thresholds,
                         recipe=recipe.to_dict(), dataset=dataset,
                         training={"seed": seed, "best_epoch": fit.best_epoch, "history": fit.history,
                                   "train_seconds": fit.train_seconds, "dev": _headline(dev), "test": _headline(test),
                                   "note": splits.note})
    shutil.rmtree(work, ignore_errors=True)
    return TextTrainResult(out, fit.best_epoch, dev, test, fit.train_seconds, probs)


def score_parts(probs: dict[str, np.ndarray], splits: Any) -> tuple[dict, dict, list[float] | None]:
    """Dev and test metrics; a multi-label head is thresholded per class at values chosen on dev."""
    if splits.multi_label:
        from emofuse.evaluation.multilabel import multilabel_metrics, select_thresholds

        thresholds = select_thresholds(probs["dev"], splits.targets["dev"])
        return (multilabel_metrics(probs["dev"], splits.targets["dev"], thresholds, splits.labels),
                multilabel_metrics(probs["test"], splits.targets["test"], thresholds, splits.labels),
                [float(t) for t in thresholds])
    from emofuse.evaluation.metrics import classification_metrics

    return (classification_metrics(splits.targets["dev"], probs["dev"].argmax(-1), splits.labels),
            classification_metrics(splits.targets["test"], probs["test"].argmax(-1), splits.labels), None)


def _headline(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if k in ("wa", "ua", "macro_f1", "weighted_f1", "micro_f1")}
