"""Seed ensembles: checkpoint folders with ensemble.json, averaged predictions, train/evaluate on real data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from emofuse.inference.checkpoint import checkpoint_members, save_checkpoint, save_ensemble
from emofuse.cli import main
from emofuse.errors import ConfigError, DataError
from emofuse.models import create_model
from emofuse.inputs.normalize import stats_to_tensors
from emofuse.inference.predictor import Predictor

LABELS = ["neutral", "happy", "sad"]
FACE_SPEC = {"face": {"names": ["au"], "configs": {}}}


def _face_checkpoint(path: Path, seed: int, shift: float) -> Path:
    torch.manual_seed(seed)
    model = create_model("early_concat", num_classes=3, input_dims={"face": 4}, hidden=8)
    stats = {"face": (np.full(4, shift, dtype=np.float32), np.ones(4, dtype=np.float32))}
    return save_checkpoint(path, model, labels=LABELS, features=FACE_SPEC, extras=stats_to_tensors(stats),
                           meta={"seed": seed})


@pytest.fixture
def clip(tmp_path) -> Path:
    path = tmp_path / "clip.wav"
    sf.write(path, np.zeros(1600, dtype=np.float32), 16000)
    return path


def test_ensemble_predictor_averages_members_each_with_its_own_standardisation(tmp_path, clip):
    a = _face_checkpoint(tmp_path / "ens" / "seed_0", 0, 0.0)
    b = _face_checkpoint(tmp_path / "ens" / "seed_1", 1, 0.5)
    face = np.array([0.3, -1.0, 2.0, 0.1], dtype=np.float32)
    single = [Predictor(p).predict_file(clip, face=face) for p in (a, b)]
    assert single[0].probabilities != single[1].probabilities
    expected = {lab: (single[0].probabilities[lab] + single[1].probabilities[lab]) / 2 for lab in LABELS}
    for given in ([a, b], tmp_path / "ens"):
        if not isinstance(given, list):
            save_ensemble(tmp_path / "ens", ["seed_0", "seed_1"])
        pred = Predictor(given).predict_file(clip, face=face)
        assert pred.probabilities == pytest.approx(expected)
        assert pred.label == max(expected, key=expected.get) and pred.explanations["ensemble_members"] == 2
    assert checkpoint_members(a) == [a]  # a plain checkpoint stands for itself


def test_ensemble_members_must_agree_and_manifest_is_checked(tmp_path):
    a = _face_checkpoint(tmp_path / "a", 0, 0.0)
    other = tmp_path / "b"
    save_checkpoint(other, create_model("early_concat", num_classes=2, input_dims={"face": 4}, hidden=8),
                    labels=["neutral", "happy"], features=FACE_SPEC)
    with pytest.raises(ConfigError, match="labels"):
        Predictor([a, other])
    with pytest.raises(DataError, match="not checkpoint folders: nope"):
        save_ensemble(tmp_path, ["a", "nope"])
    (tmp_path / "ensemble.json").write_text(json.dumps({"members": ["../outside"]}))
    with pytest.raises(DataError, match="outside"):
        checkpoint_members(tmp_path)
    (tmp_path / "ensemble.json").write_text("{broken")
    with pytest.raises(DataError, match="ensemble.json"):
        checkpoint_members(tmp_path)


def test_predict_cli_takes_repeated_models(tmp_path, clip, capsys):
    a = _face_checkpoint(tmp_path / "a", 0, 0.0)
    b = _face_checkpoint(tmp_path / "b", 1, 0.0)
    # the file gives no action units: a face-only model has nothing to read, for every member
    assert main(["predict", str(clip), "--model", str(a), "--model", str(b)]) == 2
    assert "none of the model's modalities" in capsys.readouterr().err


@pytest.mark.realdata
def test_train_seed_ensemble_resumes_and_evaluates(ravdess_au, tmp_path, capsys):
    recipe = tmp_path / "au_mlp.yaml"
    recipe.write_text("model: early_concat\nmodel_kwargs: {hidden: 32}\nfeatures: {face: au}\n"
                      "train: {max_epochs: 4, patience: 4, batch_size: 64}\n")
    out = tmp_path / "ens"
    args = ["train", str(recipe), "--data", str(ravdess_au), "--fold", "3", "--out", str(out), "--seeds", "0,1",
            "--quiet"]
    assert main(args) == 0
    manifest = json.loads((out / "ensemble.json").read_text())
    assert manifest["members"] == ["seed_0", "seed_1"] and manifest["meta"]["seeds"] == [0, 1]
    seeds = [json.loads((out / m / "config.json").read_text())["meta"]["seed"] for m in manifest["members"]]
    assert seeds == [0, 1]
    weights = (out / "seed_0" / "model.safetensors").stat().st_mtime_ns
    assert main(args) == 0  # rerun: members are kept, not retrained
    assert (out / "seed_0" / "model.safetensors").stat().st_mtime_ns == weights
    assert main(["evaluate", str(out), "--data", str(ravdess_au), "--fold", "3", "--report-dir", str(tmp_path / "r")]) == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["ensemble_members"] == 2 and metrics["n"] == 240
    assert main(["evaluate", str(out), "--data", str(ravdess_au), "--fold", "2"]) == 2  # trained on fold 2's test actors


def test_explain_refuses_an_ensemble_folder(tmp_path, clip):
    from emofuse.inference.explain import explain_file

    _face_checkpoint(tmp_path / "ens" / "seed_0", 0, 0.0)
    _face_checkpoint(tmp_path / "ens" / "seed_1", 1, 0.0)
    save_ensemble(tmp_path / "ens", ["seed_0", "seed_1"])
    with pytest.raises(ConfigError, match="explain one member"):
        explain_file(tmp_path / "ens", clip, tmp_path / "out")


def test_printed_prediction_says_it_is_an_ensemble(tmp_path, clip, capsys):
    from emofuse.cli import _print_predictions

    a = _face_checkpoint(tmp_path / "a", 0, 0.0)
    b = _face_checkpoint(tmp_path / "b", 1, 0.0)
    pred = Predictor([a, b]).predict_file(clip, face=np.zeros(4, dtype=np.float32))
    _print_predictions([pred], None)
    assert "seed ensemble: probabilities averaged over 2 models" in capsys.readouterr().out


@pytest.mark.realdata
def test_benchmark_with_seeds_reports_and_plots_the_seed_ensemble(ravdess_au, tmp_path):
    from emofuse.experiments.benchmark import run_benchmark

    recipe = tmp_path / "au_mlp.yaml"
    recipe.write_text("model: early_concat\nmodel_kwargs: {hidden: 16}\nfeatures: {face: au}\n"
                      "train: {max_epochs: 3, patience: 3, batch_size: 64}\n")
    results = run_benchmark("ravdess", ravdess_au, models=str(recipe), folds="1", seeds=(0, 1), progress=False,
                            report_dir=str(tmp_path / "report"))
    (row,) = results["results"]
    assert row["n_runs"] == 2 and row["seed_ensemble"]["members"] == 2
    assert np.asarray(row["seed_ensemble"]["confusion"]).sum() == 240
    assert (tmp_path / "report" / "confusion_au_mlp_ensemble.png").is_file()
