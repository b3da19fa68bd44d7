"""UniC-style per-modality labels (``label_text``, ``label_audio``, ``label_visual`` columns of a CSV
manifest) through the TFN label-source study: unimodal vs multimodal supervision.

Generated manifest: each clip has three independent unimodal labels, each carried by one modality only
(the words of the transcript, the pitch of the audio, the action-unit row), and a multimodal label that
is their majority vote (the text's label when all three differ)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from emofuse.data import prepare_manifest
from emofuse.errors import DataError
from emofuse.experiments import ablation
from emofuse.features.store import FeatureStore

LABELS = ["anger", "joy", "sad"]
WORDS = {"anger": "furious and outraged", "joy": "delighted and wonderful", "sad": "miserable and gloomy"}
SPEAKERS = ["s1", "s2", "s3", "s4"]
CLIPS = 12
SR = 16000


def write_unic(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    (folder / "wav").mkdir(parents=True)
    (folder / "face").mkdir()
    lines = ["id,speaker,label,audio,text,face_npy,label_text,label_audio,label_visual"]
    for s_i, speaker in enumerate(SPEAKERS):
        for c in range(CLIPS):
            sid = f"{speaker}_{c:02d}"
            text_l, audio_l, visual_l = (str(x) for x in rng.choice(LABELS, 3))
            votes = [text_l, audio_l, visual_l]
            label = max(LABELS, key=lambda x: (votes.count(x), x == text_l))
            t = np.arange(int(0.3 * SR)) / SR
            wav = 0.5 * np.sin(2 * np.pi * (200.0 * (1 + LABELS.index(audio_l)) + 7 * s_i) * t)
            sf.write(folder / "wav" / f"{sid}.wav", (wav + 0.01 * rng.standard_normal(t.size)).astype(np.float32), SR)
            face = 0.1 * rng.standard_normal(6).astype(np.float32)
            face[LABELS.index(visual_l)] += 3.0
            np.save(folder / "face" / f"{sid}.npy", face, allow_pickle=False)
            text = f"today I feel {WORDS[text_l]} about it"
            lines.append(f"{sid},{speaker},{label},wav/{sid}.wav,{text},face/{sid}.npy,{text_l},{audio_l},{visual_l}")
    path = folder / "unic.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_recipe(folder: Path, epochs: int) -> Path:
    path = folder / "tfn_tiny.yaml"
    path.write_text("model: tfn\n"
                    "model_kwargs: {subnet_dims: 8, subnet_hidden: 32, fusion_hidden: 32, dropout: 0.0}\n"
                    "features: {audio: mfcc, face: au}\n"
                    f"train: {{lr: 1.0e-2, weight_decay: 0.0, batch_size: 8, max_epochs: {epochs}, "
                    f"patience: {epochs}, warmup_ratio: 0.0, schedule: constant}}\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def unic(tmp_path_factory) -> Path:
    return write_unic(tmp_path_factory.mktemp("unic"))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_unic_columns_are_label_sources_and_checked(unic, tmp_path):
    samples = prepare_manifest(unic)
    assert ablation.label_sources_in(samples) == ["label", "label_audio", "label_text", "label_visual"]
    assert ablation.dataset_modalities(samples) == ["text", "audio", "face"]
    assert [ablation.own_label_column(m, ablation.label_sources_in(samples)) for m in ("text", "audio", "face")] == [
        "label_text", "label_audio", "label_visual"]
    bad = tmp_path / "bad.csv"
    bad.write_text(unic.read_text().replace(",sad\n", ",sadness\n", 1), encoding="utf-8")
    for name in ("wav", "face"):
        (tmp_path / name).symlink_to(unic.parent / name)
    with pytest.raises(DataError, match="label_visual"):
        prepare_manifest(bad, labels=LABELS)


def test_unimodal_vs_multimodal_supervision(unic, tmp_path):
    samples = prepare_manifest(unic)
    store = FeatureStore(samples, progress=False)
    folds = ablation.speaker_folds(samples, 4)[:1]
    res = ablation.tfn_subset_grid(samples, store, folds, labels=LABELS,
                                   features={"text": ["minilm_pooled"], "audio": ["mfcc"], "face": ["au"]},
                                   base_recipe=write_recipe(tmp_path, 25), max_epochs=25, progress=False)
    assert res["label_sources"] == ["label", "label_audio", "label_text", "label_visual"]
    summary = {e["subset"]: e for e in res["supervision"]}
    assert set(summary) == {"T", "A", "V", "TA", "TV", "AV", "TAV"}
    assert {n: summary[n].get("own_label") for n in "TAV"} == {"T": "label_text", "A": "label_audio",
                                                              "V": "label_visual"}
    assert "own" not in summary["TAV"] and set(summary["TAV"]["unimodal"]) == {"label_audio", "label_text",
                                                                               "label_visual"}
    # each modality learns its own label; the unimodal labels are independent, so scored on the global
    # (majority) label a unimodal model does worse than on its own label
    for name in "AV":
        own = summary[name]["own"]
        assert own["on_source"] > 0.8 and own["on_label"] < own["on_source"], (name, own)
    table = ablation.supervision_table(res, markdown=True)
    assert "| V | label_visual |" in table and table.count("\n") == 5  # header, rule, T, A, V


def test_cli_prints_the_supervision_table(unic, tmp_path, capsys):
    from emofuse.cli import main

    out, md = tmp_path / "grid.json", tmp_path / "grid.md"
    rc = main(["--threads", "1", "ablation", "tfn-subsets", str(unic), "--features", "face=au", "--num-folds", "4",
               "--folds", "1", "--max-epochs", "1", "--label-sources", "label,label_visual", "--out", str(out),
               "--markdown", str(md), "--quiet"])
    assert rc == 0
    assert "unimodal vs multimodal supervision" in capsys.readouterr().out
    assert json.loads(out.read_text())["supervision"][0]["own_label"] == "label_visual"
    assert "| V | label_visual |" in md.read_text()
