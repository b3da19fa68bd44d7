"""The generated bad-input corpus (issue #10): every case through one shipped-model Predictor.

The corpus (`emofuse.diagnostics.corpus`) is made by code at test time into tmp_path. Each case is
run in this process under a `signal.alarm` guard and an address-space cap, and judged
(`emofuse.diagnostics.bad_inputs.judge`): zero crashes, hangs, wrong-but-silent results, and every
error names the file. The subprocess runner (time limit, memory figure) has its own tests.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from emofuse.diagnostics import bad_inputs as bi
from emofuse.diagnostics.corpus import NO_SPEECH, Case, cases, generate
from emofuse.errors import DataError, NoSpeechError
from emofuse.inference.predictor import Prediction, Predictor

TIMEOUT_S = 30
MEMORY_CAP_MB = 3072


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[Case]:
    return generate(tmp_path_factory.mktemp("corpus"), include_slow=False)


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor()


@pytest.fixture(scope="module")
def report(corpus, predictor) -> dict:
    outcomes = []
    for case in corpus:
        if case.skipped:
            outcomes.append(None)
            continue
        with bi.memory_cap(MEMORY_CAP_MB):
            outcomes.append(bi.run_in_process(predictor, case, TIMEOUT_S))
    return bi.summarize(corpus, outcomes)


def _offenders(report: dict, *verdicts: str) -> list[dict]:
    return [r for r in report["cases"] if r["verdict"] in verdicts]


def _explain(report: dict, *verdicts: str) -> str:
    return "\n" + bi.format_cases(_offenders(report, *verdicts))


# ---------------------------------------------------------------- the corpus itself


def test_corpus_is_made_by_code_and_covers_the_issue(corpus):
    files = [c for c in corpus if c.fixed_path is None and c.path is not None and c.name != "missing"]
    assert len(files) >= 60
    assert all(c.path.exists() or c.path.is_symlink() for c in files)
    names = {c.name for c in corpus}
    for required in ("empty_wav", "wav_truncated", "flac_truncated", "mp4_truncated_faststart", "mp4_truncated_clean",
                     "mp3_truncated",
                     "random_flac", "text_flac", "png_wav", "wav_named_mp3", "mp4_no_audio", "mp4_silent_audio",
                     "rate_8000", "rate_44100", "rate_96000", "rate_192000", "rate_1hz", "rate_3khz", "rate_500khz",
                     "wav_pcm_u8", "wav_pcm_24", "wav_pcm_32", "wav_float", "wav_double", "wav_alaw", "wav_ulaw",
                     "ch6", "ch32", "phase_cancelled", "silence_3s", "white_noise", "sine_440", "dc_offset",
                     "one_sample", "speech_50ms", "speech_100ms", "float_1e6", "clipped", "two_tracks_mp4",
                     "fifo", "directory", "symlink_loop", "symlink_dangling", "proc_status", "unreadable",
                     "name_spaces", "name_unicode", "name_dash", "name_long", "name_newline", "name_glob"):
        assert required in names
    assert "silence_10min" in {c.name for c in cases()} and "silence_10min" not in names  # slow: own test
    by_name = {c.name: c for c in corpus}
    assert sf.info(str(by_name["rate_192000"].path)).samplerate == 192000
    assert sf.info(str(by_name["ch32"].path)).channels == 32
    assert sf.info(str(by_name["wav_alaw"].path)).subtype == "ALAW"
    assert sf.info(str(by_name["rate_1hz"].path)).samplerate == 1
    assert by_name["rate_1hz"].path.stat().st_size < 130_000
    assert by_name["empty_wav"].path.stat().st_size == 0
    assert by_name["fifo"].path.is_fifo() and by_name["directory"].path.is_dir()
    with av.open(str(by_name["two_tracks_mp4"].path)) as container:
        assert len(container.streams.audio) == 2 and len(container.streams.video) == 1
    for name in ("mp4_truncated_faststart", "mp4_truncated_clean"):  # the index declares 3.7 s, half is there
        with av.open(str(by_name[name].path)) as container:
            assert container.streams.audio[0].duration * container.streams.audio[0].time_base > 3.0
    with av.open(str(by_name["mp4_truncated_clean"].path)) as container:
        decoded = sum(frame.samples for frame in container.decode(audio=0)) / 16000
    assert 1.0 < decoded < 2.5
    stereo, _ = sf.read(str(by_name["phase_cancelled"].path))
    assert np.abs(stereo).max() > 0.1 and np.abs(stereo.mean(axis=1)).max() < 1e-3
    assert set(by_name["silence_3s"].expected) == set(NO_SPEECH)


# ---------------------------------------------------------------- every case in one Predictor


def test_no_crashes(report):
    assert not _offenders(report, "crash"), _explain(report, "crash")


def test_no_hangs_and_no_runaway_memory(report):
    assert not _offenders(report, "hang", "over_memory"), _explain(report, "hang", "over_memory")


def test_no_wrong_but_silent_results(report):
    """No label for non-speech or broken input; clipping, truncation and the track used are warned about."""
    assert not _offenders(report, "wrong_silent"), _explain(report, "wrong_silent")


def test_errors_name_the_file_and_the_problem(report):
    assert not _offenders(report, "unclear_error"), _explain(report, "unclear_error")


def test_speech_is_not_refused(report):
    """Valid speech in any supported format, rate, channel count or name gets a label."""
    assert not _offenders(report, "mismatch"), _explain(report, "mismatch")


@pytest.mark.slow
def test_ten_minutes_of_silence(tmp_path, predictor):
    (case,) = generate(tmp_path, only={"silence_10min"})
    with bi.memory_cap(MEMORY_CAP_MB):
        outcome = bi.run_in_process(predictor, case, 120)
    assert bi.judge(case, outcome) == "correct", outcome


# ---------------------------------------------------------------- the judge and the runners


def _case(expected, warn=None, wording=None) -> Case:
    return Case("x", "x.wav", expected, "", warn=warn, wording=wording, path=Path("/c/x.wav"))


def test_judge():
    silent = _case(NO_SPEECH)
    assert bi.judge(silent, bi.Outcome(status="ok", label="calm")) == "wrong_silent"
    assert bi.judge(silent, bi.Outcome(status="no_speech", message="/c/x.wav: no speech found")) == "correct"
    assert bi.judge(silent, bi.Outcome(status="no_speech", message="no speech found")) == "unclear_error"
    assert bi.judge(silent, bi.Outcome(status="error", message="/c/x.wav: bad")) == "mismatch"
    assert bi.judge(silent, bi.Outcome(crash="ValueError: x")) == "crash"
    assert bi.judge(silent, bi.Outcome(hang=True)) == "hang"
    instant = Case("x", "x.wav", ("error",), "", max_seconds=5, path=Path("/c/x.wav"))
    assert bi.judge(instant, bi.Outcome(status="error", message="/c/x.wav: 1 Hz", predict_seconds=1)) == "correct"
    assert bi.judge(instant, bi.Outcome(status="error", message="/c/x.wav: 1 Hz", predict_seconds=9)) == "hang"
    warned = _case(("ok",), warn="track")
    assert bi.judge(warned, bi.Outcome(status="ok", label="sad", warnings=["clipping"])) == "wrong_silent"
    assert bi.judge(warned, bi.Outcome(status="ok", label="sad", warnings=["used audio Track 2"])) == "correct"
    worded = Case("x", "loop.wav", ("error",), "", wording="loop", path=Path("/c/loop.wav"))
    assert bi.judge(worded, bi.Outcome(status="error", message="/c/loop.wav: file not found")) == "unclear_error"
    assert bi.judge(worded, bi.Outcome(status="error", message="/c/loop.wav: symlink loop")) == "correct"


class _Fake:
    def __init__(self, action):
        self.action = action

    def predict_file(self, path):
        return self.action(path)


def _sleep(path):
    time.sleep(5)


def _raise(exc):
    def action(path):
        raise exc
    return action


def test_in_process_runner_classifies_errors_crashes_and_hangs():
    case = _case(("error",))
    start = time.perf_counter()
    assert bi.run_in_process(_Fake(_sleep), case, 1).hang
    assert time.perf_counter() - start < 3
    assert bi.judge(case, bi.run_in_process(_Fake(_raise(DataError(case.path, "bad"))), case, 5)) == "correct"
    assert bi.run_in_process(_Fake(_raise(NoSpeechError(case.path, "none", "too_short"))), case, 5).status == "too_short"
    assert bi.run_in_process(_Fake(_raise(KeyError("k"))), case, 5).crash == "KeyError: 'k'"
    assert bi.run_in_process(_Fake(_raise(MemoryError())), case, 5).over_memory
    ok = Prediction(path=str(case.path), label="sad", probabilities={"sad": 1.0}, modalities_used=["audio"])
    assert bi.run_in_process(_Fake(lambda p: ok), case, 5).label == "sad"


def test_subprocess_runner_kills_at_the_time_and_memory_limits(corpus):
    ref = next(c for c in corpus if c.name == "ref_0")
    start = time.perf_counter()
    assert bi.run_in_subprocess(ref.path, timeout_s=0.5, max_memory_mb=4096).hang
    assert bi.run_in_subprocess(ref.path, timeout_s=60, max_memory_mb=30).over_memory
    assert time.perf_counter() - start < 20


def test_command_reports_counts_and_peak_memory(tmp_path, monkeypatch, capsys):
    """``python -m emofuse.diagnostics.bad_inputs --only ref_0 --out ... --keep ...`` (one child, the
    model loaded in it: its peak memory is the child's own, not this pytest process's)."""
    monkeypatch.chdir(tmp_path)
    code = bi.main(["--only", "ref_0", "--out", "report.json", "--keep", "corpus"])
    report = json.loads(Path("report.json").read_text())
    counts = report["counts"]
    assert code == 0, capsys.readouterr().out
    assert (counts["run"], counts["correct"], counts["correct_ok"], counts["crash"]) == (1, 1, 1, 0)
    assert 100 < counts["peak_memory_mb"] < bi.MEMORY_TARGET_MB
    assert report["cases"][0]["label"] and report["cases"][0]["predict_seconds"] > 0
    assert Path("corpus/ref_03-01-03-02-02-01-02.flac").exists()
    assert "| crashes | 0 |" in capsys.readouterr().out


def test_an_uncertain_answer_counts_as_an_answer():
    from emofuse.diagnostics.bad_inputs import Outcome, judge
    from emofuse.diagnostics.corpus import Case

    case = Case(name="speech", filename=None, expected=("ok",), description="speech")
    assert judge(case, Outcome(status="uncertain", label="sad")) == "correct"
