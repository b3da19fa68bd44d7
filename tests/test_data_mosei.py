"""CMU-MOSEI on generated computational sequences in the SDK's HDF5 layout
(``<root>/data/<video id>/{features,intervals}``, ``<root>/metadata/<key>``), the SDK's file names and
fold lists; the regression metrics; a TFN regressor trained on the generated corpus, whose word
vectors carry the sentiment."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from emofuse.data import mosei
from emofuse.errors import DataError
from emofuse.evaluation.regression import regression_metrics

VIDEOS = [f"v{i:02d}_{'x' * (i % 3)}Q" for i in range(14)] + ["123456", "-3g5yAC"]
SEGMENTS = 4
WORDS = 4
SPLIT = {"train": VIDEOS[:9], "valid": VIDEOS[9:11], "test": VIDEOS[11:]}
DIRECTION = np.random.default_rng(42).standard_normal(300)


def write_csd(path: Path, root: str, data: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """A computational sequence as the SDK writes it (metadata as one-element vlen string datasets)."""
    with h5py.File(path, "w") as f:
        group = f.create_group(root)
        data_group = group.create_group("data")
        for vid, (features, intervals) in data.items():
            g = data_group.create_group(vid)
            g.create_dataset("features", data=features)
            g.create_dataset("intervals", data=intervals)
        meta = group.create_group("metadata")
        for key, value in {"root name": root, "computational sequence description": f"{root} (generated)",
                           "dimension names": "", "alignment compatible": "True", "dataset name": "CMU-MOSEI",
                           "computational sequence version": "1.0"}.items():
            ds = meta.create_dataset(key, (1,), dtype=h5py.special_dtype(vlen=str))
            ds[0] = value
    return path


def _video(rng: np.random.Generator, vid_index: int):
    """Per video: label rows, words (with 'sp' between words), GloVe rows, COVAREP (100 Hz) and FACET (30 Hz)."""
    labels, label_iv, words, word_iv, glove = [], [], [], [], []
    t = 0.0
    for k in range(SEGMENTS):
        sentiment = float(np.round(rng.uniform(-3, 3) * 3) / 3) if (vid_index + k) % 5 else 0.0
        emotions = np.clip(rng.uniform(0, 1, 6) + [max(sentiment, 0), max(-sentiment, 0), 0, 0, 0, 0], 0, 3)
        labels.append([sentiment, *emotions])
        label_iv.append([t, t + WORDS * 0.6])
        for w in range(WORDS):
            words.append([f"w{w}".encode()])
            word_iv.append([t, t + 0.5])
            glove.append(sentiment * DIRECTION / 3 + 0.3 * rng.standard_normal(300))
            words.append([b"sp"])
            word_iv.append([t + 0.5, t + 0.6])
            glove.append(np.zeros(300))
            t += 0.6
        t += 0.5  # a pause between segments
    covarep_t = np.arange(0, t, 0.01)
    facet_t = np.arange(0, t, 1 / 30)
    covarep = rng.standard_normal((covarep_t.size, 74))
    covarep[5, 3] = -np.inf  # the COVAREP release holds some
    facet = rng.standard_normal((facet_t.size, 35))
    as_iv = lambda x, step: np.stack([x, x + step], 1)  # noqa: E731
    return ((np.array(labels), np.array(label_iv)), (np.array(words, dtype="S8"), np.array(word_iv)),
            (np.array(glove), np.array(word_iv)), (covarep, as_iv(covarep_t, 0.01)), (facet, as_iv(facet_t, 1 / 30)))


@pytest.fixture(scope="module")
def mosei_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mosei_data") / "mosei"
    root.mkdir()
    rng = np.random.default_rng(0)
    per = {vid: _video(rng, i) for i, vid in enumerate(VIDEOS)}
    for k, (kind, name) in enumerate((("labels", "All Labels"), ("words", "words"), ("text", "glove_vectors"),
                                      ("audio", "COVAREP"), ("visual", "FACET 4.2"))):
        write_csd(root / mosei.FILES[kind], name, {vid: parts[k] for vid, parts in per.items()})
    lines = [f"standard_{name}_fold={SPLIT[name]!r}" for name in ("train", "valid", "test")]
    lines.append('raise SystemExit("this file must never be run")')
    (root / "cmu_mosei_std_folds.py").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_read_csd_layout(mosei_root):
    root, data, meta = mosei.read_csd(mosei_root / "CMU_MOSEI_Labels.csd")
    assert root == "All Labels" and set(data) == set(VIDEOS)
    assert data[VIDEOS[0]][0].shape == (SEGMENTS, 7) and meta["root name"] == "All Labels"


def test_word_alignment_and_labels(mosei_root):
    samples = mosei.prepare_mosei(mosei_root)
    assert len(samples) == len(VIDEOS) * SEGMENTS
    s = samples[0]
    assert s.id == f"{s.meta['video']}[0]" and s.speaker == s.meta["video"] and s.meta["split"] in SPLIT
    assert s.sources["text"] == "w0 w1 w2 w3"  # the 'sp' tokens dropped
    assert s.sources["mosei_text"].shape == (WORDS, 300) and s.sources["mosei_audio"].shape == (WORDS, 74)
    assert s.sources["mosei_visual"].shape == (WORDS, 35)
    # COVAREP averaged over the frames overlapping each word (word 1 spans 0.6-1.1 s: frames 60..109)
    first = next(x for x in samples if x.meta["video"] == s.meta["video"] and x.meta["segment"] == 0)
    feats, times = mosei.read_csd(mosei_root / "CMU_MOSEI_COVAREP.csd")[1][first.meta["video"]]
    hit = (times[:, 0] < 1.1) & (times[:, 1] > 0.6)
    np.testing.assert_allclose(first.sources["mosei_audio"][1], feats[hit].mean(0), rtol=1e-5)
    assert np.isfinite(first.sources["mosei_audio"]).all()  # the -inf frame set to 0
    assert s.label == ("negative" if s.meta["sentiment"] < 0 else "non_negative")
    assert set(mosei.LABEL_COLUMNS) <= set(s.meta)


def test_standard_folds_from_the_sdk_file_or_json(mosei_root, tmp_path, caplog):
    split = mosei.read_folds(mosei_root / "cmu_mosei_std_folds.py")  # read as literals, never run
    assert split[VIDEOS[0]] == "train" and split[VIDEOS[-1]] == "test" and len(split) == len(VIDEOS)
    other = tmp_path / "folds.json"
    other.write_text(json.dumps({"train": VIDEOS[3:], "valid": VIDEOS[1:3], "test": VIDEOS[:1]}))
    samples = mosei.prepare_mosei(mosei_root, folds_file=other)
    assert {s.meta["split"] for s in samples if s.meta["video"] == VIDEOS[0]} == {"test"}
    other.write_text(json.dumps({"train": VIDEOS[:2], "valid": VIDEOS[1:3], "test": []}))
    with pytest.raises(DataError, match="both train and valid"):
        mosei.read_folds(other)
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / mosei.FILES["labels"]).write_bytes((mosei_root / mosei.FILES["labels"]).read_bytes())
    with caplog.at_level(logging.WARNING, logger="emofuse.data"):
        samples = mosei.prepare_mosei(bare)
    assert {s.meta["split"] for s in samples} == {"unassigned"} and "standard folds" in caplog.text
    with pytest.raises(DataError, match="standard folds"):
        mosei.prepare_mosei(bare, strict=True)


def test_pre_aligned_sequences_are_used_as_they_are(tmp_path):
    rows = {"vidA[0]": (np.array([[1.5, 0, 0, 0, 0, 0, 0]]), np.array([[0.0, 2.0]])),
            "vidA[1]": (np.array([[-2.0, 0, 0, 0, 0, 0, 0]]), np.array([[2.0, 4.0]]))}
    write_csd(tmp_path / mosei.FILES["labels"], "All Labels", rows)
    write_csd(tmp_path / mosei.FILES["text"], "glove_vectors",
              {k: (np.ones((3, 300)) * i, np.zeros((3, 2))) for i, k in enumerate(rows)})
    samples = mosei.prepare_mosei(tmp_path)
    assert [s.id for s in samples] == ["vidA[0]", "vidA[1]"] and samples[1].speaker == "vidA"
    assert samples[1].sources["mosei_text"].shape == (3, 300) and samples[1].sources["mosei_text"][0, 0] == 1


def test_malformed_csd_names_the_file(tmp_path):
    bad = tmp_path / mosei.FILES["labels"]
    with h5py.File(bad, "w") as f:
        f.create_group("All Labels").create_group("data").create_group("v1").create_dataset("features", data=[[1.0]])
    with pytest.raises(DataError, match="v1.*features.*intervals"):
        mosei.prepare_mosei(tmp_path)
    bad.write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="CMU_MOSEI_Labels.csd"):
        mosei.prepare_mosei(tmp_path)


def test_regression_metrics_both_acc2_conventions():
    t = np.array([-2.0, -0.4, 0.0, 0.0, 1.0, 2.6, 3.4])
    p = np.array([-1.0, 0.2, -0.5, 0.3, 0.8, 2.2, 2.9])
    m = regression_metrics(t, p)
    assert m["acc2"] == pytest.approx(5 / 7)  # negative vs non-negative over all 7: -0.4/0.2 and 0/-0.5 wrong
    assert m["acc2_non0"] == pytest.approx(4 / 5) and m["n_non0"] == 5  # zeros left out, -0.4/0.2 wrong
    # clip to [-3, 3] and round: -2/-1 x, 0/0 ok, 0/-0 ok (-0.5 rounds to -0), 0/0 ok, 1/1 ok, 3/2 x, 3/3 ok
    assert m["acc7"] == pytest.approx(5 / 7)
    assert m["mae"] == pytest.approx(np.mean(np.abs(t - p)))
    assert m["corr"] == pytest.approx(np.corrcoef(t, p)[0, 1])
    assert 0 < m["f1"] <= 1 and 0 < m["f1_non0"] <= 1
    assert m["wa"] == m["acc2"] and m["ua"] == pytest.approx((1 / 2 + 4 / 5) / 2)  # negatives 1/2, non-negatives 4/5
    assert np.isnan(regression_metrics([1.0, 2.0], [0.5, 0.5])["corr"])


TINY_TFN = {"name": "tfn_tiny_mosei", "model": "tfn",
            "model_kwargs": {"subnet_dims": 8, "subnet_hidden": 16, "fusion_hidden": 16, "dropout": 0.0},
            "features": {"text": "mosei_glove", "audio": "mosei_covarep", "face": "mosei_facet"},
            "train": {"lr": 3.0e-3, "weight_decay": 0.0, "batch_size": 8, "max_epochs": 40, "patience": 40,
                      "warmup_ratio": 0.0, "schedule": "constant"}}


def test_mosei_regression_end_to_end(mosei_root, tmp_path):
    from emofuse.data.specs import load_dataset
    from emofuse.experiments.regression import main, run_regression
    from emofuse.features.store import FeatureStore
    from emofuse.recipes import recipe_from_dict

    data = load_dataset("mosei", mosei_root.parent)
    assert [f.name for f in data.folds] == ["standard"] and not data.spec.speaker_independent
    store = FeatureStore(data.samples, progress=False)
    row = run_regression(recipe_from_dict(TINY_TFN), data.samples, store, data.folds, targets=mosei.LABEL_COLUMNS)
    assert row["task"] == "regression" and {"acc2_mean", "acc2_non0_mean", "acc7_mean", "mae_mean",
                                            "corr_mean", "f1_mean"} <= set(row)
    # 20 test segments; zero-sentiment ones (every fifth) make the negative / non-negative Acc-2 a coin flip
    assert row["acc2_non0_mean"] > 0.8 and row["acc2_mean"] > 0.7 and row["corr_mean"] > 0.7, row
    assert row["mae_mean"] < 1.2, row
    assert set(row["runs"][0]["targets"]) == set(mosei.LABEL_COLUMNS[1:])
    torch.manual_seed(123)  # whatever ran before, the same seed gives the same model and scores
    again = run_regression(recipe_from_dict(TINY_TFN), data.samples, store, data.folds, targets=mosei.LABEL_COLUMNS)
    assert again["runs"][0]["mae"] == row["runs"][0]["mae"] and again["corr_mean"] == row["corr_mean"]

    recipe = tmp_path / "tiny.yaml"
    import yaml

    recipe.write_text(yaml.safe_dump({**TINY_TFN, "train": {**TINY_TFN["train"], "max_epochs": 2}}))
    out = tmp_path / "mosei.json"
    assert main([str(recipe), "--dataset", "mosei", "--data", str(mosei_root.parent), "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["dataset"] == "mosei" and saved["results"][0]["targets"] == ["sentiment"]
    from emofuse.evaluation.reports import check_results

    check_results(saved, out)  # the benchmark format: wa/ua/macro_f1 are the negative / non-negative view
