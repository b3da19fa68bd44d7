"""DEAP on generated ``data_preprocessed_matlab/sXX.mat`` files (the release's structure: ``data``
[trials, 40 channels, samples] at 128 Hz with a 3 s baseline, ``labels`` [trials, 4]), shortened to
8 trials of 3 + 8 s. Valence is carried by the EEG's band power (alpha for high, theta for low) and
by the peripheral channels' slow power, so the features must reach the model for it to learn.

The end-to-end test runs extract -> train -> evaluate -> predict through the commands a user runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from emofuse.cli import main
from emofuse.data import deap
from emofuse.errors import DataError

SUBJECTS = ("s01", "s02", "s03", "s04", "s05")
TRIALS = 8
SECONDS = 8
RATE = 128


def _trial(high: bool, rng: np.random.Generator) -> np.ndarray:
    """[40, (3 + SECONDS) * 128]: EEG with a 10 Hz (high valence) or 6 Hz (low) rhythm on every
    channel plus noise; peripheral: a slow 0.3 Hz wave, strong for high valence, plus noise."""
    n = (3 + SECONDS) * RATE
    t = np.arange(n) / RATE
    freq = 10.0 if high else 6.0
    eeg = 2.0 * np.sin(2 * np.pi * freq * t[None, :] + rng.uniform(0, 2 * np.pi, (32, 1)))
    slow = (3.0 if high else 0.5) * np.sin(2 * np.pi * 0.3 * t[None, :] + rng.uniform(0, 2 * np.pi, (8, 1)))
    noise = rng.standard_normal((40, n))
    return np.concatenate([eeg, slow]) + noise


def write_subject(folder: Path, subject: str, rng: np.random.Generator, trials: int = TRIALS) -> Path:
    """One ``sXX.mat`` as the release has it (float64 ``data`` and ``labels``, MATLAB v5)."""
    highs = [k % 2 == 0 for k in range(trials)]
    data = np.stack([_trial(h, rng) for h in highs])
    labels = np.stack([[rng.uniform(6.5, 9) if h else rng.uniform(1, 4), rng.uniform(1, 9),
                        rng.uniform(1, 9), rng.uniform(1, 9)] for h in highs])
    path = folder / f"{subject}.mat"
    scipy.io.savemat(path, {"data": data, "labels": labels})
    return path


@pytest.fixture(scope="module")
def deap_root(tmp_path_factory) -> Path:
    """``<root>/deap/data_preprocessed_matlab/s01.mat .. s05.mat`` plus a held-out subject s32."""
    root = tmp_path_factory.mktemp("deap_data")
    mats = root / "deap" / "data_preprocessed_matlab"
    mats.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for subject in SUBJECTS:
        write_subject(mats, subject, rng)
    write_subject(root, "s32", rng, trials=2)  # outside the corpus: predicted only
    return root


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_loader_reads_the_mat_release(deap_root):
    samples = deap.prepare_deap(deap_root / "deap")
    assert len(samples) == len(SUBJECTS) * TRIALS
    first = samples[0]
    assert (first.id, first.speaker, first.label) == ("s01_t01", "s01", "high")
    assert samples[1].label == "low" and set(first.extra_labels) == {"arousal"}
    assert set(first.meta) >= {"valence", "arousal", "dominance", "liking", "trial", "subject"}
    eeg, rate = deap.read_mat_trial(first.sources["eeg"])
    peripheral, _ = deap.read_mat_trial(first.sources["peripheral"])
    assert rate == 128.0 and eeg.shape == (SECONDS * RATE, 32) and peripheral.shape == (SECONDS * RATE, 8)
    mat = scipy.io.loadmat(deap_root / "deap" / "data_preprocessed_matlab" / "s01.mat")
    np.testing.assert_allclose(eeg, mat["data"][0, :32, 3 * RATE:].T.astype(np.float32))
    arousal = deap.prepare_deap(deap_root / "deap", target="arousal", baseline=True)
    assert arousal[0].label in ("low", "high") and "valence" in arousal[0].extra_labels
    assert deap.read_mat_trial(arousal[0].sources["eeg"])[0].shape[0] == (3 + SECONDS) * RATE


def test_folds_are_leave_one_subject_out():
    from emofuse.data.splits import load_folds

    folds = load_folds("deap_valence")
    assert len(folds) == 32 and [f.test for f in folds] == [(s,) for s in deap.SUBJECTS]
    assert folds[0].val == ("s02",) and len(folds[0].train) == 30 and folds[31].val == ("s01",)


def test_python_pickles_are_refused(tmp_path):
    (tmp_path / "data_preprocessed_python").mkdir()
    (tmp_path / "data_preprocessed_python" / "s01.dat").write_bytes(b"\x80\x04not loaded")
    with pytest.raises(DataError, match="pickles.*data_preprocessed_matlab/sXX.mat"):
        deap.prepare_deap(tmp_path)
    with pytest.raises(DataError, match="pickles"):
        deap.mat_files(tmp_path / "data_preprocessed_python" / "s01.dat")


def test_malformed_files_name_the_file(tmp_path):
    scipy.io.savemat(tmp_path / "s01.mat", {"data": np.zeros((2, 39, 500)), "labels": np.zeros((2, 4))})
    with pytest.raises(DataError, match="s01.mat.*40 channels"):
        deap.prepare_deap(tmp_path)
    scipy.io.savemat(tmp_path / "s01.mat", {"data": np.zeros((2, 40, 500)), "labels": np.zeros((3, 4))})
    with pytest.raises(DataError, match="labels"):
        deap.prepare_deap(tmp_path)
    (tmp_path / "s01.mat").write_bytes(b"not a mat file")
    with pytest.raises(DataError, match="s01.mat"):
        deap.prepare_deap(tmp_path)


def test_band_power_matches_a_direct_welch():
    """A 10 Hz sine puts its power in alpha; the layout is band-major over channels."""
    from scipy.signal import welch

    from emofuse.features import get_extractor

    t = np.arange(8 * RATE) / RATE
    x = np.stack([np.sin(2 * np.pi * 10 * t), np.sin(2 * np.pi * 20 * t)], axis=1).astype(np.float32)
    out = get_extractor("eeg_band_power").process([(x, 128.0)])[0]
    assert out.shape == (1, 8)
    theta, alpha, beta, gamma = out[0].reshape(4, 2)
    assert alpha[0] > theta[0] + 2 and alpha[0] > beta[0] + 2 and beta[1] > alpha[1] + 2
    f, p = welch(x[:, 0].astype(np.float64), fs=128, nperseg=256)
    expected = np.log10(p[(f >= 8) & (f < 13)].sum() * (f[1] - f[0]) + 1e-12)
    assert alpha[0] == pytest.approx(expected, rel=1e-5)
    frames = get_extractor("eeg_band_frames", frame_seconds=2.0).process([(x, 128.0)])[0]
    assert frames.shape == (4, 8)
    raw = get_extractor("eeg_raw").process([(x, 128.0)])[0]
    assert raw.shape == (8 * 32, 2)
    assert get_extractor("peripheral_band_power").process([(x, 128.0)])[0].shape == (1, 10)


TINY_OFC = """\
model: of_cmaer_cat
model_kwargs: {d_model: 16, conv_layers: 1, heads: 2, transformer_layers: 1, dropout: 0.0, reliability_hidden: 8,
               proj_dim: 16, contrastive_dim: 8}
features: {eeg: eeg_band_frames, peripheral: peripheral_band_frames}
train: {lr: 1.0e-2, weight_decay: 0.0, batch_size: 8, max_epochs: 25, patience: 25, warmup_ratio: 0.0,
        schedule: constant}
"""
TINY_CNN = """\
model: signal_cnn
model_kwargs: {filters: 8, blocks: 3, kernel_size: 5, pool: 4, dropout: 0.0}
features: {eeg: eeg_raw, peripheral: peripheral_raw}
train: {lr: 3.0e-3, weight_decay: 0.0, batch_size: 8, max_epochs: 25, patience: 25, warmup_ratio: 0.0,
        schedule: constant}
"""


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main(["--threads", "1", *args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_deap_extract_train_evaluate_predict(deap_root, tmp_path, capsys):
    data, cache = str(deap_root), str(tmp_path / "cache")
    n = len(SUBJECTS) * TRIALS
    rc, out, err = _run(["extract", "deap_valence", "--data", data, "--cache", cache, "--quiet", "--features",
                         "eeg_band_power,peripheral_band_power,eeg_band_frames,peripheral_band_frames,eeg_raw,"
                         "peripheral_raw"], capsys)
    assert rc == 0, err
    assert f"eeg_band_frames: {n}/{n}" in out and f"peripheral_raw: {n}/{n}" in out, out

    recipes = {}
    for name, text in (("ofc_deap", TINY_OFC), ("cnn_deap", TINY_CNN)):
        recipes[name] = tmp_path / f"{name}.yaml"
        recipes[name].write_text(text, encoding="utf-8")

    # benchmark: the logistic baseline and the 1-D CNN on the first two leave-one-subject-out folds
    results = tmp_path / "bench.json"
    rc, out, err = _run(["benchmark", "deap_valence", "--data", data, "--cache", cache, "--quiet", "--folds", "1,2",
                         "--models", f"logreg_band_power_deap,{recipes['cnn_deap']}", "--out", str(results)], capsys)
    assert rc == 0, err
    rows = {r["model"]: r for r in json.loads(results.read_text())["results"]}
    assert rows["logreg_band_power_deap"]["wa_mean"] > 0.9, rows
    assert rows["cnn_deap"]["wa_mean"] > 0.8, rows

    # OF-CMAER-CAT on EEG + peripheral: train on fold 1 (test s01, validation s02), evaluate, predict
    ckpt = tmp_path / "ckpt"
    rc, out, err = _run(["train", str(recipes["ofc_deap"]), "--dataset", "deap_valence", "--data", data, "--fold", "1",
                         "--out", str(ckpt), "--cache", cache, "--quiet"], capsys)
    assert rc == 0, err
    config = json.loads((ckpt / "config.json").read_text())
    assert config["labels"] == ["low", "high"] and set(config["features"]) == {"eeg", "peripheral"}
    rc, out, err = _run(["evaluate", str(ckpt), "--dataset", "deap_valence", "--data", data, "--fold", "1",
                         "--cache", cache], capsys)
    assert rc == 0, err
    scores = json.loads(out)
    assert scores["n"] == TRIALS and scores["wa"] > 0.8, scores

    from emofuse.features.signal import write_signal_file
    from emofuse.inference.predictor import Predictor

    predictor = Predictor(ckpt, min_speech=0)
    held = deap.prepare_deap(deap_root)  # s32.mat beside the corpus: trial 1 high, trial 2 low
    answers = [predictor.predict_sources(dict(s.sources)) for s in held]
    assert [a.label for a in answers] == ["high", "low"], answers
    assert all(set(a.modalities_used) == {"eeg", "peripheral"} for a in answers)
    # the same trial as .npz signal files (what `emofuse predict --source eeg=FILE` reads) gives the same answer
    files = {}
    for group in ("eeg", "peripheral"):
        signal, rate = deap.read_mat_trial(held[0].sources[group])
        files[group] = write_signal_file(tmp_path / f"{group}.npz", signal, rate)
    again = predictor.predict_sources(files)
    assert again.probabilities == pytest.approx(answers[0].probabilities, rel=1e-5)
    # EEG alone still predicts (the peripheral modality absent)
    alone = predictor.predict_sources({"eeg": files["eeg"]})
    assert alone.ok and alone.modalities_used == ["eeg"]
