"""IEMOCAP's 4-class recipe and its two fold protocols on a small generated corpus of the release
layout (Session1-5, each with one female and one male speaker, EmoEvaluation + transcriptions + wavs)."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from emofuse.data.specs import get_dataset, load_dataset
from emofuse.data.splits import partition
from emofuse.recipes import load_recipe

CODES = ("neu", "hap", "exc", "ang", "sad", "fru")


def write_iemocap(root) -> None:
    """5 sessions x 2 dialogues; each dialogue has one utterance per code from each speaker."""
    rng = np.random.default_rng(0)
    for session in range(1, 6):
        base = root / f"Session{session}"
        for folder in ("dialog/EmoEvaluation", "dialog/transcriptions"):
            (base / folder).mkdir(parents=True)
        for d, kind in enumerate(("impro01", "script01_1")):
            dialog = f"Ses{session:02d}{'FM'[d]}_{kind}"
            (base / "sentences" / "wav" / dialog).mkdir(parents=True)
            evals, texts, t = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""], [], 0.0
            for n, (gender, code) in enumerate((g, c) for c in CODES for g in "FM"):
                utt = f"{dialog}_{gender}{n:03d}"
                evals += [f"[{t:.4f} - {t + 1.5:.4f}]\t{utt}\t{code}\t[2.5000, 3.0000, 3.0000]", "C-E1:\tx;\t()", ""]
                texts.append(f"{utt} [{t:08.4f}-{t + 1.5:08.4f}]: words of {code}.")
                sf.write(base / "sentences" / "wav" / dialog / f"{utt}.wav",
                         (0.1 * rng.standard_normal(1600)).astype(np.float32), 16000)
                t += 2.0
            (base / "dialog" / "EmoEvaluation" / f"{dialog}.txt").write_text("\n".join(evals) + "\n")
            (base / "dialog" / "transcriptions" / f"{dialog}.txt").write_text("\n".join(texts) + "\n")


def test_four_class_leave_one_session_out(tmp_path):
    write_iemocap(tmp_path / "iemocap")
    data = load_dataset("iemocap", tmp_path)
    assert data.labels == ["neutral", "happy", "angry", "sad"]
    assert {s.meta["emotion_code"] for s in data.samples if s.label == "happy"} == {"hap", "exc"}
    assert not any(s.meta["emotion_code"] == "fru" for s in data.samples)
    assert all({"audio", "text"} <= set(s.sources) for s in data.samples)
    assert len(data.folds) == 5
    for k, fold in enumerate(data.folds, start=1):
        train, val, test = partition(data.samples, fold)
        assert {data.samples[i].meta["session"] for i in test} == {k}
        assert {data.samples[i].meta["session"] for i in val} == {k % 5 + 1}
        assert len(train) == 3 * len(test)
    recipe = load_recipe("text_audio_attention_iemocap")
    assert set(recipe.modalities) == {"audio", "text"} <= get_dataset("iemocap").modalities


def test_speaker_independent_within_sessions(tmp_path):
    write_iemocap(tmp_path / "iemocap")
    data = load_dataset("iemocap_speaker", tmp_path)
    assert data.spec.speaker_independent and len(data.folds) == 10
    tested = []
    for fold in data.folds:
        train, val, test = partition(data.samples, fold)
        test_speakers = {data.samples[i].speaker for i in test}
        val_speakers = {data.samples[i].speaker for i in val}
        (speaker,) = test_speakers
        (other,) = val_speakers
        assert speaker[:5] == other[:5] and speaker != other  # the other speaker of the same session
        train_sessions = {data.samples[i].meta["session"] for i in train}
        assert int(speaker[3:5]) not in train_sessions and len(train_sessions) == 4
        tested.append(speaker)
    assert sorted(tested) == sorted({s.speaker for s in data.samples})  # every speaker tested once
