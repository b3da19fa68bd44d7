"""Feature extractors (shapes, edge cases) and the on-disk cache driver `extract_features`."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emofuse.errors import ConfigError, DataError
from emofuse.features import (
    CacheWarning,
    FeatureCache,
    extract_features,
    get_extractor,
    list_extractors,
    load_feature_file,
    measure_rtf,
)

SR = 16000
DIMS = {"logmel": 128, "mfcc": 120, "frft_mfcc": 120, "egemaps": 88, "egemaps_lld": 25,
        "whisper": 384, "whisper_pooled": 768}
FUNCTIONALS = {"egemaps", "whisper_pooled"}


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Harmonic tone with a pitch glide plus a little noise: voiced enough for F0 and formant features."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    wave = sum(np.sin(k * phase) / k for k in range(1, 12)) * 0.2 + 0.01 * rng.standard_normal(t.size)
    return wave.astype(np.float32)


def _write(path: Path, wave: np.ndarray, sr: int = SR) -> Path:
    sf.write(path, wave, sr)
    return path


@pytest.fixture(scope="module")
def extractors():
    return {name: get_extractor(name) for name in list_extractors()}


def test_registry_lists_every_extractor() -> None:
    assert set(list_extractors()) == set(DIMS)
    with pytest.raises(ConfigError, match="logmel"):
        get_extractor("wav2vec")
    with pytest.raises(ConfigError, match="no option"):
        get_extractor("mfcc", n_mfccs=13)
    with pytest.raises(ConfigError, match="mode"):
        get_extractor("whisper", mode="half")


def test_config_round_trips_through_get_extractor(extractors) -> None:
    for name, extractor in extractors.items():
        config = extractor.config()
        assert json.loads(json.dumps(config)) == config
        assert get_extractor(name, **config).config() == config


@pytest.mark.parametrize("seconds", [1.3, 0.1])
def test_shapes_and_finiteness(extractors, seconds: float) -> None:
    wave = _speechlike(seconds)
    for name, extractor in extractors.items():
        out = extractor(wave, SR)
        assert extractor.dim == DIMS[name]
        assert out.dtype == np.float32 and out.ndim == 2 and out.shape[1] == DIMS[name], name
        assert out.shape[0] >= 1 and np.isfinite(out).all(), name
        if name in FUNCTIONALS:
            assert out.shape[0] == 1
        if name in ("logmel", "mfcc", "frft_mfcc"):
            assert out.shape[0] == 1 + wave.size // 160
        if name == "whisper":
            assert out.shape[0] == math.ceil(seconds * 50)


def test_silence_gives_finite_features(extractors) -> None:
    for name, extractor in extractors.items():
        out = extractor(np.zeros(SR // 2, np.float32), SR)
        assert np.isfinite(out).all() and out.shape[1] == DIMS[name], name


def test_features_depend_on_the_signal(extractors) -> None:
    a, b = _speechlike(1.0, 0), 0.5 * _speechlike(1.0, 0)[::-1].copy()
    for name, extractor in extractors.items():
        assert not np.allclose(extractor(a, SR), extractor(b, SR)), name


def test_other_sample_rates_are_resampled() -> None:
    logmel = get_extractor("logmel")
    wave16 = _speechlike(1.0)
    import soxr

    wave8 = soxr.resample(wave16, SR, 8000).astype(np.float32)
    assert logmel(wave8, 8000).shape == logmel(wave16, SR).shape


def test_mfcc_options_and_frft_reduces_to_mfcc_at_order_one() -> None:
    wave = _speechlike(1.0)
    assert get_extractor("mfcc", n_mfcc=13)(wave, SR).shape[1] == 39
    mfcc = get_extractor("mfcc")(wave, SR)
    np.testing.assert_allclose(get_extractor("frft_mfcc", alpha=1.0)(wave, SR), mfcc, atol=2e-3)
    assert np.abs(get_extractor("frft_mfcc", alpha=0.5)(wave, SR) - mfcc).max() > 1.0
    # Deltas are the derivative of the static coefficients.
    assert np.abs(mfcc[:, 40:80]).mean() < np.abs(mfcc[:, :40]).mean()


def test_egemaps_functionals_are_plausible(extractors) -> None:
    values = extractors["egemaps"](_speechlike(2.0), SR)[0]
    names = extractors["egemaps"].feature_names
    f0_mean = values[names.index("F0semitoneFrom27.5Hz_sma3nz_amean")]
    expected = 12 * math.log2(140 / 27.5)  # semitones above 27.5 Hz of the 140 Hz centre pitch
    assert abs(f0_mean - expected) < 2.0


def test_whisper_long_clip_uses_consecutive_windows() -> None:
    wave = _speechlike(31.0)
    out = get_extractor("whisper")(wave, SR)
    assert out.shape == (1550, 384)
    head = get_extractor("whisper")(wave[: 30 * SR], SR)
    np.testing.assert_allclose(out[:1500], head, atol=1e-4)  # first window is encoded alone


def test_whisper_fit_mode_close_to_full_window_and_batch_independent() -> None:
    waves = [_speechlike(1.1, 1), _speechlike(2.7, 2), _speechlike(0.4, 3)]
    fit, full = get_extractor("whisper"), get_extractor("whisper", mode="full30")
    fit_out, full_out = fit.batch(waves, SR), full.batch([waves[0]], SR)
    assert fit_out[0].shape == full_out[0].shape == (55, 384)
    a, b = fit_out[0], full_out[0]
    frame_cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert np.median(frame_cos) > 0.8  # synthetic tone: ~0.88 (RAVDESS speech: ~0.98)
    for wave, batched in zip(waves, fit_out):  # a clip's states do not depend on its batch mates
        np.testing.assert_allclose(fit(wave, SR), batched, atol=1e-3)
    assert fit.config() != full.config()


# ---------------------------------------------------------------- cache


@pytest.fixture()
def clips(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "audio"
    folder.mkdir()
    return [_write(folder / f"clip{i}.wav", _speechlike(0.3 + 0.1 * i, i)) for i in range(5)]


def _count_batches(monkeypatch, extractor) -> list[int]:
    calls: list[int] = []
    original = extractor.batch

    def counting(waves, sr):
        calls.append(len(waves))
        return original(waves, sr)

    monkeypatch.setattr(extractor, "batch", counting)
    return calls


def test_cache_hit_does_not_recompute(monkeypatch, clips, tmp_path) -> None:
    extractor = get_extractor("mfcc")
    calls = _count_batches(monkeypatch, extractor)
    first = extract_features(clips, extractor, tmp_path / "cache", progress=False, batch_size=2)
    assert calls == [2, 2, 1]
    second = extract_features(clips, extractor, tmp_path / "cache", progress=False)
    assert calls == [2, 2, 1]
    for a, b, clip in zip(first, second, clips):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, extractor(sf.read(clip, dtype="float32")[0], SR), atol=1e-5)


def test_default_cache_dir_is_cache_root(clips, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path / "env-cache"))
    extract_features(clips[:1], "logmel", progress=False)
    assert list((tmp_path / "env-cache").glob("logmel-*/*.npz"))


def test_resume_after_interruption(monkeypatch, clips, tmp_path) -> None:
    extractor = get_extractor("logmel")
    original = extractor.batch
    seen: list[int] = []

    def flaky(waves, sr):
        seen.append(len(waves))
        if len(seen) == 2:
            raise KeyboardInterrupt  # simulated Ctrl-C in the middle of the run
        return original(waves, sr)

    monkeypatch.setattr(extractor, "batch", flaky)
    with pytest.raises(KeyboardInterrupt):
        extract_features(clips, extractor, tmp_path / "cache", progress=False, batch_size=2)
    cache = FeatureCache(tmp_path / "cache", extractor)
    assert [cache.get(c) is not None for c in clips] == [True, True, False, False, False]
    assert not list(cache.folder.glob("*.tmp")) and not list(cache.folder.glob(".*.tmp"))

    calls = _count_batches(monkeypatch, extractor)
    out = extract_features(clips, extractor, tmp_path / "cache", progress=False, batch_size=2)
    assert calls == [2, 1]  # only the three missing clips
    assert all(o is not None and o.shape[1] == 128 for o in out)


def test_corrupt_cache_entry_is_recomputed(monkeypatch, clips, tmp_path) -> None:
    extractor = get_extractor("mfcc")
    extract_features(clips, extractor, tmp_path / "cache", progress=False)
    cache = FeatureCache(tmp_path / "cache", extractor)
    cache.entry_path(clips[1]).write_bytes(b"PK\x03\x04 garbage")
    calls = _count_batches(monkeypatch, extractor)
    with pytest.warns(CacheWarning, match="corrupt"):
        out = extract_features(clips, extractor, tmp_path / "cache", progress=False)
    assert calls == [1]
    assert out[1].shape[1] == 120 and cache.get(clips[1]) is not None


def test_cache_key_follows_config_and_file(clips, tmp_path) -> None:
    a, b = get_extractor("mfcc"), get_extractor("mfcc", n_mfcc=20)
    assert FeatureCache(tmp_path, a).folder != FeatureCache(tmp_path, b).folder
    assert FeatureCache(tmp_path, a).folder == FeatureCache(tmp_path, get_extractor("mfcc")).folder
    assert FeatureCache(tmp_path, get_extractor("frft_mfcc", alpha=0.5)).folder != \
        FeatureCache(tmp_path, get_extractor("frft_mfcc", alpha=0.6)).folder
    out_a = extract_features(clips[:1], a, tmp_path, progress=False)[0]
    out_b = extract_features(clips[:1], b, tmp_path, progress=False)[0]
    assert out_a.shape[1] == 120 and out_b.shape[1] == 60

    cache = FeatureCache(tmp_path, a)
    key_before = cache.entry_path(clips[0])
    _write(clips[0], _speechlike(0.8, 42))
    os.utime(clips[0], ns=(1, 10**18))
    assert cache.entry_path(clips[0]) != key_before
    new = extract_features(clips[:1], a, tmp_path, progress=False)[0]
    assert new.shape[0] == 1 + int(0.8 * SR) // 160  # recomputed for the new content


def test_bad_input_raises_or_skips(clips, tmp_path, caplog) -> None:
    bad = tmp_path / "audio" / "x.wav"
    bad.write_text("not audio")
    missing = tmp_path / "audio" / "gone.wav"
    paths = [clips[0], bad, clips[1], missing]
    with pytest.raises(DataError) as info:
        extract_features(paths[:3], "logmel", tmp_path / "cache", progress=False)
    assert info.value.path == bad
    with pytest.raises(DataError, match="not found") as info:  # missing files fail before any work
        extract_features(paths, "logmel", tmp_path / "cache", progress=False)
    assert info.value.path == missing
    with caplog.at_level(logging.WARNING, logger="emofuse.features.cache"):
        out = extract_features(paths, "logmel", tmp_path / "cache", progress=False, on_error="skip")
    assert out[1] is None and out[3] is None and out[0] is not None and out[2] is not None
    assert "x.wav" in caplog.text and "gone.wav" in caplog.text
    with pytest.raises(ValueError):
        extract_features(paths, "logmel", tmp_path / "cache", on_error="ignore")


def test_ten_minute_clip_logmel(tmp_path) -> None:
    rng = np.random.default_rng(0)
    path = _write(tmp_path / "long.flac", (0.05 * rng.standard_normal(600 * SR)).astype(np.float32))
    out = extract_features([path], "logmel", tmp_path / "cache", progress=False)[0]
    assert out.shape == (60001, 128) and np.isfinite(out).all()


# ---------------------------------------------------------------- user feature files


def test_load_feature_file(tmp_path) -> None:
    np.save(tmp_path / "ok.npy", np.ones((4, 3)))
    assert load_feature_file(tmp_path / "ok.npy").shape == (4, 3)
    np.save(tmp_path / "vec.npy", np.ones(35))
    assert load_feature_file(tmp_path / "vec.npy").shape == (1, 35)
    np.savez(tmp_path / "ok.npz", features=np.zeros((2, 5)), other=np.zeros(1))
    assert load_feature_file(tmp_path / "ok.npz").shape == (2, 5)

    bad = np.ones((4, 3))
    bad[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(DataError, match="NaN") as info:
        load_feature_file(tmp_path / "nan.npy")
    assert info.value.path == tmp_path / "nan.npy"
    np.save(tmp_path / "inf.npy", np.array([1.0, np.inf]))
    with pytest.raises(DataError, match="infinite"):
        load_feature_file(tmp_path / "inf.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="obj.npy"):
        load_feature_file(tmp_path / "obj.npy")
    (tmp_path / "junk.npy").write_text("hello")
    with pytest.raises(DataError, match="junk.npy"):
        load_feature_file(tmp_path / "junk.npy")
    with pytest.raises(DataError, match="not found"):
        load_feature_file(tmp_path / "absent.npy")


def test_measure_rtf(clips) -> None:
    rows = measure_rtf(["logmel", "mfcc"], clips[:2])
    assert [r["name"] for r in rows] == ["logmel", "mfcc"]
    for row in rows:
        assert row["clips"] == 2 and row["audio_s"] == pytest.approx(0.7, abs=0.01)
        assert 0 < row["rtf"] < 5 and row["compute_s"] > 0


def test_speed_module_runs_without_runpy_warning() -> None:
    """`python -m emofuse.features.speed` must not import its own module twice (RuntimeWarning)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "emofuse.features.speed", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout


@pytest.mark.realdata
def test_real_ravdess_clips(shared_data, tmp_path) -> None:
    folder = shared_data / "ravdess-speech-16k" / "Actor_01"
    paths = sorted(folder.glob("*.flac"))[:2]
    out = extract_features(paths, "egemaps", tmp_path / "cache", progress=False)
    assert all(o.shape == (1, 88) and np.isfinite(o).all() for o in out)
    assert not np.allclose(out[0], out[1])


def test_cache_key_follows_content_not_path(clips, tmp_path) -> None:
    """A copied (or re-mounted) clip with the same bytes hits the cache; other bytes do not."""
    import shutil

    copy = tmp_path / "elsewhere" / "copy.wav"
    copy.parent.mkdir()
    shutil.copyfile(clips[0], copy)
    os.utime(copy, ns=(1, 10**15))
    cache = FeatureCache(tmp_path / "cache", get_extractor("logmel"))
    assert cache.entry_path(copy) == cache.entry_path(clips[0])
    assert cache.entry_path(clips[1]) != cache.entry_path(clips[0])
