"""`emofuse train` on a tiny synthetic RAVDESS: fold 0, the speakers a checkpoint records, stale
seed-ensemble members, and logistic-regression checkpoints (no real data needed)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from emofuse.training.classical import fit_predict_logreg
from emofuse.training.recipe import train_recipe
from emofuse.cli import main
from emofuse.inputs.normalize import apply_standardizer

SR = 16000
EMOTIONS = 8
ACTORS = 24
AU_COLUMNS = ["AU01_r", "AU02_r", "AU04_r", "AU05_r"]


def _au(emotion: int, actor: int) -> np.ndarray:
    rng = np.random.default_rng(100 * actor + emotion)
    centre = np.array([np.cos(emotion), np.sin(emotion), np.cos(2 * emotion), np.sin(3 * emotion)])
    return (2 * centre + 0.3 * rng.normal(size=4)).astype(np.float32)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """24 actors x 8 emotions: a 0.25 s tone per clip (pitch by emotion) and 4 action units."""
    root = tmp_path_factory.mktemp("fake_ravdess")
    rows = [",".join(["clip_id", *AU_COLUMNS])]
    t = np.arange(SR // 4) / SR
    for actor in range(1, ACTORS + 1):
        folder = root / "ravdess-speech-16k" / f"Actor_{actor:02d}"
        folder.mkdir(parents=True)
        for emotion in range(1, EMOTIONS + 1):
            name = f"01-{emotion:02d}-01-01-01-{actor:02d}"
            wave = 0.3 * np.sin(2 * np.pi * (120 + 45 * emotion + actor) * t)
            sf.write(folder / f"03-{name}.wav", wave.astype(np.float32), SR)
            rows.append(",".join([f"01-{name}", *(f"{v:.5f}" for v in _au(emotion, actor))]))
    (root / "ravdess-openface-au").mkdir()
    (root / "ravdess-openface-au" / "au_clip_means.csv").write_text("\n".join(rows) + "\n")
    return root


def _recipe(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


MLP = "model: early_concat\nmodel_kwargs: {hidden: 8}\nfeatures: {face: au}\ntrain: {batch_size: 64, patience: 2%s}\n"
EVERY = [f"{a:02d}" for a in range(1, ACTORS + 1)]


def _meta(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "config.json").read_text())["meta"]


def test_fold_0_trains_on_every_speaker_and_records_which(data_root, tmp_path, capsys):
    recipe = _recipe(tmp_path, "mlp", MLP % "")
    out = tmp_path / "all"
    assert main(["train", str(recipe), "--data", str(data_root), "--fold", "0", "--out", str(out),
                 "--max-epochs", "1", "--quiet"]) == 0, capsys.readouterr().err
    meta = _meta(out)
    assert meta["fold"] == "all" and meta["refit"] is False and meta["test_speakers"] == []
    assert meta["val_speakers"] == ["05", "06"]  # early stopping only
    assert meta["train_speakers"] == [a for a in EVERY if a not in ("05", "06")]
    assert meta["test_metrics"] == {} and meta["val_metrics"]["n"] == 16
    # trained on every fold's test speakers: evaluate refuses every fold
    assert main(["evaluate", str(out), "--data", str(data_root), "--fold", "1"]) == 2
    assert "trained on speakers ['01', '02', '03', '04']" in capsys.readouterr().err
    refit = _recipe(tmp_path, "mlp_refit", MLP % ", refit: true")
    assert train_recipe(str(refit), "ravdess", data_root, out_dir=tmp_path / "refit", fold=0, max_epochs=1,
                        progress=False) == {}  # no held-out score
    meta = _meta(tmp_path / "refit")
    assert meta["refit"] is True and meta["train_speakers"] == EVERY and "val_metrics" not in meta
    assert main(["evaluate", str(tmp_path / "refit"), "--data", str(data_root), "--fold", "3"]) == 2


def test_a_fold_checkpoint_records_validation_speakers_as_trained_after_refit(data_root, tmp_path):
    refit = _recipe(tmp_path, "mlp_refit", MLP % ", refit: true")
    metrics = train_recipe(str(refit), "ravdess", data_root, out_dir=tmp_path / "f2", fold=2, max_epochs=1,
                           progress=False)
    meta = _meta(tmp_path / "f2")
    assert meta["test_speakers"] == ["05", "06", "07", "08"] and meta["val_speakers"] == ["09", "10"]
    assert "09" in meta["train_speakers"] and "05" not in meta["train_speakers"] and len(meta["train_speakers"]) == 20
    assert meta["test_metrics"]["n"] == 32 == metrics["n"]


def test_stale_ensemble_members_are_retrained(data_root, tmp_path, caplog):
    recipe = _recipe(tmp_path, "mlp", MLP % "")
    out = tmp_path / "ens"
    args = dict(out_dir=out, fold=1, progress=False, seeds=(0, 1))

    def stamps() -> list[int]:
        return [(out / f"seed_{s}" / "model.safetensors").stat().st_mtime_ns for s in (0, 1)]

    train_recipe(str(recipe), "ravdess", data_root, max_epochs=1, **args)
    first = stamps()
    assert [_meta(out / f"seed_{s}")["train_config"]["max_epochs"] for s in (0, 1)] == [1, 1]
    train_recipe(str(recipe), "ravdess", data_root, max_epochs=1, **args)  # same setup: resumed, kept
    assert stamps() == first
    with caplog.at_level(logging.WARNING, logger="emofuse.experiments.benchmark"):
        train_recipe(str(recipe), "ravdess", data_root, max_epochs=2, **args)  # another epoch cap
    second = stamps()
    assert all(a != b for a, b in zip(first, second))
    assert [_meta(out / f"seed_{s}")["train_config"]["max_epochs"] for s in (0, 1)] == [2, 2]
    assert "train.max_epochs 1 -> 2" in caplog.text and "seed_1" in caplog.text
    recipe.write_text(MLP.replace("hidden: 8", "hidden: 12") % "")  # same name, other content
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="emofuse.experiments.benchmark"):
        train_recipe(str(recipe), "ravdess", data_root, max_epochs=2, **args)
    assert "recipe.model_kwargs" in caplog.text and all(a != b for a, b in zip(second, stamps()))


def _proba(model: torch.nn.Module, stats, columns: dict[str, np.ndarray]) -> np.ndarray:
    std = apply_standardizer({m: list(x[:, None, :]) for m, x in columns.items()}, stats)
    inputs = {m: torch.from_numpy(np.stack(v)) for m, v in std.items()}
    masks = {m: torch.ones(len(v), 1, dtype=torch.bool) for m, v in std.items()}
    with torch.no_grad():
        return torch.softmax(model(inputs, masks).logits, -1).numpy()


@pytest.mark.parametrize("classes", [[0, 1, 2, 3], [1, 3], [0, 2, 3]], ids=["multinomial", "binary", "one_absent"])
def test_exported_logreg_gives_sklearns_probabilities(classes):
    from emofuse.training.classical import export_logreg

    rng = np.random.default_rng(0)
    y = np.array(classes * (120 // len(classes)))
    x = rng.normal(size=(len(y), 9)) + np.eye(4)[y] @ rng.normal(size=(4, 9)) * 2
    x[:, 4] = 3.0  # a constant column: scale 1
    res = fit_predict_logreg(x[:80], y[:80], x[80:100], y[80:100], x[100:], num_classes=4)
    model, stats = export_logreg(res.model, 4, {"audio": 5, "face": 4})
    got = _proba(model.eval(), stats, {"audio": x[:, :5], "face": x[:, 5:]})
    expected = np.zeros((len(x), 4))
    expected[:, res.model.classes_] = res.model.predict_proba(x)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(got[100:], res.probabilities, atol=1e-5)


def test_logreg_recipe_trains_a_checkpoint_that_predicts_and_evaluates(data_root, tmp_path, capsys):
    from emofuse.training.classical import classical_data, fit_classical_fold
    from emofuse.experiments.lineup import load_dataset
    from emofuse.data import default_labels
    from emofuse.features.store import FeatureStore
    from emofuse.evaluation.calibration import apply_temperature
    from emofuse.inference.predictor import Predictor, sample_clips

    recipe = _recipe(tmp_path, "lr", "model: logreg\nfeatures: {audio: mfcc, face: au}\n")
    out = tmp_path / "lr_ckpt"
    assert main(["train", str(recipe), "--data", str(data_root), "--fold", "1", "--out", str(out), "--quiet"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["name"] == "logistic_regression" and config["features"]["audio"]["pooled"] is True
    meta = config["meta"]
    assert meta["refit"] is True and meta["test_speakers"] == ["01", "02", "03", "04"] and "05" in meta["train_speakers"]
    assert main(["predict", str(sample_clips()[0]), "--model", str(out)]) == 0  # a speech clip
    capsys.readouterr()
    # the checkpoint gives the fitted pipeline's probabilities
    samples = load_dataset("ravdess", data_root)
    labels = default_labels("ravdess")
    data = classical_data(_load(recipe), samples, FeatureStore(samples, progress=False), labels)
    res, _ = fit_classical_fold(data, _fold1(), len(labels))
    clip = data_root / "ravdess-speech-16k" / "Actor_02" / "03-01-05-01-01-01-02.wav"  # a tone: no speech check
    i = [s.id for s in data.samples].index(clip.stem)
    pred = Predictor(out, min_speech=0).predict_file(clip, face=data.x[i, -4:])
    expected = np.zeros(len(labels))
    expected[res.model.classes_] = res.model.predict_proba(data.x[i:i + 1])[0]
    expected = apply_temperature(expected, config["calibration"]["temperature"])  # fitted on 05, 06 (#13)
    np.testing.assert_allclose([pred.probabilities[lab] for lab in labels], expected, atol=1e-5)
    assert main(["evaluate", str(out), "--data", str(data_root), "--fold", "1", "--report-dir", str(tmp_path / "r")]) == 0
    scored = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert scored["n"] == 32 and scored["wa"] == pytest.approx(meta["test_metrics"]["wa"])
    assert main(["train", str(recipe), "--data", str(data_root), "--fold", "0", "--out", str(tmp_path / "lr0"),
                 "--quiet"]) == 0
    assert _meta(tmp_path / "lr0")["train_speakers"] == EVERY  # C chosen on 05, 06, then refitted with them


def _load(path: Path):
    from emofuse.recipes import load_recipe

    return load_recipe(str(path))


def _fold1():
    from emofuse.data.splits import load_folds

    return load_folds("ravdess")[0]
