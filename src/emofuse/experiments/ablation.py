"""Ablation studies over a dataset's speaker-disjoint folds.

* `tfn_subset_grid`: the Tensor Fusion Network on every non-empty subset of the available
  modalities (T, A, V, TA, TV, AV, TAV; the same TFN class, one input for uni-modal subsets) x
  every label source: the global ``label`` and each per-modality label column
  (``label_audio``, ``label_face``, ``label_text``: the "unimodal labels" of the UniC study,
  `Sample.extra_labels`). A model trained on a column is scored on that column and, when the
  column is a per-modality one, also on the global label.
* `of_cmaer_cat_ladder`: the OF-CMAER-CAT component ladder (CNN only -> +CMAA -> +AWOM ->
  +contrastive -> +transformer) from ``configs/of_cmaer_cat_ladder.yaml``; it lives in
  `emofuse.experiments.ladder` and is re-exported here.

Both return benchmark-format results (`emofuse.evaluation.reports.check_results`). ``emofuse ablation
tfn-subsets|ladder DATASET`` runs them from the command line (`emofuse.cli.ablation`).
"""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from emofuse.data.record import Sample
from emofuse.errors import ConfigError, DataError
from emofuse.features.store import FeatureStore
from emofuse.evaluation.metrics import aggregate, classification_metrics
from emofuse.recipes import Recipe, load_recipe

log = logging.getLogger("emofuse.experiments.ablation")

#: Modality order of the subset grid and the one-letter names used in row labels.
MODALITY_LETTERS = {"text": "T", "audio": "A", "face": "V"}
#: Features of the TFN grid when none are given (those of the ``tfn_whisper_au`` recipe).
DEFAULT_TFN_FEATURES = {"audio": ["whisper"], "face": ["au"]}
GLOBAL_LABEL = "label"
#: Each modality's own per-modality label column(s): a UniC-style manifest names the face one ``label_visual``.
MODALITY_LABEL_COLUMNS = {"text": ("label_text",), "audio": ("label_audio",),
                          "face": ("label_face", "label_visual", "label_video")}


# ---------------------------------------------------------------------------------------------
# Folds, modalities and label sources.

def textless_datasets() -> tuple[str, ...]:
    """Registered corpora whose spec lists no text modality (RAVDESS: its fixed sentences carry no emotion)."""
    from emofuse.data.specs import get_dataset, list_datasets

    return tuple(n for n in list_datasets() if "text" not in get_dataset(n).modalities)


#: The ladder's public names, importable from here as before (they live in `emofuse.experiments.ladder`).
def __getattr__(name: str) -> Any:
    if name == "TEXTLESS_DATASETS":  # the older constant, now read from the dataset specs
        return textless_datasets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def speaker_folds(samples: Sequence[Sample], k: int | None = None, seed: int = 0) -> list[Any]:
    """``k`` deterministic leave-speakers-out folds of the samples' speakers: the one generator
    `emofuse.data.splits.generate.speaker_folds` (seed 0: the sorted speakers dealt round-robin into ``k``
    groups; fold j tests on group j, validates on group j+1 and trains on the rest)."""
    from emofuse.data.splits.generate import speaker_folds as generate

    return generate((s.speaker for s in samples), k, seed)


def select_folds(folds: Sequence[Any], which: str | None) -> list[Any]:
    """The folds numbered (1-based, comma-separated) in ``which``; all of them when None."""
    if not which:
        return list(folds)
    try:
        wanted = [int(x) for x in str(which).split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--folds must be comma-separated fold numbers, got {which!r}") from None
    bad = [w for w in wanted if not 1 <= w <= len(folds)]
    if bad or not wanted:
        raise ConfigError(f"fold numbers {bad or which} out of range 1..{len(folds)}")
    return [folds[w - 1] for w in wanted]


def dataset_modalities(samples: Sequence[Sample], dataset: str | None = None) -> list[str]:
    """Modalities (text, audio, face order) that at least one sample has a source for and, for a
    registered ``dataset``, that its spec provides (RAVDESS lists no text: its two fixed sentences
    carry no emotion)."""
    from emofuse.data.modalities import has_source
    from emofuse.data.specs import get_dataset, list_datasets

    have = [m for m in MODALITY_LETTERS if any(has_source(s, m) for s in samples)]
    if dataset is not None and dataset in list_datasets():
        have = [m for m in have if m in get_dataset(dataset).modalities]
    return have


def modality_subsets(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset, smallest first, in T, A, V order (T, A, V, TA, TV, AV, TAV)."""
    ordered = [m for m in MODALITY_LETTERS if m in modalities]
    unknown = sorted(set(modalities) - set(MODALITY_LETTERS))
    if unknown:
        raise ConfigError(f"unknown modalities {unknown}; the grid covers {list(MODALITY_LETTERS)}")
    if not ordered:
        raise ConfigError("no modality to ablate")
    return [c for r in range(1, len(ordered) + 1) for c in itertools.combinations(ordered, r)]


def subset_name(subset: Sequence[str]) -> str:
    """``("text", "audio")`` -> ``"TA"``."""
    return "".join(MODALITY_LETTERS[m] for m in subset)


def label_sources_in(samples: Sequence[Sample]) -> list[str]:
    """``"label"`` plus every per-sample ``label_*`` column found in ``extra_labels`` (sorted)."""
    extra = sorted({k for s in samples for k in s.extra_labels if k.startswith("label_")})
    return [GLOBAL_LABEL, *extra]


def check_label_sources(samples: Sequence[Sample], folds: Sequence[Any], labels: Sequence[str],
                        sources: Sequence[str]) -> None:
    """Raise `DataError` (naming the sample) when a sample used by a fold has no label in a
    source column, or one outside the label map — before any training starts."""
    from emofuse.data.splits import partition

    used = sorted({i for f in folds for part in partition(list(samples), f) for i in part})
    allowed = set(labels)
    for column in sources:
        for i in used:
            value = samples[i].label_for(column)
            if value is None:
                raise DataError(samples[i].id, f"no {column} (needed to train/evaluate on {column})")
            if value not in allowed:
                raise DataError(samples[i].id, f"{column} {value!r} is not in the label map {list(labels)}")


def parse_features(spec: str | None) -> dict[str, list[str]] | None:
    """``"audio=whisper,face=au"`` (``+`` joins several vector features) -> ``{"audio": ["whisper"], ...}``."""
    if not spec:
        return None
    out: dict[str, list[str]] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        modality, sep, names = part.partition("=")
        modality, names = modality.strip(), names.strip()
        if not sep or not modality or not names:
            raise ConfigError(f"--features expects modality=name[+name],...; got {part!r}")
        if modality not in MODALITY_LETTERS:
            raise ConfigError(f"--features: unknown modality {modality!r}; use {', '.join(MODALITY_LETTERS)}")
        out[modality] = [n.strip() for n in names.split("+") if n.strip()]
    if not out:
        raise ConfigError("--features is empty")
    return out


# ---------------------------------------------------------------------------------------------
# Scoring helpers.

def _metrics_against(samples: Sequence[Sample], runs: Sequence[Any], labels: Sequence[str],
                     column: str) -> list[dict[str, Any]]:
    """Re-score every run's test predictions against ``column`` of the same samples."""
    by_id = {s.id: s for s in samples}
    index = {lab: i for i, lab in enumerate(labels)}
    out = []
    for run in runs:
        y_true = [index[by_id[sid].label_for(column)] for sid in run.ids]
        out.append(classification_metrics(y_true, run.y_pred, labels))
    return out


def _metric_columns(agg: dict[str, Any]) -> dict[str, float]:
    return {f"{k}_{s}": agg[f"{k}_{s}"] for k in ("wa", "ua", "macro_f1", "weighted_f1") for s in ("mean", "std")}


def _cell(row: dict[str, Any]) -> str:
    return f"{row['wa_mean']:.3f} ± {row['wa_std']:.3f}"


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _text_table(header: Sequence[str], rows: Sequence[Sequence[str]], title: str | None = None) -> str:
    import io

    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, col in enumerate(header):
        table.add_column(col, justify="left" if i == 0 else "right")
    for r in rows:
        table.add_row(*[str(c) for c in r])
    console = Console(file=io.StringIO(), width=200, color_system=None, record=True)
    console.print(table)
    return console.export_text()


def _run_recipe(recipe: Recipe, samples: Sequence[Sample], store: FeatureStore, folds: Sequence[Any],
                labels: list[str], *, label_column: str, seeds: Sequence[int], max_epochs: int | None,
                progress: bool):
    """Train/test ``recipe`` over the folds on ``label_column`` (features standardised per fold)."""
    from emofuse.training.recipe import augmented_views, neural_setup
    from emofuse.training.kfold import run_kfold

    store.labels = labels
    feats, build, cfg = neural_setup(recipe, store)
    if max_epochs:
        cfg = cfg.replace(max_epochs=int(max_epochs))
    train_views, test_views = augmented_views(recipe, store)
    return run_kfold(list(samples), feats, labels, folds, build, cfg, label_column=label_column, seeds=seeds,
                     progress=progress, standardize=True, train_views=train_views, test_views=test_views)


# ---------------------------------------------------------------------------------------------
# TFN: modality subsets x label sources.

def tfn_subset_grid(samples: Sequence[Sample], store: FeatureStore, folds: Sequence[Any], *,
                    labels: Sequence[str], features: dict[str, list[str]] | None = None,
                    label_sources: Sequence[str] | None = None, dataset: str | None = None,
                    base_recipe: str | Path = "tfn_whisper_au", seeds: Sequence[int] = (0,),
                    max_epochs: int | None = None, progress: bool = True) -> dict[str, Any]:
    """TFN over every modality subset x label source (see module docstring).

    Args:
        store: features of ``samples`` (its ``samples`` must be the same list).
        labels: the label map (class order) shared by every label source.
        features: modality -> feature names; default `DEFAULT_TFN_FEATURES`. Modalities no
            sample has a source for (and text for `textless_datasets`) are left out.
        label_sources: training columns; default ``"label"`` + every ``label_*`` column present.
        base_recipe: recipe whose model_kwargs/train config every cell uses (its model must be tfn).

    Returns:
        Benchmark-format results: one row per (subset, label source, evaluation column) with
        ``label_source`` (training column) and ``eval_label``; ``grid`` holds the WA cells.
    """
    labels = [str(x) for x in labels]
    base = load_recipe(base_recipe)
    if base.model != "tfn":
        raise ConfigError(f"{base.name}: the subset grid needs a tfn recipe, got model {base.model!r}")
    features = {m: list(v) for m, v in (features or DEFAULT_TFN_FEATURES).items()}
    available = dataset_modalities(samples, dataset)
    dropped = [m for m in features if m not in available]
    if dropped:
        log.warning("modalities %s left out of the grid: no sample has them%s", dropped,
                    " (or their text carries no emotion)" if dataset in textless_datasets() else "")
    features = {m: v for m, v in features.items() if m in available}
    subsets = modality_subsets(list(features))
    sources = list(label_sources) if label_sources else label_sources_in(samples)
    if len(set(sources)) != len(sources):
        raise ConfigError(f"label sources listed twice: {sources}")
    check_label_sources(samples, folds, labels, sorted({*sources, GLOBAL_LABEL}))

    rows: list[dict[str, Any]] = []
    columns: list[str] = []
    for source in sources:
        columns.append(source)
        if source != GLOBAL_LABEL:
            columns.append(f"{source}→{GLOBAL_LABEL}")
    cells: dict[str, dict[str, str]] = {}
    for subset in subsets:
        name = subset_name(subset)
        recipe = base.with_features({m: features[m] for m in subset}, name=f"tfn_{name}")
        cells[name] = {}
        for source in sources:
            if progress:
                print(f"tfn {name} trained on {source}", file=sys.stderr)
            result = _run_recipe(recipe, samples, store, folds, labels, label_column=source, seeds=seeds,
                                 max_epochs=max_epochs, progress=progress)
            common = {"architecture": "tfn", "subset": name, "features": recipe.features, "label_source": source,
                      "train_seconds": float(np.mean(result.train_seconds)),
                      "train_seconds_total": float(np.sum(result.train_seconds)), "n_runs": len(result.runs),
                      "best_epochs": [r.best_epoch for r in result.runs]}
            row = {"model": f"tfn_{name}[{source}]", "modalities": list(subset), **common, "eval_label": source,
                   **_metric_columns(result.aggregate), "confusion": result.confusion().tolist()}
            rows.append(row)
            cells[name][source] = _cell(row)
            if source != GLOBAL_LABEL:
                vs_global = _metrics_against(samples, result.runs, labels, GLOBAL_LABEL)
                agg = aggregate(vs_global)
                grow = {"model": f"tfn_{name}[{source}→{GLOBAL_LABEL}]", "modalities": list(subset), **common,
                        "eval_label": GLOBAL_LABEL, **_metric_columns(agg),
                        "confusion": np.sum([m["confusion"] for m in vs_global], axis=0).tolist()}
                rows.append(grow)
                cells[name][f"{source}→{GLOBAL_LABEL}"] = _cell(grow)
    return {
        "title": "TFN modality subsets x label sources", "dataset": dataset, "date": date.today().isoformat(),
        "folds": [f.name for f in folds], "seeds": list(seeds), "labels": labels, "label_sources": sources,
        "features": features, "base_recipe": base.name,
        "grid": {"rows": [subset_name(s) for s in subsets], "columns": columns, "cells": cells},
        "supervision": supervision_summary(rows, subsets, sources),
        "results": rows,
    }


def own_label_column(modality: str, sources: Sequence[str]) -> str | None:
    """The per-modality label column of ``modality`` among ``sources`` (`MODALITY_LABEL_COLUMNS`), or None."""
    return next((c for c in MODALITY_LABEL_COLUMNS.get(modality, ()) if c in sources), None)


def supervision_summary(rows: Sequence[dict[str, Any]], subsets: Sequence[Sequence[str]],
                        sources: Sequence[str]) -> list[dict[str, Any]]:
    """Unimodal vs multimodal supervision, read off the grid's rows (nothing is trained again).

    One entry per subset that was trained on the global label: its WA on the global label when trained on
    the global (multimodal) label, and, for every per-modality source, when trained on that source (scored
    on the source and on the global label). A one-modality subset also names its own label column (the
    UniC study's unimodal label of that modality: ``label_audio`` for A, ``label_visual``/``label_face``
    for V, ``label_text`` for T) and gives those two scores as ``own``.
    """
    wa = {(r["subset"], r["label_source"], r["eval_label"]): (r["wa_mean"], r["wa_std"]) for r in rows}
    out = []
    for subset in subsets:
        name = subset_name(subset)
        if (name, GLOBAL_LABEL, GLOBAL_LABEL) not in wa:
            continue
        entry: dict[str, Any] = {"subset": name, "multimodal_on_label": wa[(name, GLOBAL_LABEL, GLOBAL_LABEL)][0],
                                 "unimodal": {}}
        for source in sources:
            if source != GLOBAL_LABEL and (name, source, source) in wa:
                entry["unimodal"][source] = {"on_source": wa[(name, source, source)][0],
                                             "on_label": wa[(name, source, GLOBAL_LABEL)][0]}
        own = own_label_column(subset[0], sources) if len(subset) == 1 else None
        if own is not None and own in entry["unimodal"]:
            entry["own_label"] = own
            entry["own"] = entry["unimodal"][own]
        out.append(entry)
    return out


def supervision_table(results: dict[str, Any], markdown: bool = False, title: str | None = None) -> str:
    """Unimodal vs multimodal supervision (`supervision_summary`) of the one-modality rows: WA on the global
    label trained on it, and trained on the modality's own label (scored on that label and on the global one)."""
    header = ["subset", "own label", "trained on label → label", "trained on own → own", "trained on own → label"]
    body = [[e["subset"], e["own_label"], f"{e['multimodal_on_label']:.3f}", f"{e['own']['on_source']:.3f}",
             f"{e['own']['on_label']:.3f}"] for e in results.get("supervision", []) if "own" in e]
    return _markdown(header, body) if markdown else _text_table(header, body, title)


def grid_table(results: dict[str, Any], markdown: bool = False, title: str | None = None) -> str:
    """The WA grid (rows = modality subsets, columns = training label / label→label evaluation)."""
    grid = results["grid"]
    header = ["subset", *grid["columns"]]
    body = [[r, *[grid["cells"][r].get(c, "") for c in grid["columns"]]] for r in grid["rows"]]
    return _markdown(header, body) if markdown else _text_table(header, body, title)


# ---------------------------------------------------------------------------------------------
# Command line.

def load_ablation_data(dataset: str, data_root: str | Path | None, *, labels: str | None = None,
                       num_folds: int | None = None, folds: str | None = None, fold_seed: int | None = None,
                       folds_dir: str | Path | None = None,
                       progress: bool = False) -> tuple[list[Sample], list[str], list[Any], str]:
    """Samples, label map, folds and dataset name for ``DATASET``: a registered corpus under
    ``data_root`` (its packaged folds and label set), or a manifest CSV path (labels from ``labels``
    or the global labels found; speaker-disjoint folds generated with ``num_folds``/``fold_seed``,
    written to and reused from ``folds_dir`` when given; see `emofuse.data.specs.load_dataset`)."""
    from emofuse.data.specs import folds_file_for, load_dataset

    if dataset == "manifest":  # the older spelling: the CSV given as --data
        dataset = str(data_root or "")
    folds_file = folds_file_for(folds_dir, dataset) if folds_dir is not None else None
    data = load_dataset(dataset, data_root, num_folds=num_folds, fold_seed=fold_seed, folds_file=folds_file,
                        progress=progress)
    label_map = list(data.labels)
    if labels:
        label_map = [x.strip() for x in labels.split(",") if x.strip()]
    return data.samples, label_map, select_folds(data.folds, folds), data.name
