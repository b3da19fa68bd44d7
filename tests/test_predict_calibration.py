"""A checkpoint's calibration block: temperature-scaled probabilities, the "uncertain" outcome in the
API, the CLI text and the JSON, ``predict --labels`` / ``--threshold`` / ``--model-card``, and
``emofuse train`` fitting the block on the fold's validation speakers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emofuse.cli import main
from emofuse.errors import ConfigError, DataError
from emofuse.evaluation.calibration import apply_temperature
from emofuse.inference.checkpoint import load_checkpoint, read_config, write_calibration
from emofuse.inference.predictor import Predictor, demo_checkpoint_dir, sample_clips


#: the demo model shipped before calibration existed (attention pooling, fold 1), kept as a fixture: a
#: checkpoint without a calibration block or an input plan must load and predict exactly as before
OLD_CHECKPOINT = Path(__file__).parent / "data" / "old_demo_model"


@pytest.fixture(scope="module")
def plain():
    """The old uncalibrated checkpoint's predictions of the sample clips."""
    return Predictor(OLD_CHECKPOINT).predict_files(sample_clips())


@pytest.fixture()
def calibrated(tmp_path) -> Path:
    """A copy of the old checkpoint with temperature 2 and threshold 0.6 (its sample clips' calibrated
    confidences straddle it)."""
    folder = tmp_path / "calibrated"
    shutil.copytree(OLD_CHECKPOINT, folder)
    write_calibration(folder, {"temperature": 2.0, "threshold": 0.6, "fitted_on": "test"})
    return folder


def _vector(pred) -> np.ndarray:
    return np.array(list(pred.probabilities.values()))


def test_an_uncalibrated_checkpoint_is_unchanged(plain):
    ckpt = load_checkpoint(OLD_CHECKPOINT)
    assert ckpt.calibration is None and ckpt.temperature == 1.0 and ckpt.threshold is None
    assert all(p.status == "ok" and p.threshold is None for p in plain)
    assert [p.label for p in plain] == ["happy", "sad", "angry"]
    assert all(p.confidence == max(p.probabilities.values()) for p in plain)


def test_temperature_one_gives_exactly_the_same_probabilities(plain, tmp_path):
    folder = tmp_path / "t1"
    shutil.copytree(OLD_CHECKPOINT, folder)
    write_calibration(folder, {"temperature": 1.0, "threshold": None})
    again = Predictor(folder).predict_files(sample_clips())
    assert [p.probabilities for p in again] == [p.probabilities for p in plain]
    assert all(p.status == "ok" for p in again)


def test_a_calibrated_checkpoint_scales_and_abstains(plain, calibrated):
    preds = Predictor(calibrated).predict_files(sample_clips())
    for got, ref in zip(preds, plain):
        np.testing.assert_allclose(_vector(got), apply_temperature(_vector(ref), 2.0), rtol=1e-6)
        assert got.label == ref.label and got.threshold == 0.6 and got.ok  # uncertain still has its best guess
        assert got.status == ("uncertain" if got.confidence < 0.6 else "ok")
        assert got.to_dict()["uncertain"] is (got.confidence < 0.6)
    assert {p.status for p in preds} == {"ok", "uncertain"}  # the fixture's threshold straddles them
    assert all(p.status == "ok" for p in Predictor(calibrated, threshold=0.0).predict_files(sample_clips()))


def test_an_ensemble_scales_each_member_and_averages_thresholds(plain, calibrated, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(OLD_CHECKPOINT, other)
    write_calibration(other, {"temperature": 0.5, "threshold": 0.8})
    ens = Predictor([calibrated, other])
    assert ens.threshold == pytest.approx(0.7)
    got = ens.predict_file(sample_clips()[0])
    ref = _vector(plain[0])
    expected = (apply_temperature(ref, 2.0) + apply_temperature(ref, 0.5)) / 2
    np.testing.assert_allclose(_vector(got), expected, rtol=1e-6)
    assert Predictor([calibrated, OLD_CHECKPOINT]).threshold is None  # one member has none
    with pytest.raises(ConfigError, match="probability in \\[0, 1\\]"):
        Predictor(calibrated, threshold=1.5)


def test_bad_calibration_blocks_are_refused_naming_the_field(calibrated):
    config = json.loads((calibrated / "config.json").read_text())
    for block, field in (({"temperature": -1}, "calibration.temperature"),
                         ({"temperature": 1.5, "threshold": 2}, "calibration.threshold"), ([], "calibration")):
        (calibrated / "config.json").write_text(json.dumps({**config, "calibration": block}))
        with pytest.raises(DataError, match=field.replace(".", r"\.")):
            read_config(calibrated)


def test_cli_shows_uncertain_in_the_text_and_the_json(calibrated, capsys):
    clips = [str(c) for c in sample_clips()]
    assert main(["predict", *clips, "--model", str(calibrated), "--json", "-"]) == 0
    out = capsys.readouterr()
    payload = json.loads(out.out)
    statuses = [p["status"] for p in payload["predictions"]]
    assert "uncertain" in statuses and payload["uncertain"] == statuses.count("uncertain")
    assert payload["ok"] == 3 and payload["failed"] == 0
    shaky = next(p for p in payload["predictions"] if p["uncertain"])
    assert shaky["label"] is not None and shaky["confidence"] < shaky["threshold"] == 0.6
    text = " ".join(out.err.split())  # rich wraps lines to the terminal width
    assert "→ uncertain (best guess angry)" in text and "below its confidence threshold 0.60" in text
    assert main(["predict", *clips, "--model", str(calibrated), "--threshold", "0", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["uncertain"] == 0
    assert main(["predict", clips[0], "--threshold", "1.5"]) == 2
    assert "--threshold is a probability" in capsys.readouterr().err


def test_cli_labels_renormalises_over_a_label_space(capsys):
    clip = str(sample_clips()[0])
    assert main(["predict", clip, "--labels", "meld", "--json", "-"]) == 0
    out = capsys.readouterr()
    pred = json.loads(out.out)["predictions"][0]
    assert list(pred["probabilities"]) == ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
    assert pred["label"] == "joy" and sum(pred["probabilities"].values()) == pytest.approx(1.0)
    assert pred["explanations"]["label_space"]["dropped"].keys() == {"calm"}
    assert "label space meld: renormalised without calm" in " ".join(out.err.split())
    assert main(["predict", clip, "--labels", "nine"]) == 2
    assert "unknown label space 'nine'" in capsys.readouterr().err


def test_the_shipped_model_is_calibrated_and_has_a_model_card(capsys):
    ckpt = load_checkpoint(demo_checkpoint_dir())
    assert ckpt.temperature > 0 and ckpt.threshold is not None and "validation speakers" in ckpt.calibration["fitted_on"]
    assert main(["predict", "--model-card"]) == 0
    card = capsys.readouterr().out
    assert card.startswith("# Model card") and "attention_pooling_audio_robust" in card and "non-commercial" in card


def test_model_card_is_printed_or_its_absence_named(calibrated, capsys):
    assert main(["predict", "--model-card", "--model", str(calibrated)]) == 2
    err = capsys.readouterr().err
    assert "no model card" in err and str(calibrated / "MODEL_CARD.md") in err
    (calibrated / "MODEL_CARD.md").write_text("# Model card\n\nIntended use: testing.")
    assert main(["predict", "--model-card", "--model", str(calibrated)]) == 0
    assert capsys.readouterr().out == "# Model card\n\nIntended use: testing.\n"
    assert main(["predict", "x.wav", "--model-card"]) == 2
    assert "predicts nothing" in capsys.readouterr().err


# ---------------------------------------------------------------- emofuse train fits the block

AU = ["AU01_r", "AU02_r", "AU04_r", "AU05_r"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """24 actors x 8 emotions: a short tone per clip and 4 noisy action units that depend on the emotion."""
    root = tmp_path_factory.mktemp("fake_ravdess")
    rows = [",".join(["clip_id", *AU])]
    t = np.arange(4000) / 16000
    for actor in range(1, 25):
        folder = root / "ravdess-speech-16k" / f"Actor_{actor:02d}"
        folder.mkdir(parents=True)
        for emotion in range(1, 9):
            name = f"01-{emotion:02d}-01-01-01-{actor:02d}"
            sf.write(folder / f"03-{name}.wav", (0.3 * np.sin(2 * np.pi * (150 + 40 * emotion) * t)).astype(np.float32),
                     16000)
            rng = np.random.default_rng(100 * actor + emotion)
            au = np.array([np.cos(emotion), np.sin(emotion), np.cos(2 * emotion), np.sin(3 * emotion)])
            rows.append(",".join([f"01-{name}", *(f"{v:.5f}" for v in 2 * au + rng.normal(size=4))]))
    (root / "ravdess-openface-au").mkdir()
    (root / "ravdess-openface-au" / "au_clip_means.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize("recipe", [
    "model: early_concat\nmodel_kwargs: {hidden: 8}\nfeatures: {face: au}\ntrain: {batch_size: 64, patience: 2}\n",
    "model: logreg\nfeatures: {face: au}\n",
], ids=["neural", "logreg"])
def test_train_fits_calibration_on_the_validation_speakers(data_root, tmp_path, recipe):
    path = tmp_path / "r.yaml"
    path.write_text(recipe)
    out = tmp_path / "ckpt"
    assert main(["train", str(path), "--data", str(data_root), "--fold", "1", "--out", str(out),
                 "--max-epochs", "2", "--quiet"]) == 0
    block = read_config(out)["calibration"]
    assert block["temperature"] > 0 and 0 <= block["threshold"] <= 1
    if "logreg" in recipe:  # out-of-fold over the training + validation speakers (fold 1: all but actors 1-4)
        assert block["fitted_on"].startswith("out-of-fold predictions") and block["n_validation"] == 8 * 20
    else:
        assert block["fitted_on"].startswith("validation speakers 05, 06") and block["n_validation"] == 16
    assert block["ece_after"] <= block["ece_before"] + 1e-9
    assert load_checkpoint(out).temperature == block["temperature"]
