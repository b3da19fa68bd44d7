"""Speed perturbation: the waveform transform, the cached extractor wrapper, feature-store views,
recipe settings, augmented training / test-time augmentation in k-fold, the logistic baseline and
the predictor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from emofuse.training.classical import fit_predict_logreg
from emofuse.inference.checkpoint import save_checkpoint
from emofuse.data.record import Sample
from emofuse.errors import ConfigError
from emofuse.features import extract_features, get_extractor
from emofuse.features.augment import SpeedPerturbed, check_factors, speed_perturb
from emofuse.features.store import FeatureStore
from emofuse.models import create_model
from emofuse.inference.predictor import Predictor
from emofuse.recipes import recipe_from_dict
from emofuse.training import TrainConfig, predict_proba, run_kfold

from test_training import FOLDS, _builder, _synthetic

SR = 16000


def _tone(freq: float = 200.0, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(wave: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    return float(np.fft.rfftfreq(wave.size, 1 / SR)[spectrum.argmax()])


def test_speed_perturb_changes_tempo_and_pitch_together():
    wave = _tone(200.0)
    fast = speed_perturb(wave, 1.25, SR)
    slow = speed_perturb(wave, 0.8, SR)
    assert abs(fast.size - SR / 1.25) <= 2 and abs(slow.size - SR / 0.8) <= 2
    assert _peak_hz(fast) == pytest.approx(250.0, abs=3) and _peak_hz(slow) == pytest.approx(160.0, abs=3)
    assert np.array_equal(speed_perturb(wave, 1.0, SR), wave) and fast.dtype == np.float32
    for bad in (0.2, 3.0, "fast", None):
        with pytest.raises(ConfigError, match="speed factor"):
            speed_perturb(wave, bad, SR)


def test_check_factors_rejects_repeats_identity_and_non_lists():
    assert check_factors([0.9, 1.1]) == (0.9, 1.1)
    for bad in ([0.9, 0.9], [1.0], 0.9, "0.9"):
        with pytest.raises(ConfigError):
            check_factors(bad)


def test_speed_perturbed_extractor_is_cached_apart_from_the_original(tmp_path):
    clip = tmp_path / "tone.wav"
    sf.write(clip, _tone(seconds=0.8), SR, subtype="FLOAT")
    mfcc = get_extractor("mfcc")
    slow = SpeedPerturbed(mfcc, 0.8)
    assert slow.name == "mfcc-speed0.8" and slow.config()["speed_perturb"] == 0.8 and slow.dim == mfcc.dim
    cache = tmp_path / "cache"
    (original,) = extract_features([clip], mfcc, cache, progress=False)
    (perturbed,) = extract_features([clip], slow, cache, progress=False)
    assert perturbed.shape[0] > original.shape[0] * 1.15  # 25 % longer clip, more frames
    np.testing.assert_allclose(perturbed, mfcc(speed_perturb(_tone(seconds=0.8), 0.8, SR), SR), rtol=1e-5, atol=1e-4)
    folders = sorted(p.name for p in cache.iterdir())
    assert len(folders) == 2 and folders[1].startswith("mfcc-speed0.8-")
    info = json.loads((cache / folders[1] / "extractor.json").read_text())
    assert info["config"]["speed_perturb"] == 0.8

    class TextOnly:
        name, source = "minilm_pooled", "text"

    with pytest.raises(ConfigError, match="audio extractor"):
        SpeedPerturbed(TextOnly(), 0.9)


def test_feature_store_views_perturb_audio_only(tmp_path):
    samples = []
    for i in range(2):
        path = tmp_path / f"c{i}.wav"
        sf.write(path, _tone(150.0 + 50 * i, 0.6), SR)
        samples.append(Sample(id=f"c{i}", speaker="s", dataset="t", label="happy",
                              sources={"audio": path, "face": np.arange(3, dtype=np.float32) + i}))
    store = FeatureStore(samples, tmp_path / "cache", progress=False)
    store.labels = ["happy"]
    view = store.view(0.9)
    assert store.view(1.0) is store and view.view(1.0) is store and view.labels == ["happy"]
    assert store.view(0.9) is view and view.view(0.9) is view  # one view per factor, arrays kept
    assert view.get("au") is store.get("au")  # action units come from the video, not the audio
    a, b = store.get("mfcc")[0], view.get("mfcc")[0]
    assert b.shape[0] > a.shape[0]
    for bad in (5.0, "fast"):
        with pytest.raises(ConfigError, match="speed factor"):
            store.view(bad)


def test_recipe_augmentation_settings_are_validated():
    base = {"model": "logreg", "features": {"audio": "egemaps"}}
    recipe = recipe_from_dict({**base, "data": {"speed_perturb": [0.9, 1.1], "test_time_augment": True}})
    assert recipe.train_speeds == (0.9, 1.1) and recipe.test_speeds == (0.9, 1.1)
    only_tta = recipe_from_dict({**base, "data": {"test_time_augment": [1.1]}})
    assert only_tta.train_speeds == () and only_tta.test_speeds == (1.1,)
    assert recipe_from_dict(base).train_speeds == () and recipe_from_dict(base).test_speeds == ()
    for data, message in (({"test_time_augment": True}, "needs data.speed_perturb"),
                          ({"speed_perturb": [1.0]}, "differ from 1.0"),
                          ({"speed_perturb": 0.9}, "must be a list"),
                          ({"speed_pertub": [0.9]}, "unknown data keys")):
        with pytest.raises(ConfigError, match=message):
            recipe_from_dict({**base, "data": data}, source="r.yaml")


FAST = TrainConfig(max_epochs=4, lr=0.1, batch_size=64, patience=3, warmup_ratio=0.0)


def test_run_kfold_adds_training_copies_and_averages_test_views(monkeypatch):
    import emofuse.training.kfold as kfold_module

    samples, feats, _, names = _synthetic(90)
    dims = {"audio": 8, "face": 5}
    shifted = {"audio": [a + 0.5 for a in feats["audio"]], "face": feats["face"]}
    seen = []
    real_fit = kfold_module.fit

    def recording_fit(model, train_ds, val_ds, cfg):
        seen.append((len(train_ds), train_ds.ids, None if val_ds is None else val_ds.ids))
        return real_fit(model, train_ds, val_ds, cfg)

    monkeypatch.setattr(kfold_module, "fit", recording_fit)
    models = []
    result = run_kfold(samples, feats, names, FOLDS[:1], _builder(dims), FAST, progress=False, standardize=True,
                       train_views={"speed0.9": shifted}, test_views={"speed0.9": shifted},
                       on_fold_end=lambda fold, model, info: models.append((model, info["stats"])))
    size, train_ids, val_ids = seen[0]
    assert size == 120 and sum(i.endswith("@speed0.9") for i in train_ids) == 60  # 60 originals + 60 copies
    assert not any("@" in i for i in val_ids)  # validation sees the original features only
    run = result.runs[0]
    assert run.sizes["train"] == 120 and run.metrics["n"] == 15 and set(run.ids) == {s.id for s in samples
                                                                                        if s.speaker == "spk5"}
    assert result.train_views == ["speed0.9"] and result.summary("m", ["audio", "face"])["test_views"] == ["speed0.9"]
    # the test probabilities are the mean over the original and the view, both standardised with
    # the statistics of the original training features
    from emofuse.inputs.normalize import apply_standardizer
    from emofuse.training import FeatureDataset

    model, stats = models[0]
    test = [i for i, s in enumerate(samples) if s.speaker == "spk5"]

    def probs(columns):
        z = apply_standardizer({m: [columns[m][i] for i in test] for m in columns}, stats)
        return predict_proba(model, FeatureDataset(z, None, [samples[i].id for i in test]))

    np.testing.assert_allclose(run.probs, (probs(feats) + probs(shifted)) / 2, rtol=1e-5, atol=1e-6)
    assert not np.allclose(run.probs, probs(feats), atol=1e-4)


def test_extra_tests_average_the_test_views_too():
    samples, feats, _, names = _synthetic(90)
    shifted = {"audio": [a + 0.5 for a in feats["audio"]], "face": feats["face"]}
    extra = {"only_face": {"modalities": ["face"]}, "only_audio": {"modalities": ["audio"]}}
    plain = run_kfold(samples, feats, names, FOLDS[:1], _builder({"audio": 8, "face": 5}), FAST, progress=False,
                      extra_tests=extra)
    tta = run_kfold(samples, feats, names, FOLDS[:1], _builder({"audio": 8, "face": 5}), FAST, progress=False,
                    extra_tests=extra, test_views={"shift": shifted})
    # face only: the view changes nothing the model sees; audio only: it does
    assert tta.runs[0].extra["only_face"] == plain.runs[0].extra["only_face"]
    assert set(tta.extra_aggregates()) == {"only_face", "only_audio"}


def test_extra_tests_predict_on_every_test_view(monkeypatch):
    """Each extra condition is predicted on the original and on every test view (restricted to the
    condition's modalities) and the probabilities averaged, like the clean test."""
    import emofuse.training.kfold as kfold_module

    calls = []
    real_mean = kfold_module.predict_proba_mean

    def spy(model, sets, batch):
        calls.append([{m: np.concatenate([a for a in col if a is not None])
                       for m, col in t.features.items() if any(a is not None for a in col)} for t in sets])
        return real_mean(model, sets, batch)

    monkeypatch.setattr(kfold_module, "predict_proba_mean", spy)
    samples, feats, _, names = _synthetic(90)
    shifted = {"audio": [a + 0.5 for a in feats["audio"]], "face": feats["face"]}
    run_kfold(samples, feats, names, FOLDS[:1], _builder({"audio": 8, "face": 5}), FAST, progress=False,
              extra_tests={"only_audio": {"modalities": ["audio"]}}, test_views={"shift": shifted})
    clean, only_audio = calls[-2:]
    assert len(clean) == 2 and len(only_audio) == 2  # the original and the shifted view, both
    assert set(only_audio[0]) == {"audio"}
    # the second set is the shifted view (as in the clean test), not the original again
    np.testing.assert_array_equal(only_audio[1]["audio"], clean[1]["audio"])
    assert not np.allclose(only_audio[1]["audio"], only_audio[0]["audio"])


def test_refit_uses_the_augmented_copies_too(monkeypatch):
    import emofuse.training.kfold as kfold_module

    sizes = []
    real_fit = kfold_module.fit
    monkeypatch.setattr(kfold_module, "fit", lambda m, tr, va, cfg: (sizes.append(len(tr)), real_fit(m, tr, va, cfg))[1])
    samples, feats, _, names = _synthetic(90)
    run_kfold(samples, feats, names, FOLDS[:1], _builder({"audio": 8, "face": 5}), FAST.replace(refit=True),
              progress=False, train_views={"a": feats, "b": feats})
    assert sizes == [180, 225]  # (60 train) x 3, then (60 train + 15 validation) x 3


def test_logreg_averages_test_views_and_refits_on_given_rows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 4)) + np.repeat(np.eye(3, 4) * 3, 30, axis=0)
    y = np.repeat(np.arange(3), 30)
    tr, va, te = np.arange(0, 90, 3), np.arange(1, 90, 3), np.arange(2, 90, 3)
    view = x[te] + rng.normal(size=(30, 4))
    both = fit_predict_logreg(x[tr], y[tr], x[va], y[va], [x[te], view], 3)
    one = fit_predict_logreg(x[tr], y[tr], x[va], y[va], x[te], 3)
    other = fit_predict_logreg(x[tr], y[tr], x[va], y[va], view, 3)
    np.testing.assert_allclose(both.probabilities, (one.probabilities + other.probabilities) / 2)
    refit = fit_predict_logreg(x[tr], y[tr], x[va], y[va], x[te], 3, x_refit=x[va][:5], y_refit=y[va][:5])
    assert not np.allclose(refit.probabilities, one.probabilities)


def test_predictor_averages_over_test_time_speed_copies(tmp_path):
    clip, slow_clip, fast_clip = tmp_path / "clip.wav", tmp_path / "slow.wav", tmp_path / "fast.wav"
    wave = _tone(180.0, 0.7) + 0.05 * np.random.default_rng(0).normal(size=int(0.7 * SR)).astype(np.float32)
    sf.write(clip, wave, SR, subtype="FLOAT")
    sf.write(slow_clip, speed_perturb(wave, 0.9, SR), SR, subtype="FLOAT")
    sf.write(fast_clip, speed_perturb(wave, 1.1, SR), SR, subtype="FLOAT")
    # a synthetic tone, not speech: the speech check (emofuse.media.vad) is switched off with min_speech=0
    dim = get_extractor("mfcc").dim
    features = {"audio": {"names": ["mfcc"], "configs": {"mfcc": get_extractor("mfcc").config()}}}
    torch.manual_seed(0)
    model = create_model("early_concat", num_classes=3, input_dims={"audio": dim}, hidden=8)
    plain = save_checkpoint(tmp_path / "plain", model, labels=["neutral", "happy", "sad"], features=features)
    tta = save_checkpoint(tmp_path / "tta", model, labels=["neutral", "happy", "sad"], features=features,
                          meta={"test_time_augment": [0.9, 1.1]})
    by_file = [Predictor(plain, min_speech=0).predict_file(p).probabilities for p in (clip, slow_clip, fast_clip)]
    expected = {k: np.mean([p[k] for p in by_file]) for k in by_file[0]}
    pred = Predictor(tta, min_speech=0).predict_file(clip)
    assert pred.probabilities == pytest.approx(expected, abs=1e-5)
    assert pred.explanations["test_time_augment"] == [0.9, 1.1]
    assert "test_time_augment" not in Predictor(plain, min_speech=0).predict_file(clip).explanations
    broken = save_checkpoint(tmp_path / "broken", model, labels=["neutral", "happy", "sad"], features=features,
                             meta={"test_time_augment": [9.0]})
    with pytest.raises(ConfigError, match="speed factor"):
        Predictor(broken, min_speech=0).predict_file(clip)


@pytest.mark.realdata
def test_benchmark_with_speed_perturbation_on_real_data(ravdess_au, tmp_path):
    from emofuse.experiments.benchmark import run_benchmark

    recipe = tmp_path / "lr_aug.yaml"
    recipe.write_text("model: logreg\nfeatures: {audio: mfcc, face: au}\n"
                      "data: {speed_perturb: [0.9], test_time_augment: true}\n")
    out = tmp_path / "b.json"
    results = run_benchmark("ravdess", ravdess_au, models=f"{recipe},logreg_au", out=str(out), folds="1",
                            seeds=(0, 1), progress=False)
    aug, plain = results["results"]
    assert aug["speed_perturb"] == [0.9] and aug["test_time_augment"] == [0.9] and plain["speed_perturb"] == []
    assert aug["n_runs"] == 1 and aug["wa_std"] == 0.0  # deterministic: once per fold, not per seed
    confusion = np.asarray(aug["confusion"])  # fold 1: 240 test clips, each predicted once
    assert confusion.sum() == 240 and aug["wa_mean"] == pytest.approx(np.trace(confusion) / 240)
    assert aug["wa_mean"] > 2 / 8  # at least twice the 8-class chance level
    assert json.loads(out.read_text())["results"][0]["test_time_augment"] == [0.9]
    # a checkpoint remembers its test-time augmentation: evaluate reproduces the training score
    from emofuse.evaluation.evaluate import evaluate_checkpoint
    from emofuse.training.recipe import train_recipe

    neural = tmp_path / "mlp_aug.yaml"
    neural.write_text("model: early_concat\nmodel_kwargs: {hidden: 16}\nfeatures: {audio: mfcc, face: au}\n"
                      "train: {max_epochs: 2, batch_size: 64}\ndata: {speed_perturb: [0.9], test_time_augment: true}\n")
    trained = train_recipe(str(neural), "ravdess", ravdess_au, out_dir=tmp_path / "ckpt", fold=1, progress=False)
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["meta"]["speed_perturb"] == [0.9] and config["meta"]["test_time_augment"] == [0.9]
    evaluated = evaluate_checkpoint(tmp_path / "ckpt", "ravdess", ravdess_au, fold=1)
    assert evaluated["test_time_augment"] == [0.9] and evaluated["n"] == 240
    assert evaluated["wa"] == pytest.approx(trained["wa"])


def test_augmented_views_skip_recipes_without_audio_features():
    from emofuse.training.recipe import augmented_views

    recipe = recipe_from_dict({"model": "early_concat", "features": {"face": "au"},
                               "data": {"speed_perturb": [0.9], "test_time_augment": True}})
    store = FeatureStore([Sample(id="a", speaker="s", dataset="t", label="happy",
                                 sources={"face": np.ones(3, dtype=np.float32)})], progress=False)
    assert augmented_views(recipe, store) == ({}, {})


def test_extract_cli_checks_speed_factors(tmp_path, capsys):
    from emofuse.cli import main

    assert main(["extract", "ravdess", "--data", str(tmp_path), "--features", "mfcc", "--speeds", "0.9,7"]) == 2
    assert "speed factor must be in [0.5, 2.0], got '7'" in capsys.readouterr().err
