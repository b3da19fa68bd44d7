"""Ablations (emofuse.experiments.ablation) on a tiny synthetic manifest dataset with per-modality labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from emofuse.experiments import ablation, ladder as ablation_ladder
from emofuse.data import prepare_manifest
from emofuse.errors import ConfigError, DataError
from emofuse.features.store import FeatureStore
from emofuse.evaluation.reports import check_results
from emofuse.data.splits import check_disjoint, partition

LABELS = ["anger", "joy", "sad"]
SPEAKERS = ["s1", "s2", "s3", "s4"]
CLIPS_PER_SPEAKER = 15
SR = 16000


def _shift(label: str) -> str:
    return LABELS[(LABELS.index(label) + 1) % len(LABELS)]


def write_dataset(folder: Path, bad_audio_label: str | None = None) -> Path:
    """Manifest CSV: audio (sine whose pitch encodes label_audio = label) and face AUs (one-hot of
    label_face = label shifted by one class, plus noise). Returns the CSV path."""
    rng = np.random.default_rng(0)
    (folder / "wav").mkdir(parents=True, exist_ok=True)
    (folder / "face").mkdir(exist_ok=True)
    lines = ["id,speaker,label,audio,face_npy,label_audio,label_face"]
    for s_i, spk in enumerate(SPEAKERS):
        for c in range(CLIPS_PER_SPEAKER):
            sid = f"{spk}_{c:02d}"
            label = LABELS[c % len(LABELS)]
            face_label = _shift(label)
            t = np.arange(int(0.3 * SR)) / SR
            freq = 200.0 * (1 + LABELS.index(label)) + 10.0 * s_i
            wav = 0.5 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
            sf.write(folder / "wav" / f"{sid}.wav", wav.astype(np.float32), SR)
            face = 0.1 * rng.standard_normal(6).astype(np.float32)
            face[LABELS.index(face_label)] += 3.0
            np.save(folder / "face" / f"{sid}.npy", face, allow_pickle=False)
            audio_label = bad_audio_label if (bad_audio_label and s_i == 0 and c == 0) else label
            lines.append(f"{sid},{spk},{label},wav/{sid}.wav,face/{sid}.npy,{audio_label},{face_label}")
    csv_path = folder / "manifest.csv"
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return csv_path


def write_tfn_recipe(folder: Path, epochs: int) -> Path:
    """A small, fast-learning TFN recipe for the synthetic data."""
    path = folder / "tfn_tiny.yaml"
    path.write_text(
        "model: tfn\n"
        "model_kwargs: {subnet_dims: 8, subnet_hidden: 32, fusion_hidden: 32, dropout: 0.0}\n"
        "features: {audio: mfcc, face: au}\n"
        f"train: {{lr: 1.0e-2, weight_decay: 0.0, batch_size: 8, max_epochs: {epochs}, patience: {epochs}, "
        "warmup_ratio: 0.0, schedule: constant}\n", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models train fastest on one thread (and do not fight other processes for cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("ablation_data"))


def test_speaker_folds_are_disjoint_and_cover_every_speaker(dataset):
    samples = prepare_manifest(dataset)
    folds = ablation.speaker_folds(samples, 4)
    assert folds == ablation.speaker_folds(list(reversed(samples)), 4)  # deterministic
    assert sorted(s for f in folds for s in f.test) == SPEAKERS
    for f in folds:
        tr, va, te = partition(samples, f)
        assert tr and va and te and len(tr) + len(va) + len(te) == len(samples)
        check_disjoint(samples, tr, va, te)
        assert not {samples[i].speaker for i in tr} & {samples[i].speaker for i in te}
    with pytest.raises(ConfigError, match="speaker"):
        ablation.speaker_folds(samples, 5)
    with pytest.raises(ConfigError):
        ablation.speaker_folds(samples, 2)


def test_subsets_and_label_sources(dataset):
    assert [ablation.subset_name(s) for s in ablation.modality_subsets(["face", "audio", "text"])] == [
        "T", "A", "V", "TA", "TV", "AV", "TAV"]
    samples = prepare_manifest(dataset)
    assert ablation.label_sources_in(samples) == ["label", "label_audio", "label_face"]
    assert ablation.dataset_modalities(samples) == ["audio", "face"]
    assert ablation.parse_features("audio=whisper+egemaps,face=au") == {"audio": ["whisper", "egemaps"],
                                                                       "face": ["au"]}
    with pytest.raises(ConfigError):
        ablation.parse_features("voice=whisper")


def test_cli_grid_has_every_subset_and_label_source(dataset, tmp_path, capsys):
    from emofuse.cli import build_parser

    parser = build_parser()
    out, md = tmp_path / "grid.json", tmp_path / "grid.md"
    args = parser.parse_args(["ablation", "tfn-subsets", str(dataset), "--features", "audio=mfcc,face=au",
                              "--num-folds", "4", "--folds", "1", "--max-epochs", "1", "--out", str(out),
                              "--label-sources", "label,label_face",
                              "--markdown", str(md), "--quiet"])
    assert args.func(args) == 0
    results = json.loads(out.read_text())
    check_results(results, out)
    assert results["grid"]["rows"] == ["A", "V", "AV"]
    assert results["grid"]["columns"] == ["label", "label_face", "label_face→label"]
    # 3 subsets x (label + a per-modality source evaluated twice)
    assert len(results["results"]) == 3 * 3
    combos = {(tuple(r["modalities"]), r["label_source"], r["eval_label"]) for r in results["results"]}
    assert (("audio", "face"), "label_face", "label") in combos
    assert all(r["n_runs"] == 1 for r in results["results"])
    printed = capsys.readouterr().out
    assert "label_face→label" in printed and "AV" in printed
    assert "| subset | label |" in md.read_text()


def test_training_uses_the_label_source_column(dataset, tmp_path):
    """Face features encode label_face (= global label shifted by one class): a face-only TFN
    trained on label_face is right on label_face and therefore wrong on the global label."""
    samples = prepare_manifest(dataset)
    store = FeatureStore(samples, progress=False)
    folds = ablation.speaker_folds(samples, 4)[:1]
    res = ablation.tfn_subset_grid(samples, store, folds, labels=LABELS, features={"face": ["au"]},
                                   label_sources=["label_face"], base_recipe=write_tfn_recipe(tmp_path, 12),
                                   progress=False)
    rows = {(r["label_source"], r["eval_label"]): r for r in res["results"]}
    assert set(rows) == {("label_face", "label_face"), ("label_face", "label")}
    assert rows[("label_face", "label_face")]["wa_mean"] >= 0.9
    assert rows[("label_face", "label")]["wa_mean"] <= 0.1
    assert res["grid"]["cells"]["V"]["label_face→label"].startswith(f"{rows[('label_face', 'label')]['wa_mean']:.3f}")


def test_label_outside_the_label_map_raises_before_training(tmp_path):
    csv_path = write_dataset(tmp_path / "bad", bad_audio_label="bored")
    samples = prepare_manifest(csv_path)
    store = FeatureStore(samples, progress=False)
    folds = ablation.speaker_folds(samples, 4)
    with pytest.raises(DataError, match="label_audio 'bored' is not in the label map"):
        ablation.tfn_subset_grid(samples, store, folds, labels=LABELS, features={"face": ["au"]}, progress=False)
    # a sample without the requested column is refused as well
    with pytest.raises(DataError, match="no label_text"):
        ablation.tfn_subset_grid(samples, store, folds, labels=LABELS, features={"face": ["au"]},
                                 label_sources=["label_text"], progress=False)


def test_ladder_has_one_row_per_rung(dataset):
    base, rungs = ablation_ladder.load_ladder()
    assert [r.name for r in rungs] == ["cnn_only", "+cmaa", "+awom", "+contrastive", "+transformer"]
    assert rungs[0].model_kwargs["use_cmaa"] is False and rungs[-1].model_kwargs["use_transformer"] is True
    assert rungs[0].model_kwargs["d_model"] == base.model_kwargs["d_model"]
    samples = prepare_manifest(dataset)
    store = FeatureStore(samples, progress=False)
    folds = ablation.speaker_folds(samples, 4)[:1]
    partial_counts = []
    res = ablation_ladder.of_cmaer_cat_ladder(samples, store, folds, labels=LABELS,
                                              features={"audio": ["mfcc"], "face": ["au"]}, max_epochs=1,
                                              progress=False, on_rung=lambda r: partial_counts.append(len(r["results"])))
    check_results(res)
    assert partial_counts == list(range(1, len(rungs) + 1))
    assert [r["rung"] for r in res["results"]] == [r.name for r in rungs]
    assert all(r["modalities"] == ["audio", "face"] for r in res["results"])
    table = ablation_ladder.ladder_table(res, markdown=True)
    assert table.count("\n") == 2 + len(rungs) and "+transformer" in table

    # resume: rungs finished by an interrupted run are reused (same run key), the rest retrained
    finished = {r["run_key"]: r for r in res["results"][:2]}
    trained = []
    again = ablation_ladder.of_cmaer_cat_ladder(samples, store, folds, labels=LABELS,
                                                features={"audio": ["mfcc"], "face": ["au"]}, max_epochs=1,
                                                progress=False, finished=finished,
                                                on_rung=lambda r: trained.append(r["results"][-1]["rung"]))
    assert again["results"][:2] == res["results"][:2]
    assert trained == [r.name for r in rungs]  # called after every rung, reused ones included
    assert [r["wall_seconds"] for r in again["results"][2:]] != [r["wall_seconds"] for r in res["results"][2:]]


def test_ladder_with_several_seeds_reports_the_seed_ensemble():
    res = {"results": [
        {"rung": "cnn_only", "wa_mean": 0.8, "wa_std": 0.01, "ua_mean": 0.79, "ua_std": 0.02, "macro_f1_mean": 0.78,
         "macro_f1_std": 0.02, "train_seconds": 50.0,
         "seed_ensemble": {"members": 3, "wa_mean": 0.83, "wa_std": 0.02, "ua_mean": 0.82, "ua_std": 0.02,
                           "macro_f1_mean": 0.81, "macro_f1_std": 0.03}},
        {"rung": "+cmaa", "wa_mean": 0.81, "wa_std": 0.01, "ua_mean": 0.8, "ua_std": 0.02, "macro_f1_mean": 0.79,
         "macro_f1_std": 0.02, "train_seconds": 60.0}]}
    md = ablation_ladder.ladder_table(res, markdown=True)
    assert "| ensemble WA | ensemble UA | ensemble macro-F1 |" in md
    assert "| cnn_only | 0.800 ± 0.010 | 0.790 ± 0.020 | 0.780 ± 0.020 | 50.0 s | 0.830 ± 0.020 (3 seeds) |" in md
    assert md.rstrip().endswith("| n/a | n/a | n/a |")
    assert "(3 seeds)" in ablation_ladder.ladder_table(res)


def test_ladder_falls_back_when_config_features_do_not_exist():
    configured = {"audio": ["logmel"], "face": ["openface_au"], "text": ["minilm_tokens"]}
    feats, note = ablation_ladder.ladder_features(configured, ["audio", "face"])
    assert feats == {"audio": ["whisper"], "face": ["au"]}
    assert "openface_au" in note and "minilm_tokens" not in note  # text is not a modality of this dataset
    feats, note = ablation_ladder.ladder_features({"audio": ["mfcc"], "face": ["au"]}, ["audio", "face"])
    assert feats == {"audio": ["mfcc"], "face": ["au"]}


def test_bad_ladder_config_is_a_config_error(tmp_path):
    bad = tmp_path / "ladder.yaml"
    bad.write_text("base: of_cmaer_cat\nrungs: [{name: a, model_kwargs: {use_cmaa: false}, extra: 1}]\n")
    with pytest.raises(ConfigError, match="rungs\\[0\\]"):
        ablation_ladder.load_ladder(bad)
