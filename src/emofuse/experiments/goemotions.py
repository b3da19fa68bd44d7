"""GoEmotions multi-label benchmark on the official test split: macro-F1 over 28 classes and over Ekman 7.

    python -m emofuse.experiments.goemotions --out docs/results/goemotions_2026-11-29.json
    emofuse --threads 1 benchmark goemotions --out goemotions.json      # the same

The baseline here is frozen all-MiniLM-L6-v2 sentence vectors (``minilm_pooled``, cached by the
feature driver) and one-vs-rest logistic regression; its inverse regularisation ``C`` is chosen on
dev macro-F1. The Ekman-7 figure follows the GoEmotions paper: a second classifier trained on the
Ekman labels (``macro_f1_ekman``); the 28-class model's probabilities grouped into Ekman classes (the
maximum over each group) are reported beside it (``macro_f1_ekman_from28``). Every decision
threshold is chosen per class on dev (`emofuse.evaluation.multilabel.select_thresholds`).

`multilabel_row` turns any model's dev and test probabilities into a results row (the shared
fields ``model``, ``modalities``, ``wa_mean``, ``ua_mean``, ``macro_f1_mean``, ``weighted_f1_mean`` with
``_std``, ``train_seconds``, plus ``micro_f1`` and ``macro_f1_ekman``), so a fine-tuned sigmoid head
is scored exactly as the baseline.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

#: the GoEmotions paper's BERT-base test macro-F1 (Demszky et al., 2020, tables 4 and 5)
PAPER_BERT_BASE = {"macro_f1": 0.46, "macro_f1_ekman": 0.64}
C_GRID = (1.0, 4.0, 16.0)


def score_split(dev_probs: np.ndarray, dev_y: np.ndarray, test_probs: np.ndarray, test_y: np.ndarray,
                classes: Sequence[str]) -> dict[str, Any]:
    """Test metrics at per-class thresholds chosen on dev (`multilabel_metrics` + ``dev_macro_f1``)."""
    from emofuse.evaluation.multilabel import multilabel_metrics, select_thresholds

    thresholds = select_thresholds(dev_probs, dev_y)
    dev = multilabel_metrics(dev_probs, dev_y, thresholds, classes)
    test = multilabel_metrics(test_probs, test_y, thresholds, classes)
    return {**test, "dev_macro_f1": dev["macro_f1"]}


def multilabel_row(model: str, probs: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                   ekman_probs: dict[str, np.ndarray] | None = None, *, train_seconds: float | None = None,
                   features: dict[str, list[str]] | None = None, **extra: Any) -> dict[str, Any]:
    """A results row from 28-class probabilities ``probs["dev"|"test"]`` ``[N, 28]`` and binary labels
    ``labels["dev"|"test"]``; ``ekman_probs`` are a separate Ekman-7 model's (else only the grouped
    28-class figure is given). One run: every ``_std`` is 0."""
    from emofuse.data.goemotions import EKMAN_LABELS, EKMAN_MAPPING, GOEMOTIONS_LABELS
    from emofuse.evaluation.multilabel import group_columns

    fine = score_split(probs["dev"], labels["dev"], probs["test"], labels["test"], GOEMOTIONS_LABELS)
    grouped = {s: group_columns(probs[s], labels[s], GOEMOTIONS_LABELS, {e: EKMAN_MAPPING[e] for e in EKMAN_LABELS})
               for s in ("dev", "test")}
    from28 = score_split(grouped["dev"][0], grouped["dev"][1], grouped["test"][0], grouped["test"][1], EKMAN_LABELS)
    ekman = from28 if ekman_probs is None else score_split(ekman_probs["dev"], grouped["dev"][1], ekman_probs["test"],
                                                          grouped["test"][1], EKMAN_LABELS)
    row: dict[str, Any] = {"model": model, "modalities": ["text"], "features": features or {},
                           "split": "GoEmotions test (official)", "n_runs": 1, "train_seconds": train_seconds}
    for key in ("wa", "ua", "macro_f1", "weighted_f1"):
        row[f"{key}_mean"], row[f"{key}_std"] = fine[key], 0.0
    row.update(micro_f1=fine["micro_f1"], samples_f1=fine["samples_f1"], dev_macro_f1=fine["dev_macro_f1"],
               macro_f1_ekman=ekman["macro_f1"], micro_f1_ekman=ekman["micro_f1"],
               ekman_model="separate Ekman-7 classifier" if ekman_probs is not None else "28-class model, grouped",
               macro_f1_ekman_from28=from28["macro_f1"], micro_f1_ekman_from28=from28["micro_f1"],
               per_class=fine["per_class"], per_class_ekman=ekman["per_class"], **extra)
    return row


def fit_ovr(x: dict[str, np.ndarray], y: dict[str, np.ndarray], classes: Sequence[str],
            c_grid: Sequence[float] = C_GRID) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One-vs-rest logistic regression for each ``C`` in ``c_grid``; the ``C`` with the best dev
    macro-F1 (thresholds chosen on dev) wins. Returns its dev/test probabilities and a summary."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    from emofuse.evaluation.multilabel import multilabel_metrics, select_thresholds

    best: tuple[float, float, dict[str, np.ndarray]] | None = None
    dev_scores: dict[str, float] = {}
    started = time.perf_counter()
    for c in c_grid:
        clf = OneVsRestClassifier(LogisticRegression(C=c, max_iter=2000)).fit(x["train"], y["train"])
        probs = {s: clf.predict_proba(x[s]) for s in ("dev", "test")}
        dev = multilabel_metrics(probs["dev"], y["dev"], select_thresholds(probs["dev"], y["dev"]), classes)
        dev_scores[f"{c:g}"] = dev["macro_f1"]
        if best is None or dev["macro_f1"] > best[0]:
            best = (dev["macro_f1"], c, probs)
    assert best is not None
    return best[2], {"C": best[1], "dev_macro_f1_by_C": dev_scores, "fit_seconds": time.perf_counter() - started}


def load_features(root: Path, cache_dir: Path | None, progress: bool) -> tuple[dict, dict, dict]:
    """MiniLM sentence vectors ``[N, 384]`` and binary 28-class and Ekman-7 label matrices per split."""
    from emofuse.data.goemotions import EKMAN_LABELS, GOEMOTIONS_LABELS, prepare_goemotions
    from emofuse.evaluation.multilabel import binarize
    from emofuse.features.text import extract_text_features

    x, y28, y7 = {}, {}, {}
    for split in ("train", "dev", "test"):
        samples = prepare_goemotions(root, split=split)
        feats = extract_text_features([s.sources["text"] for s in samples], "minilm_pooled", cache_dir,
                                      ids=[s.id for s in samples], progress=progress)
        x[split] = np.concatenate(feats, axis=0).astype(np.float32)
        y28[split] = binarize([s.labels for s in samples], GOEMOTIONS_LABELS)
        y7[split] = binarize([s.meta["ekman"] for s in samples], EKMAN_LABELS)
    return x, y28, y7


def run_goemotions(data_root: str | Path | None, out: str | Path | None = None, *, cache_dir: str | Path | None = None,
                   progress: bool = True, command: str | None = None, c_grid: Sequence[float] = C_GRID,
                   finetuned: Sequence[str | Path] = ()) -> dict[str, Any]:
    """The baseline on ``<data root>/goemotions``: print the table, write ``out`` (results JSON)."""
    from emofuse.data.goemotions import EKMAN_LABELS, GOEMOTIONS_LABELS, NOT_SPEAKER_DISJOINT, check_ekman_files
    from emofuse.errors import ConfigError, DataError
    from emofuse.evaluation.reports import write_json_atomic
    from emofuse.evaluation.results import machine_description
    from emofuse.paths import data_root as find_root

    base = find_root(data_root)
    if base is None:
        raise ConfigError("no data folder for goemotions: pass --data DIR or set EMOFUSE_DATA")
    root = Path(base) / "goemotions"
    if not root.is_dir():
        raise DataError(root, "GoEmotions folder not found")
    started = time.perf_counter()
    x, y28, y7 = load_features(root, Path(cache_dir) if cache_dir else None, progress)
    feature_seconds = time.perf_counter() - started
    probs28, fit28 = fit_ovr(x, y28, GOEMOTIONS_LABELS, c_grid)
    probs7, fit7 = fit_ovr(x, y7, EKMAN_LABELS, c_grid)
    row = multilabel_row("logreg_minilm_ovr", probs28, y28, probs7, features={"text": ["minilm_pooled"]},
                         train_seconds=round(fit28["fit_seconds"] + fit7["fit_seconds"], 1),
                         feature_seconds=round(feature_seconds, 1), selection={"28": fit28, "ekman": fit7})
    rows = [row] + [finetuned_row(d, root, y28) for d in finetuned]
    mismatches = {s: len(check_ekman_files(root, s)) for s in ("train", "dev", "test")} \
        if (root / "ekman").is_dir() else None
    results = {"dataset": "goemotions", "date": date.today().isoformat(), "machine": machine_description(),
               "command": command, "folds": ["test"], "seeds": [0], "labels": list(GOEMOTIONS_LABELS),
               "labels_ekman": list(EKMAN_LABELS), "results": rows, "reference": {"bert_base_paper": PAPER_BERT_BASE},
               "ekman_files_mismatches": mismatches,
               "note": "official split; thresholds and C chosen on dev; " + NOT_SPEAKER_DISJOINT}
    if progress:
        print(f"logreg_minilm_ovr: test macro-F1 {row['macro_f1_mean']:.4f} (28 classes; paper BERT-base 0.46), "
              f"micro-F1 {row['micro_f1']:.4f}, Ekman-7 macro-F1 {row['macro_f1_ekman']:.4f} (paper 0.64; "
              f"grouped from 28: {row['macro_f1_ekman_from28']:.4f})", file=sys.stderr)
    if out:
        write_json_atomic(out, results)
    return results


def finetuned_row(model_dir: str | Path, root: Path, y28: dict[str, np.ndarray]) -> dict[str, Any]:
    """The row of a fine-tuned 28-class checkpoint (`emofuse train-text finetune_minilm_goemotions`):
    its dev and test probabilities through the same token windows as training, thresholds chosen on dev
    (`multilabel_row`); its training record (seed, epochs, seconds) is copied."""
    import torch

    from emofuse.data.goemotions import GOEMOTIONS_LABELS
    from emofuse.errors import ConfigError
    from emofuse.inference.text_checkpoint import load_text_checkpoint
    from emofuse.training.text import predict_logits
    from emofuse.training.text_data import text_splits, token_datasets

    ckpt = load_text_checkpoint(model_dir)
    if ckpt.labels != list(GOEMOTIONS_LABELS) or not ckpt.multi_label:
        raise ConfigError(f"{model_dir}: not a 28-class multi-label GoEmotions checkpoint")
    splits = text_splits("goemotions", root)
    splits.samples = {p: splits.samples[p] for p in ("dev", "test")}
    sets = token_datasets(splits, ckpt.tokenizer, ckpt.context)
    probs = {p: ckpt.model.probabilities(torch.from_numpy(predict_logits(ckpt.model, sets[p]))).numpy() for p in sets}
    training = ckpt.record.get("training", {})
    recipe = (ckpt.record.get("recipe") or {}).get("name", Path(model_dir).name)
    return multilabel_row(recipe, probs, y28, features={"text": ["fine-tuned encoder"]},
                          train_seconds=training.get("train_seconds"), seed=training.get("seed"),
                          best_epoch=training.get("best_epoch"), epochs=len(training.get("history") or []),
                          checkpoint=str(model_dir))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m emofuse.experiments.goemotions --out FILE``."""
    from emofuse.cli import limit_threads
    from emofuse.errors import ConfigError, DataError

    parser = argparse.ArgumentParser(prog="python -m emofuse.experiments.goemotions", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="results JSON file")
    parser.add_argument("--data", type=Path, help="data root holding goemotions/ (default: $EMOFUSE_DATA or ../shared/data)")
    parser.add_argument("--cache", type=Path, help="feature cache (default: $EMOFUSE_CACHE)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--finetuned", type=Path, action="append", default=[], metavar="DIR",
                        help="also score a fine-tuned checkpoint (emofuse train-text finetune_minilm_goemotions)")
    args = parser.parse_args(argv)
    limit_threads(max(1, args.threads))
    command = " ".join(["python -m emofuse.experiments.goemotions", *(sys.argv[1:] if argv is None else argv)])
    try:
        run_goemotions(args.data, args.out, cache_dir=args.cache, progress=not args.quiet, command=command,
                       finetuned=tuple(args.finetuned))
    except (ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
