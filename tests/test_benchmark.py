"""The benchmark command end to end on real RAVDESS action units (fast: no audio extraction)."""

from __future__ import annotations

import json

import pytest

from emofuse.training.classical import fit_predict_logreg
from emofuse.cli import main


def test_logreg_chooses_c_on_validation_and_returns_all_classes():
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    y = (x[:, 0] > 0).astype(int)
    res = fit_predict_logreg(x[:40], y[:40], x[40:50], y[40:50], x[50:], num_classes=3)
    assert res.probabilities.shape == (10, 3) and np.allclose(res.probabilities[:, 2], 0)
    assert (res.probabilities.argmax(1) == y[50:]).mean() >= 0.8
    assert res.chosen_c in (0.01, 0.1, 1.0)


@pytest.mark.realdata
def test_benchmark_ravdess_action_units_writes_results(ravdess_au, tmp_path):
    out = tmp_path / "results.json"
    rc = main(["benchmark", "ravdess", "--data", str(ravdess_au), "--models", "logreg_au,logreg_au_spkn",
               "--out", str(out), "--report-dir", str(tmp_path / "report"), "--quiet"])
    assert rc == 0
    payload = json.loads(out.read_text())
    rows = {r["model"]: r for r in payload["results"]}
    assert payload["folds"] == [f"fold{i}" for i in range(1, 7)]
    for row in rows.values():
        for key in ("wa_mean", "wa_std", "ua_mean", "ua_std", "macro_f1_mean", "macro_f1_std", "train_seconds"):
            assert isinstance(row[key], float)
        assert row["modalities"] == ["face"]
    # the shared README's reference: action units + logistic regression, 6 folds = 0.551
    assert 0.50 <= rows["logreg_au"]["wa_mean"] <= 0.62
    assert rows["logreg_au_spkn"]["wa_mean"] > rows["logreg_au"]["wa_mean"]
    assert (tmp_path / "report" / "results.md").is_file()
    assert (tmp_path / "report" / "confusion_logreg_au.png").is_file()
    assert payload["complete"] is True and all(len(r["run_key"]) == 16 for r in rows.values())

    # the same command again resumes: finished rows are reused, not recomputed
    rc = main(["benchmark", "ravdess", "--data", str(ravdess_au), "--models", "logreg_au,logreg_au_spkn",
               "--out", str(out)])
    again = {r["model"]: r for r in json.loads(out.read_text())["results"]}
    assert rc == 0 and again == rows

    # an interrupted run (one row written, complete: false) resumes: only the missing row runs
    import emofuse.evaluation.results as results
    import emofuse.experiments.benchmark as bench

    ran = []
    real_run = bench.run_classical
    real_fingerprint = results.code_fingerprint

    def spy(recipe, *args, **kwargs):
        ran.append(recipe.name)
        return real_run(recipe, *args, **kwargs)

    interrupted = {**payload, "results": [rows["logreg_au"]], "complete": False}
    out.write_text(json.dumps(interrupted))
    argv = ["benchmark", "ravdess", "--data", str(ravdess_au), "--models", "logreg_au,logreg_au_spkn",
            "--out", str(out), "--quiet"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bench, "run_classical", spy)
        assert main(argv) == 0
        resumed = json.loads(out.read_text())
        assert ran == ["logreg_au_spkn"] and resumed["complete"] is True
        assert resumed["results"][0] == rows["logreg_au"]  # reused as stored, wall-clock included
        assert resumed["results"][1]["wall_seconds"] != rows["logreg_au_spkn"]["wall_seconds"]
        # changed code behind one recipe (its code fingerprint) invalidates that row only
        mp.setattr(results, "code_fingerprint",
                   lambda r, root=None: "edited" if r.name == "logreg_au" else real_fingerprint(r, root))
        ran.clear()
        assert main(argv) == 0
        assert ran == ["logreg_au"]
    # --fresh recomputes (new wall-clock measurements)
    assert main(["benchmark", "ravdess", "--data", str(ravdess_au), "--models", "logreg_au", "--out", str(out),
                 "--fresh", "--quiet"]) == 0
    fresh = json.loads(out.read_text())["results"]
    assert len(fresh) == 1 and fresh[0]["wall_seconds"] != rows["logreg_au"]["wall_seconds"]


def test_run_key_tracks_what_changes_the_numbers():
    from emofuse.evaluation.results import run_key
    from emofuse.recipes import load_recipe

    recipe = load_recipe("tfn_whisper_au")
    key = run_key(recipe, "ravdess", ["fold1"], (0,), None, False)
    assert key == run_key(load_recipe("tfn_whisper_au"), "ravdess", ["fold1"], (0,), None, False)
    changed = load_recipe("tfn_whisper_au")
    changed.model_kwargs["dropout"] = 0.123
    others = [run_key(changed, "ravdess", ["fold1"], (0,), None, False),
              run_key(recipe, "ravdess", ["fold1", "fold2"], (0,), None, False),
              run_key(recipe, "ravdess", ["fold1"], (0, 1), None, False),
              run_key(recipe, "ravdess", ["fold1"], (0,), 3, False),
              run_key(recipe, "ravdess", ["fold1"], (0,), None, True)]
    assert key not in others and len(set(others)) == len(others)


def _copy_code(root, dest):
    import shutil

    from emofuse.evaluation.results import CODE_SOURCES

    for part in sorted({p for parts in CODE_SOURCES.values() for p in parts}, key=lambda p: (root / p).is_file()):
        src = root / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
        else:
            (dest / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / part)


def test_code_fingerprint_changes_with_the_code_that_computes_a_row(tmp_path):
    """Editing a model file changes neural recipes' run keys (so resume recomputes them) and leaves
    classical ones alone; an unchanged copy of the code gives the same fingerprint (rows reused)."""
    from pathlib import Path

    import emofuse.evaluation.results as bench
    from emofuse.recipes import load_recipe

    root = Path(bench.__file__).resolve().parents[1]
    copy = tmp_path / "emofuse"
    copy.mkdir()
    _copy_code(root, copy)
    neural, classical = load_recipe("tfn_whisper_au"), load_recipe("logreg_au")
    assert bench.code_fingerprint(neural, copy) == bench.code_fingerprint(neural)
    assert bench.code_fingerprint(classical, copy) == bench.code_fingerprint(classical)

    edited = tmp_path / "edited"
    edited.mkdir()
    _copy_code(root, edited)
    tfn = edited / "models" / "tfn.py"
    tfn.write_text(tfn.read_text().replace("dropout", "dropout ", 1))
    assert bench.code_fingerprint(neural, edited) != bench.code_fingerprint(neural)
    assert bench.code_fingerprint(classical, edited) == bench.code_fingerprint(classical)
    for part, recipe in (("features/mfcc.py", classical), ("training/fit.py", neural), ("training/classical.py", classical)):
        again = tmp_path / part.replace("/", "_")
        again.mkdir()
        _copy_code(root, again)
        (again / part).write_text((again / part).read_text() + "\n# edited\n")
        assert bench.code_fingerprint(recipe, again) != bench.code_fingerprint(recipe), part


def test_a_stored_row_from_older_code_is_not_reused(tmp_path, monkeypatch):
    import emofuse.evaluation.results as bench
    from emofuse.recipes import load_recipe

    recipe = load_recipe("tfn_whisper_au")
    key = bench.run_key(recipe, "ravdess", ["fold1"], (0,), None, False)
    out = tmp_path / "results.json"
    out.write_text(json.dumps({"complete": False, "results": [{"model": recipe.name, "run_key": key}]}))
    assert key in bench.finished_rows(out)  # unchanged code: the row is reused
    monkeypatch.setattr(bench, "code_fingerprint", lambda r, root=None: "model code edited")
    assert bench.run_key(recipe, "ravdess", ["fold1"], (0,), None, False) not in bench.finished_rows(out)


def test_resume_refuses_an_unreadable_results_file(tmp_path):
    from emofuse.evaluation.results import finished_rows
    from emofuse.errors import DataError

    bad = tmp_path / "results.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="--fresh") as info:
        finished_rows(bad)
    assert info.value.path == bad
    assert finished_rows(tmp_path / "absent.json") == {}


@pytest.mark.realdata
def test_train_evaluate_round_trip_on_action_units(ravdess_au, tmp_path):
    recipe = tmp_path / "au_mlp.yaml"
    recipe.write_text("model: early_concat\nmodel_kwargs: {hidden: 64}\nfeatures: {face: au}\n"
                      "train: {max_epochs: 15, patience: 5, batch_size: 64}\n")
    ckpt = tmp_path / "ckpt"
    assert main(["train", str(recipe), "--data", str(ravdess_au), "--fold", "2", "--out", str(ckpt), "--quiet"]) == 0
    config = json.loads((ckpt / "config.json").read_text())
    assert config["labels"][0] == "neutral" and config["meta"]["fold"] == "fold2"
    assert main(["evaluate", str(ckpt), "--data", str(ravdess_au), "--fold", "2", "--report-dir", str(tmp_path / "r")]) == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["wa"] == pytest.approx(config["meta"]["test_metrics"]["wa"])
    # evaluating on a fold whose test actors were used for training is refused
    assert main(["evaluate", str(ckpt), "--data", str(ravdess_au), "--fold", "1"]) == 2
