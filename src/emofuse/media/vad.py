"""Speech detection: does a waveform hold enough speech for an emotion prediction?

Silero VAD 6.2.3 (MIT; its weights ship inside the ``silero-vad`` package, no download) gives
one speech probability per 32 ms frame at 16 kHz. Frames become speech segments with silero's
own hysteresis rule (a segment starts at probability >= 0.5, ends after 100 ms below 0.35;
segments under 250 ms are dropped). The ONNX weights run in onnxruntime (a dependency of
faster-whisper) on one thread, loaded lazily once per process; ``silero_vad`` itself is never
imported (its import calls ``torch.set_num_threads(1)`` for the whole process).

`check_speech` is what prediction uses (`emofuse.inference.predictor.Predictor.predict_file`); a service
can call it, or `speech_segments`, on any waveform. Long inputs are cut into 30 s rows that run
as one batch, so ten minutes cost about as much as a few short clips.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emofuse.errors import DataError, NoSpeechError

#: the rate silero runs at; other rates are resampled first
SAMPLE_RATE = 16000
#: samples per VAD frame at 16 kHz (32 ms), and the samples of the previous frame each call also sees
FRAME = 512
CONTEXT = 64
#: speech starts at this frame probability ...
THRESHOLD = 0.5
#: ... and ends after `MIN_SILENCE_S` below this one (silero's default: threshold - 0.15)
NEG_THRESHOLD = 0.35
MIN_SILENCE_S = 0.1
#: segments shorter than this are not speech (silero's default)
MIN_SEGMENT_S = 0.25
#: the least detected speech a prediction needs. RAVDESS sentences ("Kids are talking by the
#: door") hold 0.9-3 s of speech; half a second is a short word or two.
MIN_SPEECH_SECONDS = 0.5
#: samples beyond this peak are not a recording at all (float data written without scaling)
MAX_PEAK = 8.0
#: long inputs run as a batch of rows of this length
ROW_SECONDS = 30.0

_model = None  # the onnxruntime session (thread-safe: run() keeps no state)


@dataclass(frozen=True)
class SpeechReport:
    """Speech segments ``(start_s, end_s)`` found in ``duration`` seconds of audio."""

    segments: list[tuple[float, float]]
    duration: float

    @property
    def speech_seconds(self) -> float:
        return float(sum(end - start for start, end in self.segments))


def _load_model():
    """An onnxruntime session on silero's ONNX weights, created once per process (one thread:
    the model is tiny, and more threads only contend on a busy machine)."""
    global _model
    if _model is None:
        import onnxruntime

        spec = importlib.util.find_spec("silero_vad")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("speech detection needs the silero-vad package: pip install silero-vad==6.2.3")
        weights = Path(list(spec.submodule_search_locations)[0]) / "data" / "silero_vad.onnx"
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        _model = onnxruntime.InferenceSession(str(weights), sess_options=opts, providers=["CPUExecutionProvider"])
    return _model


def speech_probabilities(wave: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Silero's speech probability for each 32 ms frame of a mono waveform (resampled to 16 kHz,
    its DC offset removed)."""
    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    if sr != SAMPLE_RATE:
        import soxr

        wave = soxr.resample(wave, sr, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)
    n_frames = -(-wave.size // FRAME)
    if n_frames == 0:
        return np.zeros(0, dtype=np.float32)
    steps = min(int(ROW_SECONDS * SAMPLE_RATE) // FRAME, n_frames)  # frames per row
    n_rows = -(-n_frames // steps)
    padded = np.zeros(n_rows * steps * FRAME, dtype=np.float32)  # the one copy made of a long input
    padded[: wave.size] = wave
    padded[: wave.size] -= np.float32(wave.mean(dtype=np.float64))
    rows = padded.reshape(n_rows, steps * FRAME)
    probs = np.empty((n_rows, steps), dtype=np.float32)
    state = np.zeros((2, n_rows, 128), dtype=np.float32)
    context = np.zeros((n_rows, CONTEXT), dtype=np.float32)
    rate = np.array(SAMPLE_RATE, dtype=np.int64)
    session = _load_model()
    for i in range(steps):  # each call sees the frame plus the previous 64 samples, as silero's wrapper does
        chunk = np.concatenate([context, rows[:, i * FRAME : (i + 1) * FRAME]], axis=1)
        out, state = session.run(None, {"input": chunk, "state": state, "sr": rate})
        probs[:, i] = out.reshape(-1)
        context = chunk[:, -CONTEXT:]
    return probs.reshape(-1)[:n_frames]


def segments_from_probabilities(probs: np.ndarray, duration: float) -> list[tuple[float, float]]:
    """Speech segments in seconds from frame probabilities (silero's hysteresis rule, no padding)."""
    frame_s = FRAME / SAMPLE_RATE
    segments: list[tuple[float, float]] = []
    start: int | None = None
    quiet_since: int | None = None
    for i, p in enumerate(np.append(probs, 0.0)):  # a trailing zero closes an open segment
        closing = i == len(probs)
        if start is None:
            if p >= THRESHOLD and not closing:
                start, quiet_since = i, None
            continue
        if p >= THRESHOLD:
            quiet_since = None
        elif p < NEG_THRESHOLD and quiet_since is None:
            quiet_since = i
        if closing or (quiet_since is not None and (i - quiet_since) * frame_s >= MIN_SILENCE_S):
            end = i if closing or quiet_since is None else quiet_since
            if (end - start) * frame_s >= MIN_SEGMENT_S:
                segments.append((start * frame_s, min(end * frame_s, duration)))
            start = quiet_since = None
    return segments


def speech_segments(wave: np.ndarray, sr: int = SAMPLE_RATE) -> SpeechReport:
    """The speech segments of a mono waveform (any rate; the DC offset is removed first)."""
    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    duration = wave.size / float(sr)
    if wave.size == 0:
        return SpeechReport([], 0.0)
    return SpeechReport(segments_from_probabilities(speech_probabilities(wave, sr), duration), duration)


def check_speech(wave: np.ndarray, sr: int = SAMPLE_RATE, path: str | Path | None = None,
                 min_speech: float = MIN_SPEECH_SECONDS) -> SpeechReport:
    """The speech in ``wave``, or `NoSpeechError` naming ``path`` when there is less than ``min_speech`` s.

    Status "too_short" when the whole recording is shorter than ``min_speech`` or holds some speech
    but not enough; "no_speech" when no speech is found. Samples beyond `MAX_PEAK` (float data
    written without scaling) are a `DataError`: such a file is not a recording to judge.
    """
    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    duration = wave.size / float(sr)
    if duration < min_speech:
        length = f"{duration:.2g} s" if duration >= 0.01 else f"{wave.size} sample(s)"
        raise NoSpeechError(path, f"too short: the recording lasts {length}, a prediction needs at least "
                                  f"{min_speech:g} s of speech", status="too_short")
    peak = max(float(wave.max()), -float(wave.min()))  # no |wave| copy of a long input
    if peak > MAX_PEAK:
        raise DataError(path, f"samples reach {peak:.3g}, far beyond full scale (1.0): not a valid recording "
                              "(float samples written without scaling?)")
    report = speech_segments(wave, sr)
    found = report.speech_seconds
    if found == 0.0:
        raise NoSpeechError(path, f"no speech found in {duration:.3g} s of audio (if it is speech, e.g. shouting "
                                  "the detector misses, --min-speech 0 turns the check off)")
    if found < min_speech:
        raise NoSpeechError(path, f"too short: {found:.2f} s of speech found in {duration:.3g} s of audio, a "
                                  f"prediction needs at least {min_speech:g} s", status="too_short")
    return report
