"""The benchmark command end to end on real RAVDESS action units (fast: no audio extraction)."""

from __future__ import annotations

import json

import pytest

from emofuse.baselines import fit_predict_logreg
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
def test_benchmark_ravdess_action_units_writes_results(shared_data, tmp_path):
    out = tmp_path / "results.json"
    rc = main(["benchmark", "ravdess", "--data", str(shared_data), "--models", "logreg_au,logreg_au_spkn",
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


@pytest.mark.realdata
def test_train_evaluate_round_trip_on_action_units(shared_data, tmp_path):
    recipe = tmp_path / "au_mlp.yaml"
    recipe.write_text("model: early_concat\nmodel_kwargs: {hidden: 64}\nfeatures: {face: au}\n"
                      "train: {max_epochs: 15, patience: 5, batch_size: 64}\n")
    ckpt = tmp_path / "ckpt"
    assert main(["train", str(recipe), "--data", str(shared_data), "--fold", "2", "--out", str(ckpt), "--quiet"]) == 0
    config = json.loads((ckpt / "config.json").read_text())
    assert config["labels"][0] == "neutral" and config["meta"]["fold"] == "fold2"
    assert main(["evaluate", str(ckpt), "--data", str(shared_data), "--fold", "2", "--report-dir", str(tmp_path / "r")]) == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["wa"] == pytest.approx(config["meta"]["test_metrics"]["wa"])
    # evaluating on a fold whose test actors were used for training is refused
    assert main(["evaluate", str(ckpt), "--data", str(shared_data), "--fold", "1"]) == 2
