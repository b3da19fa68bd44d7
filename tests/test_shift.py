"""Shift protocols (`emofuse.evaluation.shift`, `emofuse.experiments.shift`): derived folds stay
speaker-disjoint, score what they claim, and the summaries compute what docs/shift.md says."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from emofuse.data.record import Sample
from emofuse.data.splits import Fold, partition
from emofuse.errors import ConfigError, SpeakerOverlapError
from emofuse.evaluation.shift import (check_speaker_disjoint, corruption_summary, gender_folds, gender_of,
                                      sentence_folds, shift_table, split_runs)

LABELS = ["a", "b"]


def _samples() -> list[Sample]:
    """8 speakers (odd male, even female) x 2 sentences x 2 labels."""
    out = []
    for spk in range(1, 9):
        for sentence in ("01", "02"):
            for label in LABELS:
                out.append(Sample(id=f"{spk:02d}-{sentence}-{label}", speaker=f"{spk:02d}", dataset="toy", label=label,
                                  meta={"statement": sentence, "gender": "M" if spk % 2 else "F"}))
    return out


FOLDS = [Fold("fold1", train=("05", "06", "07", "08"), val=("03", "04"), test=("01", "02")),
         Fold("fold2", train=("01", "02", "07", "08"), val=("05", "06"), test=("03", "04"))]


def test_cross_sentence_trains_on_one_sentence_and_tests_every_sentence_of_other_speakers():
    samples = _samples()
    folds, key, first = sentence_folds(samples, FOLDS)
    assert (key, first) == ("statement", "01")
    tr, va, te = partition(samples, folds[0])
    assert {samples[i].meta["statement"] for i in tr + va} == {"01"}
    assert {samples[i].meta["statement"] for i in te} == {"01", "02"}
    assert {samples[i].speaker for i in te} == {"01", "02"}
    assert not {samples[i].speaker for i in tr + va} & {samples[i].speaker for i in te}
    check_speaker_disjoint(samples, folds)


def test_cross_gender_trains_on_one_gender_and_keeps_every_test_speaker():
    samples = _samples()
    folds = gender_folds(samples, FOLDS, "M")
    tr, va, te = partition(samples, folds[1])
    assert {gender_of(samples[i]) for i in tr + va} == {"M"}
    assert {samples[i].speaker for i in te} == {"03", "04"}
    check_speaker_disjoint(samples, folds)


def test_a_derived_fold_sharing_a_speaker_is_refused():
    samples = _samples()
    # composite groups hide the overlap from the fold check: speaker 01 trains on sentence 01, tests on 02
    leaky = Fold("leak", train=("01|01", "05|01"), val=("03|01",), test=("01|02",), group_by="speaker+meta.statement")
    partition(samples, leaky)  # the group check alone passes
    with pytest.raises(SpeakerOverlapError, match="01"):
        check_speaker_disjoint(samples, [leaky])


def test_protocols_name_what_a_corpus_lacks():
    bare = [Sample(id=f"x{i}", speaker=f"{i:02d}", dataset="toy", label="a") for i in range(1, 9)]
    with pytest.raises(ConfigError, match="sentence"):
        sentence_folds(bare, FOLDS)
    with pytest.raises(ConfigError, match="gender"):
        gender_folds(bare, FOLDS, "M")


def test_split_runs_scores_each_side_on_its_own_clips():
    samples = _samples()
    by_id = {s.id: s for s in samples}
    ids = [s.id for s in samples if s.speaker in ("01", "02")]
    y = [LABELS.index(by_id[i].label) for i in ids]
    # right on sentence 01, wrong on sentence 02
    probs = np.array([[0.9, 0.1] if (yy == 0) == (by_id[i].meta["statement"] == "01") else [0.1, 0.9]
                      for i, yy in zip(ids, y)])
    run = SimpleNamespace(ids=ids, y_true=y, probs=probs)
    out = split_runs([run], by_id, LABELS, lambda s: s.meta["statement"])
    assert out["01"]["wa_mean"] == 1.0 and out["02"]["wa_mean"] == 0.0


def test_corruption_summary_mean_worst_drop_and_target_snr():
    clean = {"wa_mean": 0.8, "ua_mean": 0.7}
    corrupted = {"white_snr10": {"wa_mean": 0.6, "ua_mean": 0.5}, "gain+20": {"wa_mean": 0.8, "ua_mean": 0.7},
                 "pink_snr0": {"wa_mean": 0.2, "ua_mean": 0.1}}
    levels = {"white_snr10": 10, "gain+20": None, "pink_snr0": 0}
    out = corruption_summary(clean, corrupted, levels)
    assert out["ua_mean"] == pytest.approx(0.4333333, abs=1e-6)
    assert out["ua_drop"] == pytest.approx(0.7 - 0.4333333, abs=1e-6)
    assert (out["ua_worst"], out["ua_worst_corruption"]) == (0.1, "pink_snr0")
    assert out["ua_snr10_mean"] == 0.5 and out["ua_snr10_drop"] == pytest.approx(0.2)
    with pytest.raises(ConfigError):
        corruption_summary(clean, {})


def test_shift_table_has_one_line_per_shift_row():
    row = {"model": "m", "wa_mean": 0.8, "ua_mean": 0.7,
           "shift": {"cross_sentence": {"within": {"ua_mean": 0.7}, "cross": {"ua_mean": 0.6}},
                     "cross_gender": {"within_ua_mean": 0.7, "cross_ua_mean": 0.65, "ua_gap": 0.05},
                     "corruption_summary": {"ua_mean": 0.5, "ua_drop": 0.2, "ua_worst": 0.2,
                                            "ua_worst_corruption": "babble_snr0", "ua_snr10_mean": 0.6,
                                            "ua_snr10_drop": 0.1}},
           "calibration": {"ece_before_mean": 0.12, "ece_after_mean": 0.04, "coverage_mean": 0.8,
                           "answered_accuracy_mean": 0.85}}
    table = shift_table({"results": [row, {"model": "plain", "wa_mean": 0.5}]})
    lines = table.strip().splitlines()
    assert len(lines) == 3 and "0.700 → 0.600" in lines[2] and "0.120 → 0.040" in lines[2]
    assert "babble_snr0" in lines[2]
    assert shift_table({"results": [{"model": "plain"}]}) == ""


def _corpus(root):
    """A CSV corpus of 8 speakers (gender column) x 2 sentences x 2 labels x 2 takes of generated tones."""
    import soundfile as sf

    sr, rng = 16000, np.random.default_rng(0)
    (root / "clips").mkdir()
    lines = ["id,speaker,label,audio,gender,sentence"]
    t = np.arange(int(0.5 * sr)) / sr
    for spk in range(1, 9):
        for sentence in ("s1", "s2"):
            for label in LABELS:
                for take in range(2):
                    freq = (440.0 if label == "a" else 180.0) + 9.0 * spk + (25.0 if sentence == "s2" else 0.0)
                    wave = (0.4 if label == "a" else 0.15) * np.sin(2 * np.pi * freq * t)
                    wave = (wave + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
                    sid = f"{spk:02d}_{sentence}_{label}_{take}"
                    sf.write(root / "clips" / f"{sid}.wav", wave, sr)
                    lines.append(f"{sid},{spk:02d},{label},clips/{sid}.wav,{'M' if spk % 2 else 'F'},{sentence}")
    (root / "corpus.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root / "corpus.csv"


@pytest.mark.parametrize("recipe_text", [
    "model: logreg\nfeatures: {audio: mfcc}\ntrain: {sampler: balanced}\n",
    "model: attention_pooling\nmodel_kwargs: {hidden: 16, embed_dim: 16}\nfeatures: {audio: mfcc}\n"
    "train: {max_epochs: 2, batch_size: 8, sampler: balanced}\n",
])
def test_run_shift_end_to_end_on_a_csv_corpus(tmp_path, recipe_text):
    from emofuse.experiments.lineup import dataset_instance
    from emofuse.experiments.shift import run_shift
    from emofuse.features.store import FeatureStore
    from emofuse.inputs.views import SpeedView
    from emofuse.recipes import load_recipe

    csv = _corpus(tmp_path)
    (tmp_path / "r.yaml").write_text(recipe_text, encoding="utf-8")
    data = dataset_instance(str(csv), None, folds_dir=tmp_path, num_folds=4, fold_seed=0, progress=False)
    store = FeatureStore(data.samples, None, progress=False)
    store.labels = data.labels
    row = run_shift(load_recipe(str(tmp_path / "r.yaml")), data.samples, store, data.folds, data.labels,
                    progress=False, corruptions={"speed0.8": SpeedView(0.8)})
    shift = row["shift"]
    assert shift["cross_sentence"]["trained_on"] == "s1"
    assert set(shift["cross_sentence"]) >= {"within", "cross"}
    assert set(shift["cross_gender"]) >= {"train_M", "train_F", "within_ua_mean", "cross_ua_mean", "ua_gap"}
    assert shift["cross_gender"]["train_M"]["within"]["ua_mean"] >= 0.0
    assert list(shift["corruptions"]) == ["speed0.8"]
    assert shift["corruption_summary"]["n_corruptions"] == 1
    assert sum(row["corrupted_prediction_histogram"].values()) == len(data.samples)  # every test clip once
    cal = row["calibration"]
    assert len(cal["per_fold"]) == 4 and all(f["temperature"] > 0 for f in cal["per_fold"])
    assert 0.0 <= cal["ece_after_mean"] <= 1.0
    assert 0.0 <= row["wa_mean"] <= 1.0 and len(row["per_fold"]) == 4


def test_checkpoint_histogram_counts_every_corrupted_answer(tmp_path):
    from emofuse.experiments.lineup import dataset_instance
    from emofuse.experiments.shift import checkpoint_corruption_histogram
    from emofuse.inputs.views import SpeedView
    from emofuse.training.recipe import train_recipe

    csv = _corpus(tmp_path)
    (tmp_path / "r.yaml").write_text("model: logreg\nfeatures: {audio: mfcc}\n", encoding="utf-8")
    data = dataset_instance(str(csv), None, folds_dir=tmp_path / "ckpt", num_folds=4, fold_seed=0, progress=False)
    train_recipe(str(tmp_path / "r.yaml"), data, None, out_dir=tmp_path / "ckpt", fold=1, progress=False)
    views = {"speed0.8": SpeedView(0.8), "speed1.2": SpeedView(1.2)}
    out = checkpoint_corruption_histogram(tmp_path / "ckpt", data.samples, None, views)
    assert out["clips"] == len(data.samples) and out["corruptions"] == list(views)
    assert sum(out["shares"].values()) == pytest.approx(1.0, abs=1e-3)
    assert out["max_share"] == pytest.approx(max(out["shares"].values()), abs=1e-4)
    assert 0.0 <= out["per_corruption"]["speed0.8"]["wa"] <= 1.0


def test_model_card_is_written_from_the_measured_files(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("card", Path(__file__).parents[1] / "scripts" / "write_model_card.py")
    card = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(card)
    agg = {f"{k}_{s}": 0.5 for k in ("wa", "ua", "macro_f1") for s in ("mean", "std")}
    corr = {"white_snr10": {"wa_mean": 0.41, "ua_mean": 0.4}, "babble_snr0": {"wa_mean": 0.21, "ua_mean": 0.2}}
    row = {"model": "r", **agg, "shift": {
        "cross_sentence": {"trained_on": "01", "within": agg, "cross": agg},
        "cross_gender": {"train_M": {"within": agg, "cross": agg}, "train_F": {"within": agg, "cross": agg}},
        "corruptions": corr,
        "corruption_summary": {"wa_mean": 0.31, "ua_mean": 0.3, "wa_worst": 0.21, "ua_worst": 0.2,
                               "ua_worst_corruption": "babble_snr0", "wa_snr10_mean": 0.41, "ua_snr10_mean": 0.4}},
        "calibration": {f"{k}_{s}": 0.1 for k in ("ece_before", "ece_after", "coverage", "answered_accuracy")
                        for s in ("mean", "std")}}
    config = {"model": {"name": "logistic_regression"}, "labels": ["a", "b"],
              "features": {"audio": {"names": ["whisper"]}}, "meta": {"val_speakers": ["05", "06"]},
              "calibration": {"temperature": 1.2, "threshold": 0.4, "fitted_on": "validation speakers 05, 06"}}
    text = card.card(config, row, {"shares": {"a": 0.6, "b": 0.4}, "max_class": "a", "max_share": 0.6}, "r",
                     "shift.json", "hist.json")
    assert "babble_snr0 (UA 0.20)" in text and "temperature 1.200, threshold 0.400" in text and "a 60.0%" in text
    assert "| white_snr10 | 0.410 | 0.400 |" in text and "non-commercial" in text
    (tmp_path / "results.json").write_text(json.dumps({"results": [row]}))
    assert card._find_row(json.loads((tmp_path / "results.json").read_text()), "r") == row


def test_benchmark_protocol_shift_writes_rows_tables_and_plots(tmp_path, monkeypatch, capsys):
    import json

    import emofuse.inputs.views as views
    from emofuse.cli import main

    monkeypatch.setattr(views, "corruption_views", lambda: {"speed0.8": views.SpeedView(0.8)})
    csv = _corpus(tmp_path)
    (tmp_path / "r.yaml").write_text("model: logreg\nfeatures: {audio: mfcc}\n", encoding="utf-8")
    out, report = tmp_path / "shift.json", tmp_path / "report"
    rc = main(["--threads", "1", "benchmark", str(csv), "--num-folds", "4", "--protocol", "shift", "--models",
               str(tmp_path / "r.yaml"), "--out", str(out), "--report-dir", str(report), "--quiet"])
    assert rc == 0
    results = json.loads(out.read_text())
    assert results["protocol"] == "shift" and results["results"][0]["shift"]["corruptions"]
    assert "Shift protocols" in capsys.readouterr().out
    assert "## Shift protocols" in (report / "results.md").read_text()
    assert (report / "confusion_r.png").is_file()


def test_logreg_calibration_probabilities_are_out_of_fold_by_speaker():
    """Each clip's calibration probability comes from a model that never saw its speaker: a label that is
    a speaker's identity (learnable in-sample) is at chance out of fold."""
    from emofuse.training.classical import ClassicalData, _fit, out_of_fold_probabilities

    rng = np.random.default_rng(0)
    speakers = [f"{i:02d}" for i in range(10)]
    label_of = {s: int(rng.integers(0, 2)) for s in speakers}
    samples, rows = [], []
    for k, spk in enumerate(speakers):
        for j in range(6):
            samples.append(Sample(id=f"{spk}-{j}", speaker=spk, dataset="toy", label=LABELS[label_of[spk]]))
            rows.append(np.eye(10)[k] * 3 + 0.05 * rng.standard_normal(10))
    x, y = np.array(rows), np.array([label_of[s.speaker] for s in samples])
    data = ClassicalData(samples, x, y, {"audio": 10}, [], [])
    probs, ys = out_of_fold_probabilities(data, list(range(len(samples))), 1.0, 2)
    assert np.array_equal(ys, y)
    in_sample = _fit(x, y, 1.0, 0).predict(x)
    assert (in_sample == y).mean() > 0.9
    assert (probs.argmax(1) == y).mean() < 0.75


def test_corruption_scoring_frees_each_corrupted_feature_set(tmp_path):
    """With utterance_norm the corrupted arrays live in a wrapping view's store: those go too."""
    from emofuse.experiments.lineup import dataset_instance
    from emofuse.experiments.shift import classical_outputs, corruption_scores
    from emofuse.features.store import FeatureStore
    from emofuse.inputs.views import SpeedView
    from emofuse.recipes import load_recipe

    csv = _corpus(tmp_path)
    (tmp_path / "r.yaml").write_text("model: logreg\nfeatures: {audio: mfcc}\ndata: {utterance_norm: true}\n")
    data = dataset_instance(str(csv), None, folds_dir=tmp_path, num_folds=4, fold_seed=0, progress=False)
    store = FeatureStore(data.samples, None, progress=False)
    outputs = classical_outputs(load_recipe(str(tmp_path / "r.yaml")), data.samples, store, data.folds[:1],
                                data.labels, progress=False, calibrate=False)
    kept = set(store._views)
    corruption_scores(outputs, store, data.labels, {"speed0.8": SpeedView(0.8)}, progress=False)
    assert set(store._views) == kept  # the level-normalised clean clips stay; nothing of speed0.8 does
