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
            "gain-20db", "silence_sil1"} <= set(names)
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
