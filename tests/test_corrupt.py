"""Corruptions of speech clips (`emofuse.media.corrupt`): SNR, determinism per sample id, babble
from other speakers only, codecs, telephone band, gain, silence, the test list and training draws."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.errors import ConfigError
from emofuse.media.corrupt import (BabbleSource, Corruption, TRAIN_SEED_BASE, active_power, corrupt,
                                   corruption_from_name, list_corruptions, standard_test_corruptions,
                                   training_corruption)

SR = 16000


def speechlike(seconds: float = 2.0, seed: int = 0, f0: float = 180.0) -> np.ndarray:
    """Harmonic bursts with pauses and some noise: a cheap stand-in for speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    voiced = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 1.7 * t), 0, None) ** 0.5
    return (0.05 * voiced * envelope + 0.002 * rng.standard_normal(t.size)).astype(np.float32)


def _snr(clean: np.ndarray, noisy: np.ndarray) -> float:
    return float(10 * np.log10(active_power(clean) / np.mean((noisy.astype(np.float64) - clean) ** 2)))


def _pool(n_speakers: int = 4, per_speaker: int = 3) -> tuple[BabbleSource, list[tuple[str, str]]]:
    pool = [(f"spk{s}", f"clip{s}_{k}") for s in range(n_speakers) for k in range(per_speaker)]
    waves = {path: speechlike(1.5, seed=i + 10, f0=120 + 15 * i) for i, (_, path) in enumerate(pool)}
    return BabbleSource(pool, load=waves.__getitem__), pool


@pytest.mark.parametrize("kind", ["white", "pink", "babble"])
@pytest.mark.parametrize("snr", [20, 10, 5, 0])
def test_noise_is_added_at_the_requested_snr(kind, snr):
    clean = speechlike()
    babble, _ = _pool()
    noisy = corrupt(clean, Corruption(kind, snr, 7), "clip-a", babble=babble, speaker="spk0")
    assert noisy.shape == clean.shape and noisy.dtype == np.float32
    assert _snr(clean, noisy) == pytest.approx(snr, abs=0.5)


def test_corruptions_are_deterministic_per_sample_id_not_order():
    clean = speechlike()
    c = Corruption("white", 10, 3)
    a1, b, a2 = corrupt(clean, c, "a"), corrupt(clean, c, "b"), corrupt(clean, c, "a")
    assert np.array_equal(a1, a2) and not np.allclose(a1, b)
    assert not np.allclose(corrupt(clean, Corruption("white", 10, 4), "a"), a1)  # another seed, other noise


def test_babble_never_uses_the_clips_own_speaker():
    babble, pool = _pool()
    for i in range(50):
        rng = np.random.default_rng(i)
        chosen = babble.for_speaker("spk2").choose(rng)
        assert 5 <= len(chosen) <= 7 and all(pool[j][0] != "spk2" for j in chosen)
    loads: list[str] = []
    src = BabbleSource(pool, load=lambda p: loads.append(p) or speechlike(1.0))
    corrupt(speechlike(), Corruption("babble", 5, 1), "x", babble=src, speaker="spk1")
    assert loads and not any(p.startswith("clip1_") for p in loads)
    with pytest.raises(ConfigError, match="other than 'spk0'"):
        BabbleSource(pool[:4], load=lambda p: speechlike()).for_speaker("spk0").choose(np.random.default_rng(0))
    with pytest.raises(ConfigError, match="pool"):
        corrupt(speechlike(), Corruption("babble", 5, 1), "x")


@pytest.mark.parametrize("kind,kbps", [("mp3", 8), ("mp3", 16), ("opus", 6), ("opus", 12)])
def test_codecs_keep_length_and_rate(kind, kbps):
    clean = speechlike(1.3)
    coded = corrupt(clean, Corruption(kind, kbps, 1), "c")
    assert coded.shape == clean.shape and coded.dtype == np.float32
    assert not np.allclose(coded, clean) and np.corrcoef(coded, clean)[0, 1] > 0.5  # aligned, same signal


def _band_energy(wave: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(wave)) ** 2
    f = np.fft.rfftfreq(wave.size, 1 / SR)
    return float(spectrum[(f >= low) & (f < high)].sum())


def test_telephone_removes_everything_above_4khz():
    rng = np.random.default_rng(0)
    wide = (0.1 * rng.standard_normal(SR)).astype(np.float32)
    phone = corrupt(wide, Corruption("telephone", 0, 1), "t")
    assert phone.shape == wide.shape
    assert _band_energy(phone, 4100, 8000) < 1e-4 * _band_energy(phone, 300, 3400)
    assert _band_energy(phone, 0, 150) < 0.01 * _band_energy(phone, 300, 3400)


def test_gain_scales_clips_and_quantises():
    clean = speechlike()
    loud = corrupt(clean, Corruption("gain", 20, 1), "g")
    quiet = corrupt(clean, Corruption("gain", -20, 1), "g")
    assert np.abs(loud).max() <= 1.0 and np.isclose(np.abs(loud).max(), 1.0, atol=1e-4)  # clipped
    assert 10 * np.log10(active_power(quiet) / active_power(clean)) == pytest.approx(-20, abs=0.2)
    assert np.allclose(quiet * 32767, np.round(quiet * 32767), atol=1e-3)  # 16-bit steps


def test_silence_adds_level_seconds_at_both_ends():
    clean = speechlike(1.0)
    padded = corrupt(clean, Corruption("silence", 0.5, 1), "s")
    assert padded.size == clean.size + 2 * SR // 2
    assert np.array_equal(padded[SR // 2 : SR // 2 + clean.size], clean)
    assert np.abs(padded[: SR // 2]).max() < 0.01 and np.abs(padded[-SR // 2 :]).max() < 0.01


def test_reverb_keeps_length_and_level_and_the_room_is_the_corruptions():
    clean = speechlike()
    a = corrupt(clean, Corruption("reverb", 0.6, 5), "a")
    b = corrupt(clean, Corruption("reverb", 0.6, 5), "b")
    assert a.shape == clean.shape and np.array_equal(a, b)  # same room for every clip of a condition
    assert active_power(a) == pytest.approx(active_power(clean), rel=0.05)
    assert not np.allclose(a, clean)


def test_standard_test_list_is_fixed_and_named():
    tests = standard_test_corruptions()
    names = [c.name for c in tests]
    assert len(tests) == 22 and len(set(names)) == 22 and tests == standard_test_corruptions()
    assert {"white_snr10", "babble_snr0", "reverb_rt0.4", "mp3_8k", "opus_12k", "telephone", "gain+20db",
            "gain-20db", "silence1s"} <= set(names)
    assert set(list_corruptions()) == {c.kind for c in tests}
    assert corruption_from_name("pink_snr5") == Corruption("pink", 5, tests[names.index("pink_snr5")].seed)
    with pytest.raises(ConfigError, match="unknown test corruption"):
        corruption_from_name("pink_snr7")


def test_training_draws_differ_from_the_test_instances():
    rng = np.random.default_rng(0)
    draws = [training_corruption(rng) for _ in range(400)]
    tests = set(standard_test_corruptions())
    assert not tests & set(draws)
    assert all(d.seed >= TRAIN_SEED_BASE for d in draws) and max(c.seed for c in tests) < TRAIN_SEED_BASE
    assert {d.kind for d in draws} == set(list_corruptions())
    assert len({d.level for d in draws if d.kind == "white"}) > 10  # continuous levels


def test_corruption_settings_are_checked():
    for bad in (("hail", 1, 1), ("white", float("nan"), 1), ("mp3", 2, 1), ("white", 10, -1), ("reverb", 9, 1)):
        with pytest.raises(ConfigError):
            Corruption(*bad)


# -- wrappers, views and the feature store --------------------------------------------------------

import soundfile as sf  # noqa: E402

from emofuse.data.record import Sample  # noqa: E402
from emofuse.features import get_extractor  # noqa: E402
from emofuse.features.cache import config_hash  # noqa: E402
from emofuse.features.corrupted import Corrupted, LevelNormalized, level_normalize  # noqa: E402
from emofuse.features.store import FeatureStore  # noqa: E402
from emofuse.inputs.views import (CorruptionView, CorruptMixView, corruption_views, view_from_dict)  # noqa: E402
from emofuse.media.corrupt import TrainingMix  # noqa: E402


def _dataset(folder, speakers: int = 3, clips: int = 3) -> list[Sample]:
    samples = []
    for s in range(speakers):
        for k in range(clips):
            path = folder / f"s{s}_{k}.wav"
            sf.write(path, speechlike(1.0, seed=10 * s + k, f0=110 + 30 * s), SR)
            samples.append(Sample(id=f"s{s}_{k}", speaker=f"spk{s}", dataset="toy", label=k % 2,
                                  sources={"audio": path}))
    return samples


def test_corruption_views_are_the_standard_list_and_round_trip():
    views = corruption_views()
    assert list(views) == [c.name for c in standard_test_corruptions()]
    v = views["babble_snr5"]
    assert v.needs_pool and view_from_dict(v.to_dict()) == v and v.to_dict()["kind"] == "corruption"
    mix = CorruptMixView(2)
    assert mix.name == "mix2" and view_from_dict(mix.to_dict()) == mix
    with pytest.raises(ConfigError):
        view_from_dict({"kind": "corruption", "corruption": "white", "level": 10, "seed": -3})


def test_store_views_corrupt_audio_features_deterministically(tmp_path):
    samples = _dataset(tmp_path)
    store = FeatureStore(samples, tmp_path / "cache", progress=False)
    clean = store.get("logmel")
    noisy = store.view(corruption_views()["white_snr0"]).get("logmel")
    assert all(a.shape == b.shape and not np.allclose(a, b) for a, b in zip(clean, noisy))
    again = FeatureStore(samples, tmp_path / "fresh-cache", progress=False).view(CorruptionView("white", 0, corruption_views()["white_snr0"].seed))
    assert all(np.array_equal(a, b) for a, b in zip(noisy, again.get("logmel")))  # recomputed identically
    reordered = FeatureStore(samples[::-1], tmp_path / "other-cache", progress=False)
    assert all(np.array_equal(a, b) for a, b in
               zip(noisy[::-1], reordered.view(corruption_views()["white_snr0"]).get("logmel")))


def test_same_audio_under_another_sample_id_gets_other_noise(tmp_path):
    samples = _dataset(tmp_path, speakers=1, clips=1)
    twin = Sample(id="twin", speaker="spk0", dataset="toy", label=0, sources=dict(samples[0].sources))
    store = FeatureStore(samples + [twin], tmp_path / "cache", progress=False)
    a, b = store.view(CorruptionView("white", 5, 7)).get("logmel")
    assert not np.allclose(a, b)


def test_store_babble_mixes_other_speakers_only(tmp_path, monkeypatch):
    samples = _dataset(tmp_path)
    seen: list[tuple[str, set[str]]] = []
    choose = BabbleSource.choose

    def spy(self, rng):
        chosen = choose(self, rng)
        seen.append((self.exclude, {self.pool[i][0] for i in chosen}))
        return chosen

    monkeypatch.setattr(BabbleSource, "choose", spy)
    noisy = FeatureStore(samples, tmp_path / "cache", progress=False).view(corruption_views()["babble_snr5"]).get("logmel")
    assert len(noisy) == len(samples) and len(seen) == len(samples)
    assert all(own and own not in others for own, others in seen)


def test_training_mix_view_draws_per_clip(tmp_path):
    samples = _dataset(tmp_path)
    store = FeatureStore(samples, tmp_path / "cache", progress=False)
    mixed = store.view(CorruptMixView(1)).get("logmel")
    assert all(m is not None for m in mixed)
    draws = [TrainingMix(1).draw(s.id) for s in samples]
    assert len({d.kind for d in draws}) > 1 and draws == [TrainingMix(1).draw(s.id) for s in samples]
    assert draws != [TrainingMix(2).draw(s.id) for s in samples]
    assert not set(draws) & set(standard_test_corruptions())


def test_cache_keys_differ_per_corruption_and_pool(tmp_path):
    samples = _dataset(tmp_path)
    pool = [(s.speaker, str(s.sources["audio"])) for s in samples]
    logmel = get_extractor("logmel")
    hashes = {config_hash(logmel)}
    for c in standard_test_corruptions():
        hashes.add(config_hash(Corrupted(logmel, c, pool)))
    hashes.add(config_hash(Corrupted(logmel, TrainingMix(1), pool)))
    hashes.add(config_hash(Corrupted(logmel, TrainingMix(1), pool[:-1])))  # another pool
    hashes.add(config_hash(Corrupted(logmel, Corruption("white", 10, 5), pool)))  # another seed
    hashes.add(config_hash(LevelNormalized(logmel)))
    assert len(hashes) == 1 + len(standard_test_corruptions()) + 4
    assert config_hash(Corrupted(logmel, Corruption("white", 10, 5), pool)) == \
        config_hash(Corrupted(logmel, Corruption("white", 10, 5), pool[:-1]))  # white noise needs no pool
    with pytest.raises(ConfigError, match="pool"):
        Corrupted(logmel, Corruption("babble", 5, 1), ())
    with pytest.raises(ConfigError, match="audio extractor"):
        LevelNormalized(get_extractor("speaker_meta"))


def test_level_normalisation_makes_gain_copies_give_the_same_features():
    clean = speechlike()
    logmel = LevelNormalized(get_extractor("logmel"))
    loud, quiet = logmel(clean * 10.0, SR), logmel(clean * 0.1, SR)
    assert np.abs(loud - quiet).max() < 0.01  # dB
    plain = get_extractor("logmel")
    assert np.abs(plain(clean * 10.0, SR) - plain(clean * 0.1, SR)).mean() > 30
    normed = level_normalize(clean * 30.0)
    assert np.abs(normed).max() <= 1.0 and 10 * np.log10(active_power(level_normalize(clean))) == pytest.approx(-26, abs=0.1)
    assert np.array_equal(level_normalize(np.zeros(100, np.float32)), np.zeros(100, np.float32))


# -- recipes, the input plan and the predictor -----------------------------------------------------

from emofuse.inputs.plan import InputPlan  # noqa: E402
from emofuse.recipes import recipe_from_dict  # noqa: E402

BASE = {"model": "early_concat", "features": {"audio": "mfcc"}}


def test_recipe_corruption_and_normalisation_keys_are_checked():
    recipe = recipe_from_dict({**BASE, "data": {"corrupt_augment": 2, "utterance_norm": True}})
    plan = InputPlan.from_recipe(recipe)
    assert [v.name for v in plan.train_views] == ["mix1", "mix2"] and plan.test_views == ()
    assert plan.utterance_norm and plan.to_dict()["utterance_norm"] is True
    assert InputPlan.from_dict(plan.to_dict()) == plan
    plain = InputPlan.from_recipe(recipe_from_dict(BASE))
    assert "utterance_norm" not in plain.to_dict() and not InputPlan.from_dict(plain.to_dict()).utterance_norm
    for data, message in (({"corrupt_augment": -1}, "corrupt_augment"), ({"corrupt_augment": 99}, "corrupt_augment"),
                          ({"corrupt_augment": 1.5}, "corrupt_augment"), ({"utterance_norm": "yes"}, "utterance_norm")):
        with pytest.raises(ConfigError, match=message):
            recipe_from_dict({**BASE, "data": data}, source="r.yaml")
    with pytest.raises(ConfigError, match="utterance_norm"):
        InputPlan.from_dict({**plan.to_dict(), "utterance_norm": "yes"})


def test_plan_with_utterance_norm_reads_level_normalised_features(tmp_path):
    samples = _dataset(tmp_path, speakers=3, clips=2)
    loud = [Sample(id=s.id + "-loud", speaker=s.speaker, dataset="toy", label=s.label,
                   sources={"audio": tmp_path / f"{s.id}-loud.wav"}) for s in samples]
    for s, l in zip(samples, loud):
        wave, _ = sf.read(s.sources["audio"], dtype="float32")
        sf.write(l.sources["audio"], wave * 8.0, SR, subtype="FLOAT")
    plan = InputPlan.from_recipe(recipe_from_dict({**BASE, "data": {"utterance_norm": True}}))
    plain = InputPlan.from_recipe(recipe_from_dict(BASE))
    store = FeatureStore(samples + loud, tmp_path / "cache", progress=False)
    normed, raw = plan.arrays(store)["audio"], plain.arrays(store)["audio"]
    n = len(samples)
    assert np.allclose(normed[0], normed[n], atol=1e-2) and not np.allclose(raw[0], raw[n], atol=1)
    mixed = plan.arrays(store, CorruptMixView(1))["audio"]  # corrupted, then normalised
    assert all(m.shape == n.shape for m, n in zip(mixed, normed))


def test_predictor_applies_the_saved_utterance_norm(tmp_path):
    import torch

    from emofuse.inference.checkpoint import save_checkpoint
    from emofuse.inference.predictor import Predictor
    from emofuse.models import create_model

    wave = speechlike(1.0)
    for name, gain in (("loud", 10.0), ("quiet", 0.1)):
        sf.write(tmp_path / f"{name}.wav", wave * gain, SR, subtype="FLOAT")
    recipe = recipe_from_dict({**BASE, "data": {"utterance_norm": True, "speed_perturb": [0.9],
                                                "test_time_augment": True}})
    plan, plain = InputPlan.from_recipe(recipe), InputPlan.from_recipe(recipe_from_dict(BASE))
    torch.manual_seed(0)
    model = create_model("early_concat", num_classes=3, input_dims={"audio": get_extractor("mfcc").dim}, hidden=8)
    labels = ["neutral", "happy", "sad"]
    normed = save_checkpoint(tmp_path / "normed", model, labels=labels, features=plan.feature_specs(), input_plan=plan)
    raw = save_checkpoint(tmp_path / "raw", model, labels=labels, features=plain.feature_specs(), input_plan=plain)
    n = Predictor(normed, min_speech=0)
    assert n.plan.utterance_norm
    a, b = (n.predict_file(tmp_path / f).probabilities for f in ("loud.wav", "quiet.wav"))
    assert a == pytest.approx(b, abs=1e-4)
    assert n.predict_file(tmp_path / "loud.wav").explanations["test_time_augment"] == [0.9]
    r = Predictor(raw, min_speech=0)
    a, b = (r.predict_file(tmp_path / f).probabilities for f in ("loud.wav", "quiet.wav"))
    assert max(abs(a[k] - b[k]) for k in a) > 1e-3


def test_corrupt_augment_adds_corrupted_training_copies(tmp_path):
    from emofuse.training.recipe import augmented_views

    samples = _dataset(tmp_path)
    store = FeatureStore(samples, tmp_path / "cache", progress=False)
    recipe = recipe_from_dict({**BASE, "data": {"corrupt_augment": 2}})
    train, test = augmented_views(recipe, store)
    assert list(train) == ["mix1", "mix2"] and test == {}
    clean = InputPlan.from_recipe(recipe).arrays(store)["audio"]
    assert all(not np.allclose(a, b) for a, b in zip(train["mix1"]["audio"], clean))
    assert any(not np.allclose(a, b) for a, b in zip(train["mix1"]["audio"], train["mix2"]["audio"]))
