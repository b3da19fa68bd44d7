"""Word error rate, transcripts with word timestamps, their cache and their mapping onto feature frames."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from emofuse.errors import DataError
from emofuse.evaluation.wer import align_texts, align_words, normalise_words, summarise
from emofuse.inputs.word_times import TimedTranscript, Word, frame_word_index, word_frame_spans


def _asr_missing() -> str | None:
    from emofuse.inference.asr import asr_unavailable_reason

    return asr_unavailable_reason()


# ------------------------------------------------------------------ word error rate

def test_normalise_words_lowercases_and_strips_punctuation():
    assert normalise_words("Kids are talking, by the door.") == ["kids", "are", "talking", "by", "the", "door"]
    assert normalise_words("  DON’T   stop!! by-the door?") == ["don't", "stop", "by", "the", "door"]
    assert normalise_words("...") == []


def test_alignment_counts_substitutions_deletions_insertions():
    ref = "kids are talking by the door".split()
    same = align_words(ref, ref)
    assert (same.hits, same.errors, same.wer) == (6, 0, 0.0)
    sub = align_words(ref, "kids are walking by the door".split())
    assert (sub.substitutions, sub.deletions, sub.insertions) == (1, 0, 0)
    assert ("S", "talking", "walking") in sub.ops
    dele = align_words(ref, "kids talking by the door".split())
    assert (dele.substitutions, dele.deletions, dele.insertions) == (0, 1, 0) and ("D", "are", None) in dele.ops
    ins = align_words(ref, "the kids are talking by the door now".split())
    assert (ins.substitutions, ins.deletions, ins.insertions) == (0, 0, 2)
    assert ins.wer == pytest.approx(2 / 6)
    mixed = align_texts("Dogs are sitting by the door", "dog sitting by the big door")
    assert (mixed.substitutions, mixed.deletions, mixed.insertions) == (1, 1, 1) and mixed.wer == pytest.approx(3 / 6)


def test_alignment_edge_cases():
    assert align_words([], []).wer == 0.0
    assert align_words([], ["hello"]).wer == float("inf")
    gone = align_words(["a", "b"], [])
    assert (gone.deletions, gone.wer) == (2, 1.0)


def test_corpus_wer_sums_errors_over_words():
    figures = summarise([align_words("a b c d".split(), "a x c d".split()), align_words(["a", "b"], ["a", "b"])])
    assert figures["wer"] == pytest.approx(1 / 6)  # not the mean of 0.25 and 0
    assert (figures["substitutions"], figures["ref_words"], figures["utterances"], figures["exact"]) == (1, 6, 2, 0.5)


# ------------------------------------------------------------------ word times -> frames

WORDS = (Word("kids", 0.72, 1.22, 0.76), Word("are", 1.22, 1.50), Word("door", 2.08, 2.32, 1.0))


def test_word_frame_spans_at_50_and_100_frames_per_second():
    spans = word_frame_spans(WORDS, 50.0)
    assert spans.dtype == np.int64 and spans.tolist() == [[36, 61], [61, 75], [104, 116]]
    assert word_frame_spans(WORDS, 100.0).tolist() == [[72, 122], [122, 150], [208, 232]]
    # a word shorter than a frame still gets the frame holding its start
    assert word_frame_spans([Word("a", 0.105, 0.106)], 10.0).tolist() == [[1, 2]]
    # clipped to the sequence: the third word starts after its end
    assert word_frame_spans(WORDS, 50.0, num_frames=100).tolist() == [[36, 61], [61, 75], [100, 100]]
    with pytest.raises(ValueError):
        word_frame_spans(WORDS, 0.0)


def test_frame_word_index_marks_each_frame_with_its_word():
    index = frame_word_index(WORDS, 10.0, num_frames=30)
    assert index.tolist() == [-1] * 7 + [0] * 5 + [1] * 3 + [-1] * 5 + [2] * 4 + [-1] * 6


def test_timed_transcript_json_round_trip():
    original = TimedTranscript("Kids are door.", WORDS, 0.5, {"file": "/x.flac"})
    data = json.loads(json.dumps(original.to_dict()))
    back = TimedTranscript.from_dict(data)
    assert back == original and back.meta == {"file": "/x.flac"} and back.words[1].probability is None
    plain = TimedTranscript.from_dict({"text": "hi", "file": "a"})  # an entry written before word timestamps
    assert plain.words == () and plain.seconds is None


@pytest.mark.parametrize("bad, message", [
    ([], "JSON object"), ({"words": []}, "'text'"), ({"text": "a", "words": {}}, "'words' must be a list"),
    ({"text": "a", "words": [{"word": "a", "start": 2, "end": 1}]}, "word #0"),
    ({"text": "a", "words": [{"start": 0, "end": 1}]}, "'word' missing"),
    ({"text": "a", "seconds": -1}, "'seconds'"),
])
def test_malformed_transcript_json_names_the_file(bad, message):
    with pytest.raises(DataError, match=message) as err:
        TimedTranscript.from_dict(bad, Path("entry.json"))
    assert "entry.json" in str(err.value)


# ------------------------------------------------------------------ the cache

class _FakeTranscriber:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def config(self):
        return {"model": "fake", "beam_size": 5}

    def __call__(self, wave, sr):
        self.calls.append("plain")
        return "kids are talking by the door"

    def transcribe(self, wave, sr, *, word_timestamps=False):
        self.calls.append("words")
        return TimedTranscript("Kids are door.", WORDS)


def test_timed_transcripts_are_cached_as_json_per_clip_and_decoding(tmp_path):
    from emofuse.inference.asr import cached_timed_transcript, cached_transcript

    clip = tmp_path / "clip.wav"
    clip.write_bytes(b"RIFF0000WAVEdata")
    fake = _FakeTranscriber()
    load = lambda: np.zeros(1600, dtype=np.float32)  # noqa: E731
    timed = cached_timed_transcript(clip, fake, load, tmp_path / "cache", word_timestamps=True)
    assert timed.words == WORDS and timed.seconds is not None and timed.seconds >= 0
    again = cached_timed_transcript(clip, fake, lambda: 1 / 0, tmp_path / "cache", word_timestamps=True)
    assert again == timed and fake.calls == ["words"]
    # the plain decoding has its own entry, shared with cached_transcript (predict time)
    assert cached_transcript(clip, fake, load, tmp_path / "cache") == "kids are talking by the door"
    assert cached_timed_transcript(clip, fake, lambda: 1 / 0, tmp_path / "cache").words == ()
    assert fake.calls == ["words", "plain"]
    entries = sorted((tmp_path / "cache").glob("asr-*/*.json"))
    assert len(entries) == 2 and not list((tmp_path / "cache").glob("asr-*/*.tmp"))
    stored = [json.loads(e.read_text()) for e in entries]
    with_words = next(d for d in stored if d["words"])
    assert with_words["config"]["word_timestamps"] is True and with_words["words"][0] == {
        "word": "kids", "start": 0.72, "end": 1.22, "probability": 0.76}


def test_thread_count_is_not_part_of_the_transcript_key():
    from emofuse.errors import ConfigError
    from emofuse.inference.asr import Transcriber

    assert Transcriber(cpu_threads=1).config() == Transcriber().config()
    assert "cpu_threads" not in Transcriber(cpu_threads=2).config()
    with pytest.raises(ConfigError, match="cpu_threads"):
        Transcriber(cpu_threads=-1)


# ------------------------------------------------------------------ real data

@pytest.mark.realdata
@pytest.mark.skipif(_asr_missing() is not None, reason=f"speech recognition unavailable: {_asr_missing()}")
def test_two_ravdess_clips_are_transcribed_with_word_times(shared_data, tmp_path):
    from emofuse.experiments.asr_wer import main

    out = tmp_path / "wer.json"
    assert main(["--out", str(out), "--data", str(shared_data), "--limit", "2", "--quiet", "--retime", "1"]) == 0
    result = json.loads(out.read_text())
    assert result["clips"] == 2 and set(result["decodings"]) == {"plain", "words"}
    assert result["decodings_differ"]["clips"] in (0, 1, 2)
    assert result["retimed"]["clips"] == 1 and result["retimed"]["words"]["median"] > 0
    for figures in result["decodings"].values():
        assert figures["ref_words"] == 12 and figures["wer"] <= 0.5 and figures["timed_clips"] == 2
    entries = [json.loads(p.read_text()) for p in Path(os.environ["EMOFUSE_CACHE"]).glob("asr-*/*.json")]
    timed = [e for e in entries if e.get("words")]
    assert timed, "no transcript with word timestamps was cached"
    words = TimedTranscript.from_dict(timed[0]).words
    assert len(words) >= 4 and all(0 <= w.start <= w.end <= 4.5 for w in words)
    spans = word_frame_spans(words, 50.0)
    assert (np.diff(spans[:, 0]) >= 0).all()
