"""Modalities, source kinds, extractor declarations and the one extraction driver (#11 item 1)."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from emofuse.data.modalities import Modality, get_modality, has_source, list_modalities, register_modality
from emofuse.data.record import Sample
from emofuse.errors import ConfigError, DataError
from emofuse.features import FeatureCache, get_extractor, list_extractors, list_sources
from emofuse.features.base import _REGISTRY, FeatureExtractor, register
from emofuse.features.driver import extract, parse_shard
from emofuse.features.signal import read_signal_file, write_signal_file
from emofuse.features.store import FeatureStore

SR = 16000


@pytest.fixture()
def temporary_extractors():
    """Registers test extractors and removes them afterwards."""
    added: list[str] = []

    def add(cls):
        register(cls)
        added.append(cls.name)
        return cls

    yield add
    for name in added:
        _REGISTRY.pop(name, None)


def _signals(tmp_path: Path, n: int = 6, channels: int = 3) -> list[Path]:
    rng = np.random.default_rng(1)
    return [write_signal_file(tmp_path / "sig" / f"s{i}.npz", rng.standard_normal((40 + 10 * i, channels)), 20.0)
            for i in range(n)]


def _signal_samples(paths: list[Path]) -> list[Sample]:
    return [Sample(id=f"s{i}", speaker="a", dataset="t", label="happy", sources={"signal": p})
            for i, p in enumerate(paths)]


class Counter:
    """Records the signal files ``signal_stats`` computes (by their row count), optionally failing."""

    def __init__(self, monkeypatch, fail_on_call: int | None = None) -> None:
        from emofuse.features.signal import SignalStats

        self.seen: list[int] = []
        self.calls = 0
        self._lock = threading.Lock()
        original = SignalStats.process

        def process(extractor, inputs):
            with self._lock:
                self.calls += 1
                if self.calls == fail_on_call:
                    raise RuntimeError("simulated crash in the middle of the run")
                self.seen.extend(data.shape[0] for data, _ in inputs)
            return original(extractor, inputs)

        monkeypatch.setattr(SignalStats, "process", process)


# ---------------------------------------------------------------- registries and declarations


def test_modality_registry():
    assert list_modalities()[:5] == ["audio", "face", "text", "meta", "signal"]
    from emofuse.data import record

    assert record.MODALITIES == tuple(list_modalities())
    assert get_modality("signal").sources == ("signal",) and get_modality("meta").sources == ()
    with pytest.raises(ConfigError, match="unknown modality 'smell'.*audio, face"):
        get_modality("smell")
    with pytest.raises(ValueError, match="already registered"):
        register_modality(Modality("audio", "again"))
    sample = Sample(id="a", speaker="s", dataset="t", label=None, sources={"signal": Path("x.npz")})
    assert has_source(sample, "signal") and not has_source(sample, "audio")


def test_recipes_read_the_modality_registry():
    from emofuse.recipes import recipe_from_dict

    recipe = recipe_from_dict({"model": "logreg", "features": {"signal": "signal_stats", "face": "au"}})
    assert recipe.features == {"signal": ["signal_stats"], "face": ["au"]}
    with pytest.raises(ConfigError, match="unknown modality 'smell'.*signal"):
        recipe_from_dict({"model": "logreg", "features": {"smell": "au"}})


def test_source_kinds_and_extractor_declarations():
    assert list_sources()[:5] == ["audio", "text", "table", "meta", "signal"]
    assert list_extractors("table") == ["au", "mosei_covarep", "mosei_facet", "mosei_glove"]
    assert list_extractors("eeg") == ["eeg_band_frames", "eeg_band_power", "eeg_raw"]
    assert list_extractors("peripheral") == ["peripheral_band_frames", "peripheral_band_power", "peripheral_raw"]
    assert list_extractors("meta") == ["speaker_identity", "speaker_meta"]
    assert list_extractors("signal") == ["signal_frames", "signal_stats"]
    assert list_extractors("video") == ["face_frames"]
    with pytest.raises(ConfigError, match="unknown extractor source 'face_crops'"):
        list_extractors("face_crops")
    declared = {n: (get_extractor(n).source, get_extractor(n).modality, get_extractor(n).produces,
                    get_extractor(n).frame_rate) for n in list_extractors(None)}
    assert declared["whisper"] == ("audio", "audio", "sequence", 50.0)
    assert declared["whisper_pooled"] == ("audio", "audio", "vector", None)
    assert declared["egemaps"] == ("audio", "audio", "vector", None)
    assert declared["egemaps_lld"] == ("audio", "audio", "sequence", 100.0)
    assert declared["logmel"][2:] == declared["mfcc"][2:] == declared["frft_mfcc"][2:] == ("sequence", 100.0)
    assert declared["minilm_tokens"] == ("text", "text", "sequence", None)  # word pieces: no time axis
    assert declared["minilm_pooled"] == ("text", "text", "vector", None)
    assert declared["au"] == ("table", "face", "vector", None)
    assert declared["speaker_meta"] == declared["speaker_identity"] == ("meta", "meta", "vector", None)
    assert declared["signal_stats"] == ("signal", "signal", "vector", None)
    assert declared["signal_frames"] == ("signal", "signal", "sequence", 4.0)
    assert declared["face_frames"] == ("video", "face", "sequence", 2.0)  # the default sampler: 2 fps
    assert declared["mosei_glove"] == ("table", "text", "sequence", None)  # one row per word
    assert declared["eeg_band_power"] == ("eeg", "eeg", "vector", None)
    assert declared["peripheral_band_frames"] == ("peripheral", "peripheral", "sequence", 0.25)
    assert declared["eeg_raw"] == ("eeg", "eeg", "sequence", 32.0)
    assert get_extractor("logmel", hop_length=320).frame_rate == 50.0  # follows the hop length
    assert get_extractor("mfcc", hop_length=80).frame_rate == 200.0
    assert get_extractor("signal_frames", frame_rate=10).frame_rate == 10.0


def test_an_extractor_module_alone_registers_it(tmp_path, monkeypatch):
    """Adding an extractor is adding its module: the package imports every module it holds."""
    import emofuse.features as features

    (tmp_path / "test_plugin_extractor.py").write_text(
        "from dataclasses import dataclass\n"
        "from emofuse.features.base import FeatureExtractor, register\n"
        "@register\n@dataclass\nclass Plugin(FeatureExtractor):\n"
        "    name = 'test_plugin'\n    source = 'meta'\n    modality = 'meta'\n    produces = 'vector'\n")
    monkeypatch.setattr(features, "__path__", [*features.__path__, str(tmp_path)])
    try:
        features._register_extractor_modules()
        assert "test_plugin" in list_extractors("meta")
    finally:
        _REGISTRY.pop("test_plugin", None)
        import sys

        sys.modules.pop("emofuse.features.test_plugin_extractor", None)


def test_register_checks_declarations():
    @dataclass
    class Bad(FeatureExtractor):
        name = "bad_source"
        source = "smell"

    with pytest.raises(ValueError, match="unknown source 'smell'"):
        register(Bad)
    Bad.source, Bad.produces = "audio", "matrix"
    with pytest.raises(ValueError, match="produces"):
        register(Bad)
    assert "bad_source" not in list_extractors(None)


def test_explain_uses_the_declared_frame_rate(temporary_extractors):
    from emofuse.inference.explain import feature_frame_rate

    def spec(name, **cfg):
        return {"names": [name], "configs": {name: cfg}, "pooled": False}

    assert feature_frame_rate(spec("whisper")) == 50.0
    assert feature_frame_rate(spec("logmel", hop_length=320)) == 50.0
    assert feature_frame_rate(spec("egemaps_lld")) == 100.0
    assert feature_frame_rate(spec("signal_frames", frame_rate=8.0)) == 8.0
    assert feature_frame_rate(spec("minilm_tokens")) is None and feature_frame_rate(spec("egemaps")) is None
    assert feature_frame_rate({**spec("whisper"), "pooled": True}) is None
    assert feature_frame_rate(spec("no_such_extractor")) is None

    @temporary_extractors
    @dataclass
    class Slow(FeatureExtractor):  # a new extractor: explain needs no edit to know its rate
        name = "test_slow_frames"
        frame_rate = 12.5

    assert feature_frame_rate(spec("test_slow_frames")) == 12.5


# ---------------------------------------------------------------- table and meta extractors


def test_au_and_speaker_extractors_equal_the_old_arrays(tmp_path):
    rng = np.random.default_rng(0)
    rows = [rng.random(35).astype(np.float64), None, rng.random(35).astype(np.float32)]
    samples = [Sample(id="a", speaker="Ross", dataset="meld", label="joy", sources={"face": rows[0]},
                      meta={"gender": "M"}),
               Sample(id="b", speaker="01", dataset="ravdess", label="sad", meta={"gender": "female"}),
               Sample(id="c", speaker="Mr. Heckles", dataset="meld", label="joy", sources={"face": rows[2]})]
    store = FeatureStore(samples, tmp_path / "cache", progress=False)
    au = store.get("au")
    for row, got in zip(rows, au):  # today's formula: np.asarray(row, float32).reshape(1, -1)
        if row is None:
            assert got is None
        else:
            old = np.asarray(row, dtype=np.float32).reshape(1, -1)
            assert got.dtype == old.dtype and got.shape == old.shape and got.tobytes() == old.tobytes()
    meta = store.get("speaker_meta")
    assert meta[0].tobytes() == np.array([[1, 0]], np.float32).tobytes()
    assert meta[1].tobytes() == np.array([[0, 1]], np.float32).tobytes() and meta[2] is None
    ident = store.get("speaker_identity")
    assert ident[0].tobytes() == np.eye(7, dtype=np.float32)[5:6].tobytes()  # Ross
    assert ident[2].tobytes() == np.eye(7, dtype=np.float32)[6:7].tobytes() and ident[1] is None  # other; not MELD
    assert not (tmp_path / "cache").exists(), "table and meta features are not cached"


@pytest.mark.realdata
def test_real_action_units_are_unchanged(ravdess_au):
    from emofuse.data.specs import load_dataset

    samples = load_dataset("ravdess", ravdess_au, make_folds=False).samples[:120]
    arrays = FeatureStore(samples, progress=False).get("au")
    for sample, got in zip(samples, arrays):
        face = sample.sources.get("face")
        assert (got is None) == (face is None)
        if face is not None:
            assert got.tobytes() == np.asarray(face, dtype=np.float32).reshape(1, -1).tobytes()


# ---------------------------------------------------------------- signal files and extractors


def test_signal_file_round_trip_and_validation(tmp_path):
    data = np.arange(12, dtype=np.float64).reshape(6, 2)
    path = write_signal_file(tmp_path / "ok.npz", data, 32)
    got, rate = read_signal_file(path)
    assert got.dtype == np.float32 and got.shape == (6, 2) and rate == 32.0
    np.testing.assert_array_equal(got, data)
    assert read_signal_file(write_signal_file(tmp_path / "one.npz", np.ones(5), 1.5))[0].shape == (5, 1)

    def bad(name: str, **arrays: Any) -> Path:
        np.savez(tmp_path / name, **arrays)
        return tmp_path / name

    cases = {
        bad("nodata.npz", rate=np.float64(10)): "lacks 'data'",
        bad("norate.npz", data=np.ones((3, 2))): "lacks 'rate'",
        bad("ints.npz", data=np.ones((3, 2), dtype=np.int16), rate=10.0): "float array, got dtype int16",
        bad("flat.npz", data=np.ones(3), rate=10.0): r"\[T, C\] array, got shape \(3,\)",
        bad("cube.npz", data=np.ones((2, 2, 2)), rate=10.0): "got shape",
        bad("empty.npz", data=np.ones((0, 2)), rate=10.0): "non-empty",
        bad("nan.npz", data=np.array([[1.0, np.nan]]), rate=10.0): "1 NaN or infinite",
        bad("zero.npz", data=np.ones((3, 2)), rate=0.0): "positive",
        bad("negative.npz", data=np.ones((3, 2)), rate=-5): "positive",
        bad("tworates.npz", data=np.ones((3, 2)), rate=np.array([1.0, 2.0])): "one number",
        bad("pickled.npz", data=np.array([{"a": 1}], dtype=object), rate=1.0): "not a readable",
    }
    np.save(tmp_path / "plain.npy", np.ones((3, 2)))
    cases[tmp_path / "plain.npy"] = "must be an .npz"
    (tmp_path / "junk.npz").write_text("junk")
    cases[tmp_path / "junk.npz"] = "not a readable"
    cases[tmp_path / "absent.npz"] = "not found"
    for path, problem in cases.items():
        with pytest.raises(DataError, match=problem) as info:
            read_signal_file(path)
        assert info.value.path == path
    with pytest.raises(DataError, match="positive") as info:
        write_signal_file(tmp_path / "w.npz", np.ones((3, 2)), -1)
    assert info.value.path == tmp_path / "w.npz" and not (tmp_path / "w.npz").exists()


def test_signal_stats_and_frames_values(tmp_path):
    t = np.arange(40) / 10.0  # 4 s at 10 Hz
    data = np.stack([2.0 * t + 1.0, np.where(np.arange(40) < 20, 0.0, 1.0)], axis=1)
    sample = _signal_samples([write_signal_file(tmp_path / "ramp.npz", data, 10.0)])
    (stats,) = extract("signal_stats", sample, tmp_path / "cache", progress=False)
    mean, std, lo, hi, slope = stats.reshape(5, 2)
    np.testing.assert_allclose(mean, data.mean(0), rtol=1e-6)
    np.testing.assert_allclose(std, data.std(0), rtol=1e-6)
    np.testing.assert_allclose(lo, [1.0, 0.0]) and np.testing.assert_allclose(hi, [8.8, 1.0], rtol=1e-6)
    assert slope[0] == pytest.approx(2.0, rel=1e-5)  # units per second
    (frames,) = extract(get_extractor("signal_frames", frame_rate=2.0), sample, tmp_path / "cache", progress=False)
    assert frames.shape == (8, 4)  # 4 s at 2 frames/s, [mean, std] of 2 channels
    np.testing.assert_allclose(frames[:, 1], [0, 0, 0, 0, 1, 1, 1, 1])  # channel 2's half-second means
    np.testing.assert_allclose(frames[0, 0], data[:5, 0].mean(), rtol=1e-6)
    (odd,) = extract(get_extractor("signal_frames", frame_rate=3.0), sample, tmp_path / "cache", progress=False)
    assert odd.shape == (12, 4)
    with pytest.raises(DataError, match="fewer than the 50 frames/s") as info:
        extract(get_extractor("signal_frames", frame_rate=50.0), sample, tmp_path / "cache", progress=False)
    assert info.value.path == sample[0].sources["signal"]


def test_signal_files_with_different_channel_counts_are_an_error(tmp_path):
    paths = [write_signal_file(tmp_path / "a.npz", np.ones((5, 2)), 5.0),
             write_signal_file(tmp_path / "b.npz", np.ones((5, 3)), 5.0)]
    with pytest.raises(DataError, match="15 columns here but 10") as info:
        extract("signal_stats", _signal_samples(paths), tmp_path / "cache", progress=False)
    assert info.value.path == paths[1]


# ---------------------------------------------------------------- the driver


def test_driver_resumes_after_an_interruption(monkeypatch, tmp_path):
    paths = _signals(tmp_path)
    samples = _signal_samples(paths)
    crash = Counter(monkeypatch, fail_on_call=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        extract("signal_stats", samples, tmp_path / "cache", progress=False, batch_size=2)
    cache = FeatureCache(tmp_path / "cache", get_extractor("signal_stats"))
    assert [cache.get(p) is not None for p in paths] == [True, True, False, False, False, False]
    assert not list(cache.folder.glob("*.lock")) and not list(cache.folder.glob("*.tmp"))
    again = Counter(monkeypatch)
    out = extract("signal_stats", samples, tmp_path / "cache", progress=False, batch_size=2)
    assert again.seen == [60, 70, 80, 90], "only the four missing files are computed"
    assert all(o.shape == (1, 15) for o in out)


def test_two_shards_compute_every_entry_once(monkeypatch, tmp_path):
    paths = _signals(tmp_path, n=7)
    samples = _signal_samples(paths) + _signal_samples(paths[:2])  # repeated files: one entry each
    counter = Counter(monkeypatch)
    first = extract("signal_stats", samples, tmp_path / "cache", progress=False, shard=(1, 2))
    assert sorted(counter.seen) == [40, 60, 80, 100]  # entries 1, 3, 5, 7
    assert [a is not None for a in first] == [True, False, True, False, True, False, True, True, False]
    extract("signal_stats", samples, tmp_path / "cache", progress=False, shard="2/2")
    assert sorted(counter.seen) == [40 + 10 * i for i in range(7)], "every entry computed exactly once"
    counter.seen.clear()
    full = extract("signal_stats", samples, tmp_path / "cache", progress=False)
    assert counter.seen == [] and all(a is not None for a in full)
    np.testing.assert_array_equal(full[7], full[0])


def test_concurrent_shards_and_full_runs_share_one_cache(monkeypatch, tmp_path):
    paths = _signals(tmp_path, n=8)
    samples = _signal_samples(paths)
    counter = Counter(monkeypatch)
    barrier = threading.Barrier(3)
    results: dict[str, list] = {}

    def run(shard):
        barrier.wait()
        results[str(shard)] = extract("signal_stats", samples, tmp_path / "cache", progress=False, shard=shard,
                                      batch_size=1)

    threads = [threading.Thread(target=run, args=(s,)) for s in ((1, 2), (2, 2), None)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(counter.seen) == [40 + 10 * i for i in range(8)], "no entry computed twice"
    assert all(a is not None for a in results["None"])


def test_parse_shard():
    assert parse_shard("2/4") == (2, 4) and parse_shard((1, 1)) == (1, 1) and parse_shard(None) is None
    for bad in ("0/4", "5/4", "2", "a/b", "2/4/6"):
        with pytest.raises(ConfigError, match="shard"):
            parse_shard(bad)


def test_extract_cli_shards(monkeypatch, tmp_path, capsys):
    from emofuse.cli import main

    paths = _signals(tmp_path, n=5)
    manifest = tmp_path / "corpus.csv"
    manifest.write_text("id,speaker,label,signal\n" + "".join(
        f"s{i},spk{i % 2},{'happy' if i % 2 else 'sad'},{p}\n" for i, p in enumerate(paths)))
    counter = Counter(monkeypatch)
    cache = tmp_path / "cache"
    for shard in ("1/2", "2/2"):
        assert main(["extract", str(manifest), "--features", "signal_stats", "--shard", shard, "--cache", str(cache),
                     "--quiet"]) == 0
    assert sorted(counter.seen) == [40, 50, 60, 70, 80]
    assert "5/5 clips cached (after shard 2/2)" in capsys.readouterr().out
    assert main(["extract", str(manifest), "--features", "signal_stats", "--cache", str(cache), "--quiet"]) == 0
    assert len(counter.seen) == 5, "a full run after the shards computes nothing"
    assert main(["extract", str(manifest), "--features", "signal_stats", "--shard", "3/2"]) == 2
    assert "1 <= K <= N" in capsys.readouterr().err


def test_text_runs_on_the_driver(monkeypatch, tmp_path, temporary_extractors):
    import emofuse.features.driver as driver
    from emofuse.features.sources import text_key

    @temporary_extractors
    @dataclass
    class CharCodes(FeatureExtractor):  # a text extractor needing no model: one row per character
        name = "test_char_codes"
        source = "text"
        modality = "text"
        dim = 1

        def process(self, inputs):
            batches.append(list(inputs))
            return [np.array([[float(ord(c))] for c in text], dtype=np.float32) for text in inputs]

    batches: list[list[str]] = []
    calls: list[str] = []
    original = driver.extract
    monkeypatch.setattr(driver, "extract", lambda ext, *a, **k: calls.append(ext.name) or original(ext, *a, **k))
    texts = ["a longer text", "hi", None, "hi", "mid text"]
    samples = [Sample(id=f"u{i}", speaker="s", dataset="t", label=None, sources={} if t is None else {"text": t})
               for i, t in enumerate(texts)]
    out = FeatureStore(samples, tmp_path / "cache", progress=False).get("test_char_codes")
    assert calls == ["test_char_codes"] and out[2] is None
    assert batches == [["hi", "mid text", "a longer text"]]  # distinct texts, shortest first
    np.testing.assert_array_equal(out[1], out[3])
    folder = FeatureCache(tmp_path / "cache", CharCodes()).folder
    assert sorted(p.name for p in folder.glob("*.npz")) == sorted(f"{text_key(t)}.npz" for t in {"hi", "mid text",
                                                                                                 "a longer text"})
    from emofuse.features.text import extract_text_features

    again = extract_text_features(["hi", "new one"], "test_char_codes", tmp_path / "cache", progress=False)
    assert calls[-1] == "test_char_codes" and batches[-1] == ["new one"] and again[0].shape == (2, 1)


def test_feature_store_views_take_augmented_view_objects(tmp_path):
    from emofuse.inputs.views import SpeedView

    path = tmp_path / "c.wav"
    sf.write(path, np.sin(np.arange(int(0.5 * SR)) / 10.0).astype(np.float32) * 0.1, SR)
    samples = [Sample(id="c", speaker="s", dataset="t", label="happy",
                      sources={"audio": path, "face": np.ones(3, dtype=np.float32)})]
    store = FeatureStore(samples, tmp_path / "cache", progress=False)

    class Louder:  # any object with applies_to / wrap is a view
        def applies_to(self, extractor):
            return extractor.source == "audio"

        def wrap(self, extractor):
            return SpeedView(1.25).wrap(extractor)

    louder = Louder()
    view = store.view(louder)
    assert store.view(louder) is view and view.view(None) is store
    assert view.get("au") is store.get("au")
    assert view.get("logmel")[0].shape[0] < store.get("logmel")[0].shape[0]
    assert store.view(SpeedView(0.9)) is store.view(0.9) and store.view(0.9).speed == 0.9


# ---------------------------------------------------------------- cache paths stay where they were


def test_cache_entry_paths_are_unchanged(tmp_path):
    from emofuse.features.augment import SpeedPerturbed

    clip = tmp_path / "clip.wav"
    sf.write(clip, np.zeros(1600, dtype=np.float32), SR)
    digest = hashlib.sha256(clip.read_bytes()).hexdigest()[:24]
    # the folders the shared cache holds today (RAVDESS Whisper / eGeMAPS, and their speed views)
    assert FeatureCache(tmp_path, get_extractor("whisper")).folder.name == "whisper-d44d3aa6c1f4"
    assert FeatureCache(tmp_path, get_extractor("egemaps")).folder.name == "egemaps-be571a46bd3a"
    assert FeatureCache(tmp_path, SpeedPerturbed(get_extractor("whisper"), 0.9)).folder.name == \
        "whisper-speed0.9-a1f20b62480c"
    mfcc = get_extractor("mfcc", n_mfcc=20)
    blob = json.dumps({"name": "mfcc", "config": mfcc.config()}, sort_keys=True, default=str)
    expected = tmp_path / f"mfcc-{hashlib.sha256(blob.encode()).hexdigest()[:12]}" / f"{digest}.npz"
    assert FeatureCache(tmp_path, mfcc).entry_path(clip) == expected
    (features,) = extract(mfcc, [Sample(id="c", speaker="s", dataset="t", label=None, sources={"audio": clip})],
                          tmp_path, progress=False)
    assert expected.is_file() and features.shape[1] == 60


def test_text_cache_entry_paths_are_unchanged(tmp_path, temporary_extractors):
    from emofuse.features.text import TextFeatureCache

    @temporary_extractors
    @dataclass
    class Echo(FeatureExtractor):
        name = "test_echo_text"
        source = "text"
        modality = "text"
        dim = 1

        def identity(self):
            return {"model_fingerprint": "abc"}

        def process(self, inputs):
            return [np.ones((1, 1), np.float32) for _ in inputs]

    text = "Kids are talking by the door"
    blob = json.dumps({"name": "test_echo_text", "config": {}, "identity": {"model_fingerprint": "abc"}},
                      sort_keys=True, default=str)
    expected = (tmp_path / f"test_echo_text-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"
                / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.npz")
    assert FeatureCache(tmp_path, Echo()).entry_path(text) == expected == TextFeatureCache(tmp_path, Echo()).entry_path(text)
    extract(Echo(), [Sample(id="u", speaker="s", dataset="t", label=None, sources={"text": text})], tmp_path,
            progress=False)
    assert expected.is_file()


def test_gated_fusion_reads_the_modality_registry():
    import torch

    from emofuse import create_model
    from emofuse.models.gated_fusion import fused_order

    assert fused_order(["signal", "text", "meta", "audio", "face"]) == ("face", "audio", "text", "signal")
    model = create_model("gated_fusion", num_classes=3, input_dims={"audio": 4, "signal": 5, "meta": 2}, hidden=8,
                         meta_hidden=4, head_hidden=8)
    assert model.fused == ("audio", "signal")
    inputs = {"audio": torch.randn(2, 6, 4), "signal": torch.randn(2, 3, 5), "meta": torch.randn(2, 1, 2)}
    masks = {m: torch.ones(x.shape[:2], dtype=torch.bool) for m, x in inputs.items()}
    assert model(inputs, masks).logits.shape == (2, 3)
    with pytest.raises(ConfigError, match="unknown inputs: \\['smell'\\]"):
        create_model("gated_fusion", num_classes=3, input_dims={"audio": 4, "smell": 2})
