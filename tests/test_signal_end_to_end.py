"""A new source, end to end: a synthetic multichannel physiological-like ``signal`` modality, one
``.npz`` per clip named by a manifest's ``signal`` column, is extracted and cached, benchmarked in a
fusion recipe written as YAML, trained, evaluated and predicted through the commands a user runs
(`emofuse.cli.main`) and `emofuse.inference.predictor.Predictor` (docs/features.md, "A new modality:
physiological signals"). The signal carries the label and the audio does not, so the scores prove
the signal reached the model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emofuse.cli import main
from emofuse.features.signal import write_signal_file

SR = 16000
RATE = 32.0  # signal samples per second
SECONDS = 4.0
CHANNELS = 3
LABELS = ["angry", "calm", "happy"]
SPEAKERS = [f"p{i}" for i in range(1, 7)]
TAKES = 3


def _signal(label: str, rng: np.random.Generator) -> np.ndarray:
    """[128, 3]: channel 0 a label-dependent level ("skin conductance"), channel 1 a label-dependent
    oscillation ("heart rate"), channel 2 noise only."""
    k = LABELS.index(label)
    t = np.arange(int(RATE * SECONDS)) / RATE
    level = 2.0 * k + 0.3 * rng.standard_normal()
    beat = np.sin(2 * np.pi * (1.0 + 1.5 * k) * t + rng.uniform(0, 2 * np.pi))
    noise = 0.3 * rng.standard_normal((t.size, CHANNELS))
    return np.stack([level + 0 * t, beat, 0 * t], axis=1) + noise


def _audio(rng: np.random.Generator) -> np.ndarray:
    """0.3 s of a random tone plus noise: the same distribution whatever the label."""
    t = np.arange(int(0.3 * SR)) / SR
    wave = 0.3 * np.sin(2 * np.pi * rng.uniform(150, 450) * t) + 0.05 * rng.standard_normal(t.size)
    return wave.astype(np.float32)


def _write_clip(folder: Path, name: str, label: str, rng: np.random.Generator) -> tuple[Path, Path]:
    wav, npz = folder / f"{name}.wav", folder / f"{name}.npz"
    sf.write(wav, _audio(rng), SR)
    write_signal_file(npz, _signal(label, rng), RATE)
    return wav, npz


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """6 speakers x 3 labels x 3 takes (54 clips) in physio.csv, plus an unlisted clip held.wav/.npz (happy)."""
    root = tmp_path_factory.mktemp("physio")
    (root / "clips").mkdir()
    rng = np.random.default_rng(0)
    lines = ["id,speaker,label,audio,signal"]
    for speaker in SPEAKERS:
        for label in LABELS:
            for take in range(TAKES):
                sid = f"{speaker}_{label}_{take}"
                _write_clip(root / "clips", sid, label, rng)
                lines.append(f"{sid},{speaker},{label},clips/{sid}.wav,clips/{sid}.npz")
    (root / "physio.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _write_clip(root, "held", "happy", rng)
    return root


RECIPE = """\
# audio (MFCC frames) + physiological signal (per-channel window means/stds), attention pooling
model: attention_pooling
features: {audio: [mfcc], signal: [signal_frames]}
train: {lr: 1.0e-2, batch_size: 8, max_epochs: 30, patience: 30}
"""
LOGREG = "model: logreg\nfeatures: {signal: [signal_frames]}\n"


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main(["--threads", "1", *args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _count_computed(monkeypatch) -> list[int]:
    """Wrap the signal extractors' compute step: the list's one entry counts the files they read."""
    from emofuse.features import signal

    calls = [0]
    original = signal._SignalBase.process

    def counting(self, inputs):
        calls[0] += len(inputs)
        return original(self, inputs)

    monkeypatch.setattr(signal._SignalBase, "process", counting)
    return calls


def test_signal_extract_caches_and_a_second_run_computes_nothing(corpus, tmp_path, capsys, monkeypatch):
    csv, cache = str(corpus / "physio.csv"), tmp_path / "cache"
    calls = _count_computed(monkeypatch)
    command = ["extract", csv, "--features", "signal_stats,signal_frames", "--cache", str(cache), "--quiet"]
    rc, out, err = _run(command, capsys)
    assert rc == 0, err
    assert "signal_stats: 54/54 clips cached" in out and "signal_frames: 54/54 clips cached" in out
    assert calls[0] == 108
    entries = sorted(p for p in cache.rglob("*") if p.is_file())
    assert any("signal_stats" in str(p) for p in entries) and any("signal_frames" in str(p) for p in entries)
    stamps = {p: p.stat().st_mtime_ns for p in entries}

    rc, out, err = _run(command, capsys)
    assert rc == 0, err
    assert "signal_stats: 54/54 clips cached" in out
    assert calls[0] == 108  # nothing recomputed
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()} == stamps

    from emofuse.data.specs import load_dataset
    from emofuse.features.driver import extract

    samples = load_dataset(csv, make_folds=False).samples
    stats = extract("signal_stats", samples, cache_dir=str(cache), progress=False)
    frames = extract("signal_frames", samples, cache_dir=str(cache), progress=False)
    assert calls[0] == 108
    assert all(a.shape == (1, 5 * CHANNELS) for a in stats)
    assert all(a.shape == (16, 2 * CHANNELS) for a in frames)  # 4 s at the default 4 frames/s


def test_signal_fusion_benchmark_train_evaluate_predict(corpus, tmp_path, capsys, monkeypatch):
    csv, cache = str(corpus / "physio.csv"), str(tmp_path / "cache")
    recipe, logreg = tmp_path / "physio_fusion.yaml", tmp_path / "logreg_signal.yaml"
    recipe.write_text(RECIPE, encoding="utf-8")
    logreg.write_text(LOGREG, encoding="utf-8")

    # benchmark: the fusion recipe and a logistic baseline on the signal, 3 speaker-disjoint folds
    results = tmp_path / "results" / "results.json"
    rc, out, err = _run(["benchmark", csv, "--models", f"{recipe},{logreg}", "--num-folds", "3",
                         "--max-epochs", "30", "--out", str(results), "--cache", cache, "--quiet"], capsys)
    assert rc == 0, err
    rows = {r["model"]: r for r in json.loads(results.read_text())["results"]}
    assert set(rows) == {"physio_fusion", "logreg_signal"}, rows.keys()
    for row in rows.values():  # chance is 1/3: only the signal tells the labels apart
        assert row["wa_mean"] > 0.8, row

    # train on fold 1, evaluate it (spying on the class probabilities the evaluation computes)
    ckpt = tmp_path / "ckpt"
    rc, out, err = _run(["train", str(recipe), "--dataset", csv, "--fold", "1", "--num-folds", "3",
                         "--max-epochs", "30", "--out", str(ckpt), "--cache", cache, "--quiet"], capsys)
    assert rc == 0, err
    config = json.loads((ckpt / "config.json").read_text())
    test_speakers = config["meta"]["test_speakers"]

    from emofuse.evaluation import evaluate

    seen: list[tuple[list[str], np.ndarray]] = []
    original = evaluate.view_averaged_probs

    def spy(member, plan, store, y_true):
        probs = original(member, plan, store, y_true)
        seen.append(([s.id for s in store.samples], probs))
        return probs

    monkeypatch.setattr(evaluate, "view_averaged_probs", spy)
    rc, out, err = _run(["evaluate", str(ckpt), "--dataset", csv, "--fold", "1", "--cache", cache], capsys)
    assert rc == 0, err
    scores = json.loads(out)
    assert scores["n"] == len(test_speakers) * len(LABELS) * TAKES and scores["wa"] > 0.8
    (ids, eval_probs), = seen

    # predict: an unlisted, unambiguous clip with its signal, and one test clip as evaluate saw it
    from emofuse.inference.predictor import Predictor

    predictor = Predictor(ckpt, min_speech=0)
    held = predictor.predict_file(corpus / "held.wav", sources={"signal": corpus / "held.npz"})
    assert held.ok and held.label == "happy", held
    assert "signal" in held.modalities_used and "audio" in held.modalities_used

    i = ids.index(f"{test_speakers[0]}_calm_1")
    clip = corpus / "clips" / f"{ids[i]}"
    same = predictor.predict_file(clip.with_suffix(".wav"), sources={"signal": clip.with_suffix(".npz")})
    probs = np.array([same.probabilities[label] for label in config["labels"]])
    np.testing.assert_allclose(probs, eval_probs[i], rtol=1e-5, atol=1e-6)

    # the same prediction through the command: the signal file given with --source signal=FILE
    answer = tmp_path / "pred.json"
    rc, out, err = _run(["predict", str(corpus / "held.wav"), "--source", f"signal={corpus / 'held.npz'}",
                         "--model", str(ckpt), "--min-speech", "0", "--json", str(answer)], capsys)
    assert rc == 0, err
    printed = json.loads(answer.read_text())["predictions"][0]
    assert printed["label"] == "happy" and printed["modalities_used"] == held.modalities_used
    assert printed["probabilities"] == pytest.approx(held.probabilities, rel=1e-6)

    # without its signal the clip is predicted from the audio alone, which knows nothing of the label
    deaf = predictor.predict_file(corpus / "held.wav")
    assert deaf.ok and deaf.modalities_used == ["audio"] and deaf.probabilities != held.probabilities
