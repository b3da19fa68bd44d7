"""The MELD text benchmark (``emofuse benchmark meld``): the official split, 7 classes, text only.

Rows, in one command and one results file: the majority class, TF-IDF + logistic regression, frozen
all-MiniLM-L6-v2 sentence vectors + logistic regression, and every fine-tuned text recipe asked for
(default: MiniLM fine-tuned without context, and with the previous turns and speaker names). Each
fine-tuned row runs once per seed; the logistic and majority rows are deterministic (their std over
seeds is 0 by construction and they run once). C is chosen on the dev split by weighted F1 (the
headline metric), never on test. The results file is rewritten after every seed, so an interrupted run
resumes where it stopped (finished seeds are reused when the row's settings and code are unchanged).

MELD's official split is dialogue-disjoint, NOT speaker-disjoint (the six main characters speak in
every part): these scores are not speaker-independent, and every row says so.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from emofuse.errors import ConfigError

DEFAULT_TEXT_ROWS = ("majority", "tfidf_logreg", "minilm_logreg", "finetune_minilm_meld", "finetune_minilm_meld_context")
BASELINES = ("majority", "tfidf_logreg", "minilm_logreg")
C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)


def load_split(root: str | Path) -> Any:
    """MELD's official split (`emofuse.training.text_data.text_splits`)."""
    from emofuse.training.text_data import text_splits

    return text_splits("meld", root)


def scores(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict[str, Any]:
    from emofuse.evaluation.metrics import classification_metrics

    return classification_metrics(y_true, y_pred, labels)


# -- baselines -------------------------------------------------------------------------------------

def _choose_logreg(x_train, y_train, x_dev, y_dev, seed: int) -> tuple[Any, dict[str, Any]]:
    """Logistic regression with C and class weighting chosen on dev weighted F1; fitted on train."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    best = (-1.0, None, {})
    for weighting in (None, "balanced"):
        for c in C_GRID:
            model = LogisticRegression(C=c, max_iter=2000, class_weight=weighting, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(x_train, y_train)
            f1 = float(f1_score(y_dev, model.predict(x_dev), average="weighted"))
            if f1 > best[0]:
                best = (f1, model, {"C": c, "class_weight": weighting or "none", "dev_weighted_f1": f1})
    return best[1], best[2]


def run_baseline(name: str, data: Any, cache_dir: str | None, progress: bool) -> dict[str, Any]:
    """One deterministic baseline row: test scores and the settings chosen on dev."""
    start = time.perf_counter()
    chosen: dict[str, Any] = {}
    if name == "majority":
        majority = int(np.bincount(data.targets["train"]).argmax())
        pred = np.full_like(data.targets["test"], majority)
        chosen = {"class": data.labels[majority]}
    else:
        x = tfidf_matrices(data) if name == "tfidf_logreg" else minilm_matrices(data, cache_dir, progress)
        model, chosen = _choose_logreg(x["train"], data.targets["train"], x["dev"], data.targets["dev"], seed=0)
        pred = model.predict(x["test"])
    seconds = time.perf_counter() - start
    return {"test": scores(data.targets["test"], pred, data.labels), "train_seconds": seconds, "chosen": chosen}


def tfidf_matrices(data: Any) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True)
    texts = {p: [s.sources["text"] for s in ss] for p, ss in data.samples.items()}
    return {"train": vec.fit_transform(texts["train"]), "dev": vec.transform(texts["dev"]),
            "test": vec.transform(texts["test"])}


def minilm_matrices(data: Any, cache_dir: str | None, progress: bool) -> dict[str, np.ndarray]:
    """Frozen all-MiniLM-L6-v2 sentence vectors (``minilm_pooled``, cached by the feature driver)."""
    from emofuse.features.store import FeatureStore

    out = {}
    for part, samples in data.samples.items():
        arrays = FeatureStore(samples, cache_dir, progress=progress).get("minilm_pooled")
        out[part] = np.stack([np.asarray(a).reshape(-1) for a in arrays])
    return out


# -- fine-tuned rows -------------------------------------------------------------------------------

def run_finetune_seed(recipe: Any, data: Any, seed: int, *, max_epochs: int | None = None,
                      save_to: Path | None = None, work_dir: Path | None = None) -> dict[str, Any]:
    """Fine-tune ``recipe`` with ``seed`` on train (best epoch on dev) and score test."""
    from emofuse.encoders.base import import_transformers
    from emofuse.training.text import build_classifier, finetune_text, predict_logits
    from emofuse.training.text_data import token_datasets

    tokenizer = import_transformers().AutoTokenizer.from_pretrained(str(recipe.encoder_folder()), local_files_only=True)
    sets = token_datasets(data, tokenizer, recipe.context)
    if max_epochs is not None:
        recipe.train = {**recipe.train, "max_epochs": int(max_epochs)}
    import lightning

    lightning.seed_everything(seed, verbose=False)
    model = build_classifier(recipe, len(data.labels))
    fit = finetune_text(recipe, sets["train"], sets["dev"], len(data.labels), seed=seed, work_dir=work_dir, model=model)
    test_pred = predict_logits(fit.model, sets["test"]).argmax(-1)
    dev_pred = predict_logits(fit.model, sets["dev"]).argmax(-1)
    epochs = len(fit.history) or 1
    if save_to is not None:
        from emofuse.inference.text_checkpoint import save_text_checkpoint

        save_text_checkpoint(save_to, fit.model, tokenizer, data.labels, recipe.context, recipe=recipe.to_dict(),
                             dataset="meld", training={"seed": seed, "best_epoch": fit.best_epoch,
                                                       "history": fit.history, "train_seconds": fit.train_seconds})
    return {"test": scores(data.targets["test"], test_pred, data.labels), "dev": scores(data.targets["dev"], dev_pred, data.labels),
            "train_seconds": fit.train_seconds, "seconds_per_epoch": fit.train_seconds / epochs,
            "best_epoch": fit.best_epoch, "epochs": epochs, "history": fit.history,
            "tokens_per_window_mean": float(np.mean(sets["train"].lengths))}


# -- the command -----------------------------------------------------------------------------------

def row_key(name: str, settings: dict[str, Any]) -> str:
    """What a row's numbers depend on: its settings and the code that computes it."""
    from emofuse.evaluation.results import _source_digest

    root = Path(__file__).resolve().parents[1]
    code = _source_digest(root, ("experiments/text_benchmark.py", "training/text.py", "inputs/conversation.py",
                                 "encoders/text_classifier.py", "evaluation/metrics.py"))
    blob = json.dumps({"name": name, "settings": settings, "code": code}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def summarise(name: str, per_seed: list[dict[str, Any]], seeds: list[int], extra: dict[str, Any]) -> dict[str, Any]:
    """A results row: mean ± std over seeds of the test scores (the shared results-JSON fields)."""
    from emofuse.data.meld import NOT_SPEAKER_DISJOINT
    from emofuse.evaluation.metrics import aggregate

    agg = aggregate([r["test"] for r in per_seed])
    row = {"model": name, "modalities": ["text"], "dataset": "meld", "split": "official (train / dev / test)",
           "seeds": seeds, "n_runs": len(per_seed), "note": NOT_SPEAKER_DISJOINT,
           **{k: agg[k] for k in agg if k.split("_mean")[0].split("_std")[0] in
              ("wa", "ua", "macro_f1", "weighted_f1", "macro_precision", "macro_recall")},
           "train_seconds": float(np.mean([r["train_seconds"] for r in per_seed])),
           "per_seed": [{k: v for k, v in r.items() if k not in ("history",)} for r in per_seed], **extra}
    return row


def text_rows(models: str) -> tuple[str, ...] | None:
    """The text line-up ``--models`` selects: ``default`` the whole of `DEFAULT_TEXT_ROWS`; a list whose
    names are all baselines or text recipes (built-in names or YAML files); None otherwise (the names
    are ordinary recipes, run by the k-fold benchmark)."""
    from emofuse.training.text import text_recipe_names

    if models == "default":
        return DEFAULT_TEXT_ROWS
    names = tuple(filter(None, map(str.strip, models.split(","))))
    known = set(BASELINES) | set(text_recipe_names())
    if names and all(n in known or (n.endswith((".yaml", ".yml")) and _is_text_recipe(n)) for n in names):
        return names
    return None


def _is_text_recipe(path: str) -> bool:
    try:
        from emofuse.training.text import load_text_recipe

        load_text_recipe(path)
        return True
    except ConfigError:
        return False


def run_text_benchmark(root: str | Path, *, rows: tuple[str, ...] = DEFAULT_TEXT_ROWS, out: str | Path | None = None,
                       seeds: tuple[int, ...] = (0, 1, 2), cache_dir: str | None = None, max_epochs: int | None = None,
                       progress: bool = True, resume: bool = True, save_dir: str | Path | None = None) -> dict[str, Any]:
    """Run the MELD text line-up (see the module docstring) and return the results object."""
    from emofuse.evaluation.reports import write_json_atomic
    from emofuse.evaluation.results import finished_rows, machine_description
    from emofuse.training.text import load_text_recipe

    data = load_split(root)
    out_path = Path(out) if out else None
    previous = finished_rows(out_path) if resume else {}
    results = {"dataset": "meld", "protocol": "text (official split)", "date": date.today().isoformat(),
               "machine": machine_description(), "command": " ".join(["emofuse", *sys.argv[1:]]),
               "folds": ["official"], "labels": data.labels, "seeds": list(seeds), "results": []}
    for name in rows:
        if name in BASELINES:
            settings = {"kind": name, "grid": list(C_GRID)}
            key = row_key(name, settings)
            runs = previous.get(key, {}).get("per_seed") or [run_baseline(name, data, cache_dir, progress)]
            row = summarise(name, runs, [0], {"run_key": key, "deterministic": True, "settings": settings})
        else:
            recipe = load_text_recipe(name)
            source, name = name, recipe.name
            settings = {**recipe.to_dict(), "max_epochs_override": max_epochs}
            key = row_key(name, settings)
            runs = [r for r in previous.get(key, {}).get("per_seed", []) if r.get("seed") in seeds]
            for seed in seeds:
                if any(r.get("seed") == seed for r in runs):
                    continue
                save = Path(save_dir) / name if save_dir is not None and seed == seeds[0] else None
                work = out_path.with_suffix(".work") / f"{name}-seed{seed}" if out_path is not None else None
                run = run_finetune_seed(load_text_recipe(source), data, seed, max_epochs=max_epochs, save_to=save,
                                        work_dir=work)
                runs.append({"seed": seed, **run})
                if work is not None:
                    import shutil

                    shutil.rmtree(work, ignore_errors=True)  # the seed is in the results file now
                partial = summarise(name, runs, [r["seed"] for r in runs], {"run_key": key, "complete": False})
                _write(out_path, results, partial, write_json_atomic)
                if progress:
                    print(f"{name} seed {seed}: weighted F1 {run['test']['weighted_f1']:.3f} "
                          f"({run['train_seconds']:.0f} s)", file=sys.stderr)
            row = summarise(name, runs, [r["seed"] for r in runs], {"run_key": key, "settings": settings,
                                                                     "complete": True})
        results["results"] = [r for r in results["results"] if r["model"] != name] + [row]
        if out_path is not None:
            write_json_atomic(out_path, {**results, "complete": False})
    results["complete"] = True
    if out_path is not None:
        write_json_atomic(out_path, results)
    print(format_text_table(results))
    return results


def _write(out_path: Path | None, results: dict[str, Any], partial: dict[str, Any], write: Any) -> None:
    if out_path is None:
        return
    rows = [r for r in results["results"] if r["model"] != partial["model"]] + [partial]
    write(out_path, {**results, "results": rows, "complete": False})


def format_text_table(results: dict[str, Any]) -> str:
    """A Markdown table: weighted F1 (headline), WA, UA, macro-F1 (mean ± std over seeds), train time."""
    lines = ["MELD official test split, 7 classes, text only (NOT speaker-independent: the Friends cast "
             "speaks in train, dev and test)", "",
             "| model | runs | weighted F1 | WA | UA | macro-F1 | train s |", "|---|---|---|---|---|---|---|"]
    for r in results["results"]:
        cells = [f"{r[f'{k}_mean']:.3f} ± {r[f'{k}_std']:.3f}" for k in ("weighted_f1", "wa", "ua", "macro_f1")]
        lines.append(f"| {r['model']} | {r['n_runs']} | " + " | ".join(cells) + f" | {r['train_seconds']:.0f} |")
    return "\n".join(lines)
