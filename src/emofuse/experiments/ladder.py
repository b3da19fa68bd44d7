"""The OF-CMAER-CAT component ladder: CNN only -> +CMAA -> +AWOM -> +contrastive -> +transformer,
one rung per line of ``configs/of_cmaer_cat_ladder.yaml`` (``emofuse ablation ladder DATASET``).

`of_cmaer_cat_ladder` returns benchmark-format results (`emofuse.evaluation.reports.check_results`), one row
per rung. Folds, label checks, training and tables are shared with the TFN subset grid in
`emofuse.experiments.ablation`, which re-exports this module's public names.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from emofuse.experiments.ablation import (
    GLOBAL_LABEL,
    _markdown,
    _run_recipe,
    _text_table,
    check_label_sources,
    dataset_modalities,
)
from emofuse.data.record import Sample
from emofuse.errors import ConfigError
from emofuse.features.store import FeatureStore
from emofuse.recipes import Recipe, check_keys, known_feature_names, load_recipe, read_config, recipe_from_dict

log = logging.getLogger("emofuse.experiments.ablation")

#: Features used by the ladder when its config names features that do not exist (yet).
FALLBACK_LADDER_FEATURES = {"audio": ["whisper"], "face": ["au"]}
_LADDER_KEYS = {"model", "base", "rungs", "description"}
_RUNG_KEYS = {"name", "model_kwargs"}


def _read_config(name_or_path: str | Path) -> tuple[dict[str, Any], str, Path | None]:
    """YAML mapping of a ladder config path or built-in config name; also its source and folder."""
    raw, _, source, folder = read_config(name_or_path, kind="ladder")
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a ladder must be a mapping")
    return raw, source, folder


def load_ladder(name_or_path: str | Path = "of_cmaer_cat_ladder") -> tuple[Recipe, list[Recipe]]:
    """The base recipe and one recipe per rung of a ladder config.

    Format: ``model``, ``base`` (a recipe YAML, relative to the ladder file, or a built-in name)
    and ``rungs``: a list of ``{name, model_kwargs}`` whose kwargs override the base's
    model_kwargs; features and train config come from the base.
    """
    raw, source, folder = _read_config(name_or_path)
    check_keys(raw, allowed=_LADDER_KEYS, required=("base", "rungs"), source=source, kind="ladder")
    base_ref = str(raw["base"])
    try:
        if folder is not None and (folder / base_ref).is_file():
            base = load_recipe(folder / base_ref)
        else:
            base = load_recipe(Path(base_ref).stem if base_ref.endswith((".yaml", ".yml")) else base_ref)
    except ConfigError as exc:
        raise ConfigError(f"{source}: base: {exc}") from None
    if raw.get("model") not in (None, base.model):
        raise ConfigError(f"{source}: ladder model {raw['model']!r} differs from its base's {base.model!r}")
    rungs_raw = raw["rungs"]
    if not isinstance(rungs_raw, list) or not rungs_raw:
        raise ConfigError(f"{source}: 'rungs' must be a non-empty list")
    rungs = []
    for i, rung in enumerate(rungs_raw):
        if not isinstance(rung, dict) or "name" not in rung or set(rung) - _RUNG_KEYS:
            raise ConfigError(f"{source}: rungs[{i}] must be a mapping with 'name' and optional 'model_kwargs'")
        kwargs = rung.get("model_kwargs") or {}
        if not isinstance(kwargs, dict):
            raise ConfigError(f"{source}: rungs[{i}].model_kwargs must be a mapping")
        r = recipe_from_dict({"name": str(rung["name"]), "model": base.model, "features": base.features,
                              "model_kwargs": {**base.model_kwargs, **kwargs}, "train": base.train,
                              "data": base.data, "description": base.description}, source=f"{source} rungs[{i}]")
        rungs.append(r)
    names = [r.name for r in rungs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: duplicate rung names {names}")
    return base, rungs


def ladder_features(configured: dict[str, list[str]], modalities: Sequence[str]) -> tuple[dict[str, list[str]], str]:
    """The features the ladder uses for a dataset with ``modalities``, and a note saying why.

    The config's features are used when every name for the dataset's modalities is a real
    feature (`known_feature_names`); otherwise `FALLBACK_LADDER_FEATURES` (Whisper frames and
    per-clip action units) for the modalities the dataset has.
    """
    known = known_feature_names()
    wanted = {m: v for m, v in configured.items() if m in modalities}
    unknown = sorted({n for v in wanted.values() for n in v} - known)
    if wanted and not unknown:
        return wanted, "features from the ladder's base config"
    fallback = {m: v for m, v in FALLBACK_LADDER_FEATURES.items() if m in modalities}
    if not fallback:
        raise ConfigError(f"the ladder's features {configured} are not available for modalities {list(modalities)}")
    note = (f"base config names unknown features {unknown}; using "
            + ", ".join(f"{m}={'+'.join(v)}" for m, v in fallback.items()))
    return fallback, note


def of_cmaer_cat_ladder(samples: Sequence[Sample], store: FeatureStore, folds: Sequence[Any], *,
                        labels: Sequence[str], ladder: str | Path = "of_cmaer_cat_ladder",
                        features: dict[str, list[str]] | None = None, dataset: str | None = None,
                        seeds: Sequence[int] = (0,), max_epochs: int | None = None,
                        progress: bool = True, finished: dict[str, dict[str, Any]] | None = None,
                        on_rung: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train every rung of the OF-CMAER-CAT ladder over the folds (one benchmark row per rung).

    ``features`` overrides the feature choice of `ladder_features`. ``finished`` maps run keys
    (`emofuse.evaluation.results.run_key`) to rows of an earlier, interrupted run: a rung whose key matches
    is reused, not retrained. ``on_rung`` receives the partial results after every rung (the CLI
    writes them, so an interrupted ladder resumes).
    """
    from emofuse.evaluation.results import run_key

    labels = [str(x) for x in labels]
    base, rungs = load_ladder(ladder)
    if features is None:
        features, note = ladder_features(base.features, dataset_modalities(samples, dataset))
        if note != "features from the ladder's base config":
            log.warning("ladder: %s", note)
    else:
        note = "features given by the caller"
    check_label_sources(samples, folds, labels, [GLOBAL_LABEL])
    rows: list[dict[str, Any]] = []
    results = {
        "title": f"{base.model} component ladder", "dataset": dataset, "date": date.today().isoformat(),
        "folds": [f.name for f in folds], "seeds": list(seeds), "labels": labels, "features": features,
        "features_note": note, "ladder": str(ladder), "results": rows,
    }
    for rung in rungs:
        recipe = rung.with_features(features)
        key = run_key(recipe, str(dataset), [f.name for f in folds], seeds, max_epochs, False)
        if finished and key in finished:
            rows.append(finished[key])
            if progress:
                print(f"ladder rung {rung.name}: reusing the finished row (run key {key})", file=sys.stderr)
            if on_rung is not None:
                on_rung(results)
            continue
        if progress:
            print(f"ladder rung {rung.name}", file=sys.stderr)
        start = time.perf_counter()
        result = _run_recipe(recipe, samples, store, folds, labels, label_column=GLOBAL_LABEL, seeds=seeds,
                             max_epochs=max_epochs, progress=progress)
        row = result.summary(f"{base.model}{rung.name}" if rung.name.startswith("+") else f"{base.model}_{rung.name}",
                             recipe.modalities, rung=rung.name, architecture=base.model, features=features,
                             model_kwargs=recipe.model_kwargs, best_epochs=[r.best_epoch for r in result.runs],
                             confusion=result.confusion().tolist())
        ensemble = result.seed_ensemble()
        if ensemble is not None:
            row["seed_ensemble"] = ensemble
        row["wall_seconds"] = time.perf_counter() - start
        row["run_key"] = key
        rows.append(row)
        if on_rung is not None:
            on_rung(results)
    return results


LADDER_COLUMNS = ("rung", "WA", "UA", "macro-F1", "train time")


def ladder_table(results: dict[str, Any], markdown: bool = False, title: str | None = None) -> str:
    """One line per rung: WA, UA, macro-F1 (mean ± std) and mean training time per run."""
    from emofuse.evaluation.reports import ENSEMBLE_COLUMNS, ensemble_cells, format_seconds

    def pm(r: dict[str, Any], k: str) -> str:
        return f"{r[f'{k}_mean']:.3f} ± {r[f'{k}_std']:.3f}"

    rows = results["results"]
    body = [[r["rung"], pm(r, "wa"), pm(r, "ua"), pm(r, "macro_f1"), format_seconds(r["train_seconds"])]
            for r in rows]
    columns = LADDER_COLUMNS
    if any(r.get("seed_ensemble") for r in rows):  # several seeds: the seed ensemble too
        columns += ENSEMBLE_COLUMNS
        for cells, r in zip(body, rows):
            cells += ensemble_cells(r)
    return _markdown(columns, body) if markdown else _text_table(columns, body, title)
