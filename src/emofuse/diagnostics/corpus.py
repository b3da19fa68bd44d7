"""A corpus of bad and unusual media files, made by code (numpy, soundfile, PyAV; no network).

Speech comes from the sample clips shipped with the package (`emofuse.inference.predictor.sample_clips`);
everything else (silence, noise, headers, containers, special files, odd names) is synthesised.
Each `Case` states the statuses that are correct for it (`Case.expected`, see
`emofuse.inference.predictor.Prediction.status`) and, where an answer must come with a warning, which
(`Case.warn`). `generate` writes the corpus into a folder; `emofuse.diagnostics.bad_inputs`
runs it and counts the outcomes. The files are made by `emofuse.diagnostics.corpus_media`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from emofuse.diagnostics.corpus_media import (  # the file makers the cases use
    SR,
    Material,
    channels,
    cut_at_packet,
    declared_rate,
    pcm16,
    raw_bytes,
    rng,
    samples,
    speech_mp3,
    speech_mp4,
    speech_wav,
    symlink,
    symlink_loop,
    tiny_png,
    truncated,
    unreadable,
    write_av,
    write_riff,
    write_sf,
)
from emofuse.inference.predictor import sample_clips

OK = ("ok",)
NO_SPEECH = ("no_speech", "too_short")
ERROR = ("error",)

#: how a file that is not audio at all should be described (not "audio track has no sample rate")
NOT_AUDIO = r"not (an? |a readable )?(audio|media|sound)"


@dataclass(frozen=True)
class Case:
    """One corpus entry and what a correct answer for it is."""

    name: str
    #: path inside the corpus folder (None for a `fixed_path`)
    filename: str | None
    #: the statuses that are correct; the first is the main expectation
    expected: tuple[str, ...]
    description: str
    build: Callable[[Path, "Material"], None] | None = None
    #: an "ok" answer must carry a warning matching this regular expression ("": any warning)
    warn: str | None = None
    #: an error or no-speech message must match this regular expression (the problem in right words)
    wording: str | None = None
    #: the sample clip an "ok" answer should agree with (its label is compared, not required)
    source: str | None = None
    #: a refusal that must come at once: more than this many seconds in predict_file counts as a hang
    max_seconds: float | None = None
    #: long to run (a long file); `generate(include_slow=False)` leaves it out
    slow: bool = False
    #: a path that is given, not generated (e.g. /proc/self/status)
    fixed_path: str | None = None
    #: set by `generate`: where the file is, or why the case was skipped
    path: Path | None = None
    skipped: str | None = None


#: ``add(name, filename, expected, description, build=None, **case_fields)``: appends one `Case`
Add = Callable[..., None]


def _references(add: Add, clips: list[str]) -> None:
    """References: the sample clips themselves (their labels are what derived files should keep)."""
    for i, clip in enumerate(clips):
        add(f"ref_{i}", f"ref_{clip}", OK, f"sample clip {clip} as shipped (reference label)",
            lambda p, m, i=i: shutil.copyfile(m.clips[i], p), source=clip)


def _empty_and_truncated(add: Add, clips: list[str]) -> None:
    """Empty and truncated files."""
    s0 = clips[0]
    add("empty_wav", "empty.wav", ERROR, "0-byte .wav", raw_bytes(b""))
    add("empty_mp4", "empty.mp4", ERROR, "0-byte .mp4", raw_bytes(b""))
    add("wav_zero_samples", "zero_samples.wav", ERROR + ("too_short",),
        "valid WAV header with 0 samples (an error, or too short)", lambda p, m: write_riff(p, b"", SR))
    add("wav_truncated", "truncated.wav", ERROR + OK, "WAV cut to half: the header declares twice the data "
        "(an error, or a result with a truncation warning)", truncated(speech_wav()), warn="", source=s0)
    add("wav_header_cut", "header_cut.wav", ERROR, "the first 30 bytes of a WAV (header cut mid-way)",
        truncated(speech_wav(), keep=30))
    add("wav_declares_4gb", "declares_4gb.wav", ERROR, "WAV header declaring 4 GB of data, 2 KB present "
        "(must be refused at once, not read)", lambda p, m: write_riff(p, pcm16(m.speech()[:1000]), SR,
                                                                        declared=0xFFFFFF00), max_seconds=5)
    add("flac_truncated", "truncated.flac", ERROR + OK, "FLAC cut to half (an error, or a result with a "
        "truncation warning)", truncated(speech_wav("PCM_16", fmt="FLAC")), warn="", source=s0)
    add("mp4_truncated_faststart", "truncated_faststart.mp4", ERROR + OK,
        "~3.7 s MP4 (AAC + video, index at the front) cut to half: decodes ~1.5 s; an error or a result "
        "with a truncation warning", truncated(lambda p, m: speech_mp4(p, m, faststart=True)), warn="", source=s0)
    add("mp4_truncated_clean", "truncated_clean.mp4", ERROR + OK,
        "~3.7 s MP4 (index at the front) cut after the packet nearest half-way: decodes ~1.5 s without a "
        "decoder error (the issue's case); an error or a result with a truncation warning",
        lambda p, m: (speech_mp4(p, m, faststart=True), cut_at_packet(p)), warn="", source=s0)
    add("mp4_truncated", "truncated.mp4", ERROR + OK, "MP4 (index at the end) cut to half: the index is "
        "lost", truncated(speech_mp4), warn="", source=s0)
    add("mp3_truncated", "truncated.mp3", ERROR + OK, "MP3 cut to half (its Xing header declares the full "
        "length): an error or a result with a truncation warning", truncated(speech_mp3), warn="", source=s0)


def _working_containers(add: Add, clips: list[str]) -> None:
    """Containers and codecs that work."""
    s0 = clips[0]
    add("mp4_aac", "speech.mp4", OK, "MP4: AAC speech + a tiny video stream", speech_mp4, source=s0)
    add("mp3", "speech.mp3", OK, "MP3 speech", speech_mp3, source=s0)
    add("ogg_vorbis", "speech.ogg", OK, "Ogg Vorbis speech", speech_wav("VORBIS", fmt="OGG"), source=s0)
    add("aiff", "speech.aiff", OK, "AIFF speech", speech_wav("PCM_16", fmt="AIFF"), source=s0)
    add("mka_aac", "speech.mka", OK, "Matroska audio, AAC",
        lambda p, m: write_av(p, [m.speech()], fmt="matroska"), source=s0)


def _wrong_containers(add: Add, clips: list[str]) -> None:
    """Wrong containers."""
    s0 = clips[0]
    noise_bytes = rng().integers(0, 256, 65536, dtype=np.uint8).tobytes()
    add("random_flac", "random.flac", ERROR, "64 KB of random bytes named .flac (says: not an audio file)",
        raw_bytes(noise_bytes), wording=NOT_AUDIO)
    add("random_wav", "random.wav", ERROR, "64 KB of random bytes named .wav", raw_bytes(noise_bytes),
        wording=NOT_AUDIO)
    add("random_mp4", "random.mp4", ERROR, "64 KB of random bytes named .mp4", raw_bytes(noise_bytes),
        wording=NOT_AUDIO)
    add("text_flac", "text.flac", ERROR, "a text file named .flac (says: not an audio file)",
        raw_bytes(("This is not audio. " * 200).encode()), wording=NOT_AUDIO)
    add("png_wav", "image.wav", ERROR, "a PNG image named .wav", raw_bytes(tiny_png()))
    add("json_wav", "data.wav", ERROR, "a JSON document named .wav",
        raw_bytes(json.dumps({"audio": [0.1] * 500, "rate": 16000}).encode()))
    add("wav_named_mp3", "wav_inside.mp3", OK, "a WAV file named .mp3 (the content decides)",
        lambda p, m: write_sf(p, m.speech(), SR, "PCM_16", "WAV"), source=s0)
    add("flac_named_wav", "flac_inside.wav", OK, "a FLAC file named .wav (the content decides)",
        lambda p, m: write_sf(p, m.speech(), SR, "PCM_16", "FLAC"), source=s0)
    add("mp4_named_wav", "mp4_inside.wav", OK, "an MP4 file named .wav (the content decides)",
        speech_mp4, source=s0)
    add("mp4_no_audio", "video_only.mp4", ERROR, "an MP4 with a video stream and no audio track",
        lambda p, m: write_av(p, [], fmt="mp4", video=True))
    add("mp4_silent_audio", "silent_audio.mp4", NO_SPEECH, "a video whose audio track is silent",
        lambda p, m: write_av(p, [np.zeros(3 * SR, np.float32)], fmt="mp4", video=True))
    add("wav_unknown_codec", "unknown_codec.wav", ERROR, "RIFF/WAVE with an unknown format tag 0x7777",
        lambda p, m: write_riff(p, pcm16(m.speech()), SR, fmt_tag=0x7777))
    add("wav_no_data_chunk", "no_data_chunk.wav", ERROR + ("too_short",),
        "RIFF/WAVE with a fmt chunk and no data chunk", lambda p, m: write_riff(p, b"", SR, data_chunk=False))


def _sample_rates(add: Add, clips: list[str]) -> None:
    """Sample rates."""
    s0 = clips[0]
    for rate in (8000, 44100, 96000, 192000):
        add(f"rate_{rate}", f"rate_{rate}.wav", OK, f"speech resampled to {rate} Hz", speech_wav(rate=rate),
            source=s0)
    add("rate_1hz", "rate_1hz.wav", ERROR, "124 KB of 16 kHz speech under a header declaring 1 Hz (= 17 h "
        "of audio): refused before decoding or resampling, at once", declared_rate(1, nbytes=124_000),
        max_seconds=5)
    add("rate_3khz", "rate_3khz.wav", ERROR, "speech at 3 kHz (below a plausible 4 kHz)", declared_rate(3000, 3.0))
    add("rate_500khz", "rate_500khz.wav", ERROR, "0.5 s of speech at 500 kHz (above a plausible 384 kHz)",
        declared_rate(500_000, 0.5))
    add("rate_0hz", "rate_0hz.wav", ERROR, "WAV header declaring 0 Hz", declared_rate(0, nbytes=20_000))


def _sample_formats(add: Add, clips: list[str]) -> None:
    """Sample formats."""
    s0 = clips[0]
    for subtype in ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ALAW", "ULAW", "IMA_ADPCM",
                    "MS_ADPCM"):
        add(f"wav_{subtype.lower()}", f"wav_{subtype.lower()}.wav", OK, f"WAV, {subtype} samples",
            speech_wav(subtype), source=s0)
    for subtype in ("PCM_S8", "PCM_24"):
        add(f"flac_{subtype.lower()}", f"flac_{subtype.lower()}.flac", OK, f"FLAC, {subtype} samples",
            speech_wav(subtype, fmt="FLAC"), source=s0)
    add("wav_nan", "nan.wav", ERROR, "float WAV with NaN samples",
        samples(lambda m: np.where(np.arange(m.speech().size) % 100 == 0, np.nan, m.speech()), "FLOAT"))
    add("wav_inf", "inf.wav", ERROR, "float WAV with an infinite sample",
        samples(lambda m: np.concatenate([m.speech(), [np.inf]]), "FLOAT"))


def _channels(add: Add, clips: list[str]) -> None:
    """Channels."""
    s0 = clips[0]
    add("stereo", "stereo.wav", OK, "stereo speech", channels([1.0, 0.8]), source=s0)
    add("ch6", "ch6.wav", OK, "6-channel speech (5.1-like gains)", channels([1, .8, .6, .5, .4, .3]), source=s0)
    add("ch32", "ch32.wav", OK, "32-channel speech", channels([1 / (1 + k / 8) for k in range(32)]), source=s0)
    add("left_only", "left_only.wav", OK, "stereo: speech on the left, silence on the right",
        channels([1.0, 0.0]), source=s0)
    add("phase_cancelled", "phase_cancelled.wav", NO_SPEECH + OK, "stereo L = speech, R = -speech: the mono "
        "mix is silent. No label from the silent mix: no_speech, or a channel with speech used and named "
        "in a warning", channels([1.0, -1.0]), warn="")


def _non_speech(add: Add, clips: list[str]) -> None:
    """Non-speech."""
    s0 = clips[0]
    add("silence_3s", "silence_3s.wav", NO_SPEECH, "3 s of digital silence", samples(lambda m: np.zeros(3 * SR)))
    add("silence_10min", "silence_10min.wav", NO_SPEECH + ERROR, "10 min of digital silence (no_speech; "
        "an error is also right when 10 min is over the configured maximum duration)",
        samples(lambda m: np.zeros(600 * SR)), slow=True)
    add("white_noise", "white_noise.wav", NO_SPEECH, "3 s of white noise (std 0.1)",
        samples(lambda m: rng().normal(0, 0.1, 3 * SR).clip(-1, 1)))
    add("sine_440", "sine_440.wav", NO_SPEECH, "3 s of a 440 Hz sine at 0.5",
        samples(lambda m: 0.5 * np.sin(2 * np.pi * 440 * np.arange(3 * SR) / SR)))
    add("dc_offset", "dc_offset.wav", NO_SPEECH, "3 s of a constant 0.5 (DC offset)",
        samples(lambda m: np.full(3 * SR, 0.5)))
    add("one_sample", "one_sample.wav", NO_SPEECH, "a WAV holding one sample", samples(lambda m: np.array([0.1])))
    add("speech_50ms", "speech_50ms.wav", NO_SPEECH, "0.05 s cut from the loudest speech",
        samples(lambda m: m.loudest(0.05)))
    add("speech_100ms", "speech_100ms.wav", NO_SPEECH, "0.1 s cut from the loudest speech",
        samples(lambda m: m.loudest(0.1)))
    add("speech_in_silence", "speech_in_silence.wav", OK, "speech in the middle of 20 s of silence",
        samples(lambda m: np.concatenate([np.zeros(8 * SR), m.speech(), np.zeros(20 * SR - 8 * SR - m.speech().size)])),
        source=s0)


def _levels(add: Add, clips: list[str]) -> None:
    """Levels."""
    s0 = clips[0]
    add("float_1e6", "float_1e6.wav", OK + ERROR, "float WAV of speech scaled by 1e6 (a result with an "
        "out-of-range warning, or an error)", samples(lambda m: m.speech() * 1e6, "FLOAT"), warn="", source=s0)
    add("float_over_1", "float_over_1.wav", OK, "float WAV of speech peaking at 1.5 (out of range: warning)",
        samples(lambda m: m.speech() * 1.5 / np.abs(m.speech()).max(), "FLOAT"), warn="", source=s0)
    add("clipped", "clipped.wav", OK, "speech amplified 30x and clipped at full scale (warning)",
        samples(lambda m: np.clip(m.speech() * 30, -1, 1)), warn="", source=s0)


def _several_tracks(add: Add, clips: list[str]) -> None:
    """Several audio tracks."""
    s0 = clips[0]
    add("two_tracks_mp4", "two_tracks.mp4", OK, "MP4 with video, a silent first audio track and speech on "
        "the second: the speech track is used and named in a warning",
        lambda p, m: write_av(p, [np.zeros_like(m.speech()), m.speech()], fmt="mp4", video=True),
        warn="track", source=s0)
    add("two_tracks_mka", "two_tracks.mka", OK, "Matroska, silent first audio track, speech on the second "
        "(named in a warning)", lambda p, m: write_av(p, [np.zeros_like(m.speech()), m.speech()], fmt="matroska"),
        warn="track", source=s0)


def _special_files(add: Add, clips: list[str]) -> None:
    """Special files and paths."""
    s0 = clips[0]
    add("fifo", "fifo.wav", ERROR, "a named pipe (FIFO) nobody writes to: refused, never waited on",
        lambda p, m: os.mkfifo(p), max_seconds=5)
    add("directory", "folder.wav", ERROR, "a directory named .wav", lambda p, m: p.mkdir())
    add("symlink_loop", "loop_a.wav", ERROR, "a symlink loop (loop_a.wav -> loop_b.wav -> loop_a.wav); says "
        "so, not 'file not found'", symlink_loop, wording=r"loop")
    add("symlink_dangling", "dangling.wav", ERROR, "a symlink to a file that does not exist",
        symlink("does_not_exist.wav"))
    add("symlink_ok", "link.wav", OK, "a symlink to a speech WAV",
        lambda p, m: (write_sf(p.with_name("link_target.wav"), m.speech(), SR, "PCM_16"),
                      os.symlink("link_target.wav", p)), source=s0)
    add("missing", "missing.wav", ERROR, "a path that does not exist")
    add("proc_status", None, ERROR, "/proc/self/status (a special file: size 0, text content); not called "
        "'empty'", fixed_path="/proc/self/status", wording=r"^(?!.*\bempty\b)")
    add("unreadable", "unreadable.wav", ERROR, "a speech WAV without read permission", unreadable)


def _odd_names(add: Add, clips: list[str]) -> None:
    """Odd file names (valid speech)."""
    s0 = clips[0]
    for name, filename in [("name_spaces", "with  spaces .wav"), ("name_unicode", "ünïcødé 情感 😀.wav"),
                           ("name_dash", "-x.wav"), ("name_long", "long_" + "n" * 240 + ".wav"),
                           ("name_newline", "new\nline.wav"), ("name_glob", "glob[ab]*?{c,d}.wav"),
                           ("name_quotes", "quote'\"$HOME`x`;.wav"), ("name_no_ext", "no_extension"),
                           ("name_upper", "UPPER.WAV"), ("name_dots", "..dots...wav")]:
        add(name, filename, OK, f"speech WAV named {filename!r}", speech_wav(), source=s0)


#: The case builders, one per kind of input, in the order the cases are run.
_CATEGORIES: tuple[Callable[[Add, list[str]], None], ...] = (
    _references,
    _empty_and_truncated,
    _working_containers,
    _wrong_containers,
    _sample_rates,
    _sample_formats,
    _channels,
    _non_speech,
    _levels,
    _several_tracks,
    _special_files,
    _odd_names,
)


def _cases() -> list[Case]:
    """Every case, in the order they are run."""
    clips = [c.name for c in sample_clips()]
    cases: list[Case] = []

    def add(name: str, filename: str | None, expected: tuple[str, ...], description: str,
            build: Callable[[Path, Material], None] | None = None, **kw) -> None:
        cases.append(Case(name, filename, expected, description, build, **kw))

    for category in _CATEGORIES:
        category(add, clips)
    return cases


def cases(include_slow: bool = True) -> list[Case]:
    """The corpus's cases (without files; see `generate`)."""
    return [c for c in _cases() if include_slow or not c.slow]


def generate(folder: str | Path, *, include_slow: bool = True, only: set[str] | None = None) -> list[Case]:
    """Write the corpus into ``folder`` (created; should be empty) and return its cases with
    ``path`` set, or ``skipped`` saying why a case cannot be made here (e.g. an unreadable file
    when running as root, which reads everything)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    material = Material()
    out = []
    for case in cases(include_slow):
        if only is not None and case.name not in only:
            continue
        if case.name == "unreadable" and os.geteuid() == 0:
            out.append(replace(case, skipped="running as root, which can read every file"))
            continue
        if case.fixed_path is not None:
            out.append(replace(case, path=Path(case.fixed_path)))
            continue
        path = folder / case.filename
        if case.build is not None:
            case.build(path, material)
        out.append(replace(case, path=path))
    return out
