"""``emofuse predict FILE --source MODALITY=PATH``: further inputs of one file (a signal file, the
clip's action units) reach `Predictor.predict_file(..., sources=...)`; bad options fail with one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from emofuse.inference.checkpoint import save_checkpoint
from emofuse.cli import main
from emofuse.features import get_extractor
from emofuse.features.signal import write_signal_file
from emofuse.inputs import InputPlan
from emofuse.inputs.plan import ModalityPlan
from emofuse.models import create_model
from emofuse.inference.predictor import Predictor

SR = 16000
LABELS = ["neutral", "happy", "sad"]
AU_DIM = 4


def _tone(path: Path, freq: float = 240.0, seconds: float = 0.5) -> Path:
    t = np.arange(int(seconds * SR)) / SR
    noise = 0.02 * np.random.default_rng(int(freq)).normal(size=t.size)
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32), SR, subtype="FLOAT")
    return path


def _checkpoint(path: Path, other: str, dim: int) -> Path:
    """An untrained early-fusion model reading audio (mfcc) and ``other`` ("signal": signal_stats,
    "face": au)."""
    feature = {"signal": "signal_stats", "face": "au"}[other]
    plan = InputPlan({"audio": ModalityPlan(("mfcc",), {"mfcc": get_extractor("mfcc").config()}),
                      other: ModalityPlan((feature,), {feature: get_extractor(feature).config()})})
    torch.manual_seed(0)
    model = create_model("early_concat", num_classes=len(LABELS),
                         input_dims={"audio": get_extractor("mfcc").dim, other: dim}, hidden=8)
    return save_checkpoint(path, model, labels=LABELS, features=plan.feature_specs(), input_plan=plan)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sources")
    rng = np.random.default_rng(0)
    signal = write_signal_file(root / "clip.npz", rng.normal(size=(300, 3)), 50.0)
    dim = 5 * 3  # signal_stats: mean, std, min, max and slope of each of the 3 channels
    au = root / "au.npy"
    np.save(au, rng.normal(size=AU_DIM).astype(np.float32))
    return {"clip": _tone(root / "clip.wav"), "clip2": _tone(root / "clip2.wav", 300.0), "signal": signal, "au": au,
            "signal_ckpt": _checkpoint(root / "signal_ckpt", "signal", dim),
            "face_ckpt": _checkpoint(root / "face_ckpt", "face", AU_DIM)}


def _predict(args: list[str], tmp_path: Path, capsys) -> tuple[int, dict | None, str]:
    out = tmp_path / "p.json"
    rc = main(["predict", *args, "--min-speech", "0", "--json", str(out)])
    err = capsys.readouterr().err
    return rc, json.loads(out.read_text()) if out.exists() else None, err


def test_a_signal_file_reaches_the_model(files, tmp_path, capsys):
    rc, result, _ = _predict([str(files["clip"]), "--model", str(files["signal_ckpt"]),
                              "--source", f"signal={files['signal']}"], tmp_path, capsys)
    assert rc == 0
    (pred,) = result["predictions"]
    assert pred["modalities_used"] == ["audio", "signal"]
    expected = Predictor(files["signal_ckpt"], min_speech=0).predict_file(files["clip"],
                                                                          sources={"signal": files["signal"]})
    assert pred["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)
    rc, without, _ = _predict([str(files["clip"]), "--model", str(files["signal_ckpt"])], tmp_path, capsys)
    assert rc == 0 and without["predictions"][0]["modalities_used"] == ["audio"]  # the option made the difference


def test_action_units_are_read_from_a_npy_row(files, tmp_path, capsys):
    rc, result, err = _predict([str(files["clip"]), "--model", str(files["face_ckpt"]),
                                "--source", f"face={files['au']}"], tmp_path, capsys)
    assert rc == 0 and "face was not used" not in err
    (pred,) = result["predictions"]
    assert pred["modalities_used"] == ["audio", "face"]
    expected = Predictor(files["face_ckpt"], min_speech=0).predict_file(files["clip"], face=np.load(files["au"]))
    assert pred["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)


def test_a_modality_the_model_does_not_read_is_ignored_with_a_warning(files, tmp_path, capsys):
    rc, result, err = _predict([str(files["clip"]), "--model", str(files["face_ckpt"]),
                                "--source", f"signal={files['signal']}"], tmp_path, capsys)
    assert rc == 0 and result["ok"] == 1
    assert f"warning: the model reads no signal (audio, face); --source signal={files['signal']} ignored" in err


@pytest.mark.parametrize("option, message", [
    ("signal", "--source must be MODALITY=PATH (e.g. signal=clip.npz), got 'signal'"),
    ("=clip.npz", "--source must be MODALITY=PATH"),
    ("heart=x.npz", "unknown modality 'heart'; modalities: audio, face, text"),
    ("audio=x.wav", "--source audio: the recording is the FILE argument"),
    ("text=x.txt", "--source text: give the transcript with --text"),
    ("meta=x.csv", "--source meta: it comes from the sample fields, not a file"),
    ("signal=missing.npz", "missing.npz: --source signal: file not found"),
])
def test_bad_source_options_fail_in_one_line(files, tmp_path, capsys, option, message):
    rc, result, err = _predict([str(files["clip"]), "--model", str(files["signal_ckpt"]), "--source", option],
                               tmp_path, capsys)
    assert rc == 2 and result is None
    assert message in err and len(err.strip().splitlines()) == 1


def test_source_needs_exactly_one_file(files, tmp_path, capsys):
    source = ["--source", f"signal={files['signal']}", "--model", str(files["signal_ckpt"])]
    for given in ([str(files["clip"]), str(files["clip2"])], []):
        rc, result, err = _predict([*given, *source], tmp_path, capsys)
        assert rc == 2 and result is None
        assert f"--source gives more inputs of one file, got {len(given)} files: give exactly one FILE" in err


def test_a_modality_given_twice_or_a_folder_is_refused(files, tmp_path, capsys):
    twice = ["--source", f"signal={files['signal']}", "--source", f"signal={files['signal']}"]
    rc, _, err = _predict([str(files["clip"]), *twice], tmp_path, capsys)
    assert rc == 2 and "--source signal is given twice" in err
    rc, _, err = _predict([str(files["clip"]), "--source", f"signal={tmp_path}"], tmp_path, capsys)
    assert rc == 2 and f"{tmp_path}: --source signal: not a file" in err


def test_a_bad_action_unit_file_is_named(files, tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.array([1.0, np.nan, 0.0, 2.0], dtype=np.float32))
    rc, _, err = _predict([str(files["clip"]), "--model", str(files["face_ckpt"]), "--source", f"face={bad}"],
                          tmp_path, capsys)
    assert rc == 2 and f"{bad}: --source face: contains NaN or inf" in err
