"""Behaviour the docs promise (issue #17, item 8): recipe line-ups that fit each corpus, the face
modality that `predict` cannot compute from a video, RAVDESS files that are not loaded."""

from __future__ import annotations

import pytest

from emofuse.experiments import benchmark, lineup
from emofuse.features.meta import speaker_meta_vector


def _cremad(root):
    """A tiny CREMA-D release: audio clips and their videos (no demographics)."""
    for name in ("1001_DFA_ANG_XX", "1002_IEO_HAP_HI", "1003_TSI_SAD_LO", "1004_ITS_NEU_XX"):
        for folder, ext in (("AudioWAV", "wav"), ("VideoFlash", "flv")):
            (root / folder).mkdir(parents=True, exist_ok=True)
            (root / folder / f"{name}.{ext}").write_bytes(b"\0")
    return root


def _iemocap(root):
    """A tiny IEMOCAP release: one dialogue with labels, transcripts and clips."""
    utts = {"F000": ("neu", "Excuse me."), "M001": ("ang", "Do you have your forms?"),
            "F002": ("sad", "Yeah."), "M003": ("hap", "Fine.")}
    dialog = root / "Session1" / "dialog"
    (dialog / "EmoEvaluation").mkdir(parents=True)
    (dialog / "transcriptions").mkdir(parents=True)
    wav = root / "Session1" / "sentences" / "wav" / "Ses01F_impro01"
    wav.mkdir(parents=True)
    evals, lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""], []
    for i, (u, (code, text)) in enumerate(utts.items()):
        evals += [f"[{i}.0000 - {i}.5000]\tSes01F_impro01_{u}\t{code}\t[2.5000, 2.5000, 2.5000]", ""]
        lines.append(f"Ses01F_impro01_{u} [{i:03d}.0000-{i:03d}.5000]: {text}")
        (wav / f"Ses01F_impro01_{u}.wav").write_bytes(b"\0")
    (dialog / "EmoEvaluation" / "Ses01F_impro01.txt").write_text("\n".join(evals) + "\n")
    (dialog / "transcriptions" / "Ses01F_impro01.txt").write_text("\n".join(lines) + "\n")
    return root


def _provided(samples) -> set[str]:
    """The modalities a loaded corpus can feed: audio/text/face sources, plus speaker meta when known."""
    found = {m for s in samples for m in s.sources if m in ("audio", "text", "face")}
    if any(speaker_meta_vector(s) is not None for s in samples):
        found.add("meta")
    return found


@pytest.mark.parametrize("dataset,build", [("cremad", _cremad), ("iemocap", _iemocap)])
@pytest.mark.parametrize("models", ["default", "all"])
def test_benchmark_line_ups_fit_the_corpus(tmp_path, dataset, build, models):
    samples = lineup.load_dataset(dataset, build(tmp_path / dataset))
    provided = _provided(samples)
    recipes = lineup.resolve_recipes(models, dataset)
    assert recipes, f"--models {models} selects nothing for {dataset}"
    unfed = {r.name: r.modalities for r in recipes if not set(r.modalities) <= provided}
    assert unfed == {}, f"{dataset} provides only {sorted(provided)}"
    others = [d for d in lineup.DATASET_DIRS if d != dataset]
    assert not [r.name for r in recipes if any(d in r.name.split("_") for d in others)]
    assert lineup.DATASET_MODALITIES[dataset] == provided  # the table says what the loader gives


@pytest.mark.parametrize("dataset,build", [("cremad", _cremad), ("iemocap", _iemocap)])
def test_benchmark_with_the_default_line_up_gets_past_recipe_selection(tmp_path, monkeypatch, dataset, build):
    """``emofuse benchmark cremad`` used to stop with "no recipe selected"; it now reaches feature
    extraction (stopped there: the tiny corpus has no real audio)."""

    class Reached(Exception):
        pass

    def stop(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(benchmark, "FeatureStore", stop)
    with pytest.raises(Reached):
        benchmark.run_benchmark(dataset, build(tmp_path / dataset), progress=False)


def _tone_mp4(path, seconds: float = 0.8):
    """An MP4 (the container of a video) holding a tone with some noise."""
    av = pytest.importorskip("av")
    import numpy as np

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * 16000)) / 16000
    wave = (0.3 * np.sin(2 * np.pi * 180 * t) + 0.05 * rng.normal(size=t.size)).astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for start in range(0, wave.size, 1024):
            frame = av.AudioFrame.from_ndarray(wave[None, start:start + 1024].copy(), format="fltp", layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.fixture
def audio_face_checkpoint(tmp_path):
    import torch

    from emofuse.inference.checkpoint import save_checkpoint
    from emofuse.features import get_extractor
    from emofuse.models import create_model

    mfcc = get_extractor("mfcc")
    features = {"audio": {"names": ["mfcc"], "configs": {"mfcc": mfcc.config()}},
                "face": {"names": ["au"], "configs": {}}}
    torch.manual_seed(0)
    model = create_model("early_concat", num_classes=3, input_dims={"audio": mfcc.dim, "face": 4}, hidden=8)
    return save_checkpoint(tmp_path / "ckpt", model, labels=["neutral", "happy", "sad"], features=features)


def test_predict_on_a_video_says_the_face_was_not_used(tmp_path, audio_face_checkpoint, capsys):
    import numpy as np

    from emofuse.cli import main
    from emofuse.inference.predictor import Predictor

    video = _tone_mp4(tmp_path / "clip.mp4")
    predictor = Predictor(audio_face_checkpoint, min_speech=0)  # a tone, not speech: speech check off
    pred = predictor.predict_file(video)
    assert pred.ok and pred.modalities_used == ["audio"]
    assert [w for w in pred.warnings if "face was not used" in w and "clip.mp4" in w], pred.warnings
    given = predictor.predict_file(video, face=np.zeros(4, dtype=np.float32))  # a given face is used, no warning
    assert given.modalities_used == ["audio", "face"] and not [w for w in given.warnings if "face" in w]

    assert main(["predict", str(video), "--model", str(audio_face_checkpoint), "--min-speech", "0"]) == 0
    assert "face was not used" in capsys.readouterr().err


def test_ravdess_files_of_other_kinds_are_not_skipped_silently(tmp_path, caplog):
    """docs/data.md: "Nothing is skipped silently" -- files of a kind not asked for are counted in a warning."""
    import logging

    from emofuse.data.ravdess import prepare_ravdess

    actor = tmp_path / "Actor_01"
    actor.mkdir()
    for name in ("03-01-01-01-01-01-01.wav", "01-01-01-01-01-01-01.mp4", "02-01-01-01-01-01-01.mp4"):
        (actor / name).write_bytes(b"\0")
    with caplog.at_level(logging.WARNING, logger="emofuse.data"):
        assert len(prepare_ravdess(tmp_path)) == 1
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("2 RAVDESS files" in m and str(tmp_path) in m for m in warned), warned
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="emofuse.data"):
        assert len(prepare_ravdess(tmp_path, kinds=("audio", "av", "video"))) == 3
    assert not [r for r in caplog.records if "not loaded" in r.getMessage()]
