"""Frames without data (whole NaN rows) reach the models as masked frames (#12 item 4)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from emofuse.data.record import Sample
from emofuse.errors import DataError
from emofuse.features import FeatureCache
from emofuse.features.base import _REGISTRY, FeatureExtractor, register
from emofuse.features.driver import extract
from emofuse.features.store import pool_vector, speaker_normalize
from emofuse.inputs.missing import all_missing, missing_rows, rows_problem
from emofuse.inputs.normalize import fit_standardizer
from emofuse.inputs.plan import modality_arrays
from emofuse.training.data import FeatureDataset, collate


def _with_gaps(t: int = 6, d: int = 3, gaps=(1, 4), seed: int = 0) -> np.ndarray:
    a = np.random.default_rng(seed).standard_normal((t, d)).astype(np.float32)
    a[list(gaps)] = np.nan
    return a


def test_rows_problem_accepts_whole_nan_rows_only():
    assert rows_problem(np.ones((3, 2))) is None
    assert rows_problem(_with_gaps()) is None
    assert "NaN or infinite" in rows_problem(_with_gaps(), allow_missing=False)
    partial = np.ones((3, 2))
    partial[1, 0] = np.nan
    assert "not entirely NaN" in rows_problem(partial)
    assert "infinite" in rows_problem(np.array([[1.0, np.inf]]))
    assert missing_rows(_with_gaps()).tolist() == [False, True, False, False, True, False]
    assert all_missing(np.full((2, 3), np.nan)) and not all_missing(_with_gaps()) and not all_missing(None)


def test_dataset_accepts_nan_rows_and_rejects_partial_nan_and_inf():
    ds = FeatureDataset({"face": [_with_gaps(), np.full((4, 3), np.nan), np.ones((2, 3))]}, [0, 1, 0], ["a", "b", "c"])
    assert ds.features["face"][1] is None  # no frame with data: the modality is absent
    assert ds.num_samples_per_modality == {"face": 2}
    partial = np.ones((3, 3))
    partial[2, 1] = np.nan
    with pytest.raises(DataError, match="clip7.*NaN"):
        FeatureDataset({"face": [partial]}, [0], ["clip7"])
    with pytest.raises(DataError, match="clip8.*infinite"):
        FeatureDataset({"face": [np.array([[1.0, np.inf, 0.0]])]}, [0], ["clip8"])


def test_collate_masks_nan_rows_like_padding():
    gaps = _with_gaps()
    ds = FeatureDataset({"face": [gaps, np.full((3, 3), np.nan), np.ones((2, 3))]}, None, ["a", "b", "c"])
    batch = collate([ds[0], ds[1], ds[2]])
    x, mask = batch["inputs"]["face"], batch["masks"]["face"]
    assert mask.tolist() == [[True, False, True, True, False, True], [False] * 6, [True, True] + [False] * 4]
    assert torch.isfinite(x).all() and x[0, [1, 4]].abs().sum() == 0 and x[1].abs().sum() == 0
    np.testing.assert_array_equal(x[0, [0, 2, 3, 5]].numpy(), gaps[[0, 2, 3, 5]])


def test_arrays_without_nan_collate_exactly_as_before():
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((t, 4)).astype(np.float32) for t in (5, 2, 7)]
    batch = collate([FeatureDataset({"audio": arrays}, [0, 1, 2], ["a", "b", "c"])[i] for i in range(3)])
    for i, a in enumerate(arrays):
        assert torch.equal(batch["inputs"]["audio"][i, : len(a)], torch.from_numpy(a))
        assert batch["masks"]["audio"][i].tolist() == [True] * len(a) + [False] * (7 - len(a))


def test_standardizer_leaves_nan_rows_out():
    gaps, full = _with_gaps(seed=1), np.random.default_rng(2).standard_normal((4, 3)).astype(np.float32)
    stats = fit_standardizer({"face": [gaps, full, np.full((2, 3), np.nan)]}, [0, 1, 2])
    valid = np.concatenate([gaps[~missing_rows(gaps)], full]).astype(np.float64)
    np.testing.assert_allclose(stats["face"][0], valid.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["face"][1], valid.std(0), rtol=1e-6)
    assert fit_standardizer({"face": [np.full((2, 3), np.nan)]}, [0]) == {}  # no frame with data: no statistics
    same = fit_standardizer({"face": [full]}, [0])  # without NaN: as before
    np.testing.assert_array_equal(same["face"][0], full.astype(np.float64).mean(0).astype(np.float32))


def test_pooling_and_modality_arrays_with_missing_frames():
    gaps = _with_gaps()
    valid = gaps[~missing_rows(gaps)]
    np.testing.assert_allclose(pool_vector(gaps), np.concatenate([valid.mean(0), valid.std(0)]), rtol=1e-6)
    assert np.isnan(pool_vector(np.full((3, 2), np.nan))).all()
    nothing = np.full((5, 3), np.nan)
    assert modality_arrays([[gaps, nothing, None]], ["f"]) == [gaps, None, None]
    pooled = modality_arrays([[gaps, nothing]], ["f"], pooled=True)
    assert pooled[1] is None and pooled[0].shape == (1, 6) and np.isfinite(pooled[0]).all()


def test_speaker_normalisation_leaves_nan_rows_out():
    samples = [Sample(id=f"s{i}", speaker="a", dataset="t", label=None, sources={}) for i in range(10)]
    arrays = [_with_gaps(seed=i) for i in range(10)]
    out = speaker_normalize({"face": arrays}, samples)["face"]
    assert all((missing_rows(o) == missing_rows(a)).all() for o, a in zip(out, arrays))
    rows = np.concatenate([o[~missing_rows(o)] for o in out])
    np.testing.assert_allclose(rows.mean(0), 0, atol=1e-5)


@dataclass
class _Gappy(FeatureExtractor):
    """Odd-length signals give a sequence whose second row is missing (a frame without data)."""

    name = "test_gappy"
    source = "signal"
    modality = "signal"
    missing_rows = True
    dim = 2

    def process(self, inputs):
        out = []
        for data, _ in inputs:
            a = np.stack([data[:3, 0], data[:3, 0] + 1], axis=1).astype(np.float32)
            if len(data) % 2:
                a[1] = np.nan
            out.append(a)
        return out


def test_driver_and_cache_keep_nan_rows_of_an_extractor_that_declares_them(tmp_path):
    from emofuse.features.signal import write_signal_file

    paths = [write_signal_file(tmp_path / f"s{n}.npz", np.arange(n, dtype=float)[:, None], 10.0) for n in (5, 6)]
    samples = [Sample(id=p.stem, speaker="a", dataset="t", label=None, sources={"signal": p}) for p in paths]
    register(_Gappy)
    try:
        first = extract("test_gappy", samples, tmp_path / "cache", progress=False)
        assert missing_rows(first[0]).tolist() == [False, True, False] and not missing_rows(first[1]).any()
        cache = FeatureCache(tmp_path / "cache", _Gappy())
        np.testing.assert_array_equal(cache.get(paths[0]), first[0])  # read back, not discarded as corrupt
        _Gappy.missing_rows = False  # an extractor that does not declare missing frames: NaN is an error
        with pytest.raises(DataError, match="NaN"):
            extract("test_gappy", samples, tmp_path / "other", progress=False)
    finally:
        _Gappy.missing_rows = True
        _REGISTRY.pop("test_gappy", None)
