"""A user's own corpus needs no code: a CSV manifest goes through prepare, extract, benchmark,
train, evaluate and predict (`emofuse.cli.main`), with speaker-disjoint folds generated, saved and
reused (docs/usage.md, "Your own corpus")."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emofuse.cli import main

SR = 16000
LABELS = ["angry", "calm"]
SPEAKERS = [f"spk{i}" for i in range(1, 7)]
CLIPS_PER_LABEL = 3


def _clip(label: str, speaker: int, take: int, rng: np.random.Generator) -> np.ndarray:
    """0.6 s: a low quiet tone (calm) or a loud high tone with noise (angry), per speaker a bit off."""
    t = np.arange(int(0.6 * SR)) / SR
    angry = label == "angry"
    freq = (420.0 if angry else 160.0) + 12.0 * speaker + 5.0 * take
    wave = (0.6 if angry else 0.15) * np.sin(2 * np.pi * freq * t)
    return (wave + (0.08 if angry else 0.01) * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """6 speakers x 2 labels x 3 clips: wav files and per-clip face vectors, listed in corpus.csv."""
    root = tmp_path_factory.mktemp("own_corpus")
    (root / "clips").mkdir()
    rng = np.random.default_rng(0)
    lines = ["id,speaker,label,audio,face_npy"]
    for s, speaker in enumerate(SPEAKERS):
        for label in LABELS:
            for take in range(CLIPS_PER_LABEL):
                sid = f"{speaker}_{label}_{take}"
                sf.write(root / "clips" / f"{sid}.wav", _clip(label, s, take, rng), SR)
                face = (0.2 * rng.standard_normal(4) + (1.0 if label == "angry" else -1.0)).astype(np.float32)
                np.save(root / "clips" / f"{sid}.npy", face, allow_pickle=False)
                lines.append(f"{sid},{speaker},{label},clips/{sid}.wav,clips/{sid}.npy")
    (root / "corpus.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main(["--threads", "1", *args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_own_corpus_end_to_end(corpus, tmp_path, capsys):
    csv = str(corpus / "corpus.csv")

    rc, out, err = _run(["prepare", csv, "--quiet"], capsys)
    assert rc == 0, err
    assert "corpus: 36 samples, 6 speakers; 36 files checked, 0 bad" in out and "  angry: 18" in out

    rc, out, err = _run(["extract", csv, "--features", "egemaps,mfcc", "--quiet"], capsys)
    assert rc == 0, err
    assert "egemaps: 36/36 clips cached" in out and "mfcc: 36/36 clips cached" in out

    # benchmark: a logistic baseline and a neural recipe over 3 generated speaker-disjoint folds
    results = tmp_path / "results" / "results.json"
    command = ["benchmark", csv, "--num-folds", "3", "--models", "logreg_egemaps,dual_stream_mfcc",
               "--max-epochs", "1", "--out", str(results)]
    rc, out, err = _run(command, capsys)
    assert rc == 0, err
    folds_file = results.parent / "corpus.folds.json"
    assert f"wrote 3 speaker-disjoint folds in {folds_file}" in err
    payload = json.loads(folds_file.read_text())
    assert payload["num_folds"] == 3 and payload["fold_seed"] == 0
    assert sorted(g for f in payload["folds"] for g in f["test"]) == SPEAKERS
    rows = {r["model"]: r for r in json.loads(results.read_text())["results"]}
    assert set(rows) == {"logreg_egemaps", "dual_stream_mfcc"}
    assert rows["logreg_egemaps"]["wa_mean"] >= 0.9  # the two tone classes are easy
    for row in rows.values():  # every row lists its per-fold scores, which its mean is made of
        per_fold = row["per_fold"]
        assert [f["fold"] for f in per_fold] == ["fold1", "fold2", "fold3"] and {f["seed"] for f in per_fold} == {0}
        assert abs(sum(f["wa"] for f in per_fold) / 3 - row["wa_mean"]) < 1e-12
        assert abs(sum(f["ua"] for f in per_fold) / 3 - row["ua_mean"]) < 1e-12
    assert "corpus: 3 speaker-disjoint folds" in out

    # run again: the saved folds and finished rows are reused; another K is refused, saying how to regenerate
    rc, out, err = _run(command, capsys)
    assert rc == 0 and f"reusing 3 speaker-disjoint folds in {folds_file}" in err
    assert {r["model"]: r for r in json.loads(results.read_text())["results"]} == rows
    rc, out, err = _run([*command[:3], "4", *command[4:]], capsys)
    assert rc == 2 and "holds 3 folds but --num-folds 4" in err and f"delete {folds_file}" in err

    # train on fold 1 (its folds saved with the checkpoint), evaluate it, predict a file with it
    ckpt = tmp_path / "ckpt"
    rc, out, err = _run(["train", "logreg_egemaps", "--dataset", csv, "--fold", "1", "--num-folds", "3",
                         "--out", str(ckpt), "--quiet"], capsys)
    assert rc == 0, err
    saved = json.loads((ckpt / "corpus.folds.json").read_text())
    assert saved["folds"] == payload["folds"]  # same K and seed: the same folds
    meta = json.loads((ckpt / "config.json").read_text())
    assert meta["labels"] == LABELS and meta["meta"]["test_speakers"] == payload["folds"][0]["test"]

    rc, out, err = _run(["evaluate", str(ckpt), "--dataset", csv, "--fold", "1"], capsys)
    assert rc == 0, err
    scores = json.loads(out)
    assert scores["n"] == 12 and scores["wa"] >= 0.9
    shutil.copytree(ckpt, tmp_path / "moved")  # a checkpoint without its folds file cannot say what is held out
    (tmp_path / "moved" / "corpus.folds.json").unlink()
    rc, out, err = _run(["evaluate", str(tmp_path / "moved"), "--dataset", csv, "--fold", "1"], capsys)
    assert rc == 2 and "corpus.folds.json: folds file not found" in err

    clip = corpus / "clips" / "spk1_angry_0.wav"
    rc, out, err = _run(["predict", str(clip), "--model", str(ckpt), "--min-speech", "0",
                         "--json", str(tmp_path / "pred.json")], capsys)
    assert rc == 0, err
    prediction = json.loads((tmp_path / "pred.json").read_text())["predictions"][0]
    assert set(prediction["probabilities"]) == set(LABELS)


def test_a_manifest_without_enough_speakers_is_refused(tmp_path, capsys):
    (tmp_path / "a.wav").write_bytes(b"")
    csv = tmp_path / "two.csv"
    csv.write_text("id,speaker,label,audio\nc1,p1,x,a.wav\nc2,p2,y,a.wav\n")
    rc, _, err = _run(["benchmark", str(csv), "--models", "logreg_egemaps", "--out", str(tmp_path / "r.json")], capsys)
    assert rc == 2 and "2 speaker(s): speaker-disjoint folds need at least 3 speakers" in err
    rc, _, err = _run(["benchmark", str(csv), "--out", str(tmp_path / "r.json")], capsys)
    assert rc == 2


@pytest.mark.realdata
def test_ravdess_actors_as_a_manifest(ravdess_manifest, ravdess_au, tmp_path, capsys):
    """8 RAVDESS actors written as a plain CSV manifest run like any corpus, with no code: prepare,
    extract, a benchmark over 4 generated speaker-disjoint folds (a logistic baseline and a neural
    recipe), train one fold and predict a held-out clip (its action units given with --source)."""
    from emofuse.data.manifest import write_manifest
    from emofuse.data.specs import load_dataset

    actors = [f"{a:02d}" for a in range(1, 9)]
    samples = [s for s in load_dataset("ravdess", ravdess_au, make_folds=False).samples if s.speaker in actors]
    csv = write_manifest(samples, tmp_path / "eight_actors.csv")
    rc, out, err = _run(["prepare", str(csv), "--quiet"], capsys)
    assert rc == 0, err
    assert "eight_actors: 480 samples, 8 speakers" in out
    results = tmp_path / "results.json"
    rc, out, err = _run(["benchmark", str(csv), "--num-folds", "4", "--models", "logreg_au", "--out", str(results),
                         "--quiet"], capsys)
    assert rc == 0, err
    payload = json.loads(results.read_text())
    assert payload["folds"] == ["fold1", "fold2", "fold3", "fold4"]
    assert payload["labels"] == sorted(set(s.label for s in samples))
    assert payload["results"][0]["wa_mean"] > 0.3  # 8 classes: chance is 1/8

    # the whole path with audio too: extract, a logistic baseline and a neural recipe in one benchmark
    # command (the folds file written above is reused), then train one fold and predict a held-out clip
    folds_file = tmp_path / "eight_actors.folds.json"
    folds_written = folds_file.read_bytes()
    cache = str(tmp_path / "cache")
    rc, out, err = _run(["extract", str(csv), "--features", "mfcc", "--cache", cache, "--quiet"], capsys)
    assert rc == 0, err
    recipe = tmp_path / "ap_mfcc_au.yaml"
    recipe.write_text("model: attention_pooling\nfeatures: {audio: [mfcc], face: [au]}\n"
                      "train: {max_epochs: 3, batch_size: 32}\n", encoding="utf-8")
    rc, out, err = _run(["benchmark", str(csv), "--num-folds", "4", "--models", f"logreg_au,{recipe}",
                         "--out", str(results), "--cache", cache, "--quiet"], capsys)
    assert rc == 0, err
    assert folds_file.read_bytes() == folds_written  # the same generated folds, reused
    rows = {r["model"]: r for r in json.loads(results.read_text())["results"]}
    assert set(rows) == {"logreg_au", "ap_mfcc_au"} and rows["ap_mfcc_au"]["wa_mean"] > 0.2
    assert len(rows["ap_mfcc_au"]["per_fold"]) == 4
    ckpt = tmp_path / "ckpt"
    rc, out, err = _run(["train", str(recipe), "--dataset", str(csv), "--num-folds", "4", "--fold", "1",
                         "--out", str(ckpt), "--cache", cache, "--quiet"], capsys)
    assert rc == 0, err
    test_speaker = json.loads((ckpt / "config.json").read_text())["meta"]["test_speakers"][0]
    clip = next(s for s in samples if s.speaker == test_speaker)
    face = tmp_path / "face.npy"
    np.save(face, np.asarray(clip.sources["face"], dtype=np.float32), allow_pickle=False)
    rc, out, err = _run(["predict", str(clip.sources["audio"]), "--model", str(ckpt), "--source", f"face={face}",
                         "--json", "-"], capsys)
    assert rc == 0, err
    prediction = json.loads(out)["predictions"][0]
    assert prediction["status"] in ("ok", "uncertain") and prediction["label"] in payload["labels"]
    assert set(prediction["modalities_used"]) == {"audio", "face"}


def test_seed_ensemble_on_a_manifest_keeps_its_folds_at_the_top(corpus, tmp_path, capsys):
    """`train --seeds` on a manifest: one folds file in the ensemble folder, where `evaluate` reads it."""
    recipe = tmp_path / "mlp.yaml"
    recipe.write_text("model: early_concat\nmodel_kwargs: {hidden: 8}\nfeatures: {face: au}\n"
                      "train: {batch_size: 16, patience: 1}\n")
    csv = str(corpus / "corpus.csv")
    ens = tmp_path / "ens"
    rc, out, err = _run(["train", str(recipe), "--dataset", csv, "--num-folds", "3", "--fold-seed", "4", "--fold", "2",
                         "--seeds", "0,1", "--max-epochs", "1", "--out", str(ens), "--quiet"], capsys)
    assert rc == 0, err
    assert (ens / "corpus.folds.json").is_file() and not (ens / "seed_0" / "corpus.folds.json").exists()
    assert json.loads((ens / "corpus.folds.json").read_text())["fold_seed"] == 4
    rc, out, err = _run(["evaluate", str(ens), "--dataset", csv, "--fold", "2"], capsys)
    assert rc == 0, err
    assert json.loads(out)["ensemble_members"] == 2


def test_prepare_checks_signal_files(tmp_path, capsys):
    """`prepare` on a manifest with a signal column loads each .npz (not as a video) and names a bad one."""
    rows = ["id,speaker,label,signal"]
    for i in range(6):
        data = np.random.default_rng(i).normal(size=(50, 3)).astype(np.float32)
        if i == 5:
            data[3, 1] = np.nan
        np.savez(tmp_path / f"s{i}.npz", data=data, rate=np.float32(10.0))
        rows.append(f"c{i},p{i % 3},{'ab'[i % 2]},s{i}.npz")
    csv = tmp_path / "signals.csv"
    csv.write_text("\n".join(rows) + "\n")
    rc, out, err = _run(["prepare", str(csv), "--quiet"], capsys)
    assert rc == 2 and "6 files checked, 1 bad" in out
    assert f"bad file: {tmp_path / 's5.npz'}: signal 'data' contains 1 NaN" in err
    rc, out, err = _run(["prepare", str(csv), "--quiet", "--keep-going"], capsys)
    assert rc == 0 and "signals: 5 samples, 3 speakers" in out
