"""The bad-upload corpus of ``emofuse serve``, made by code, and a runner that sends it to a live server.

``bad_uploads(scratch)`` returns `Upload` cases: what to send (a multipart form, or raw bytes on a socket
for the cases an HTTP library will not send: lying Content-Length, broken framing) and the HTTP statuses
that are right for it. ``kind == "bad"``: the answer must be a clear 4xx (JSON ``{"error": {code,
message, field}}``); ``kind == "valid"``: unusual uploads a user may well send (6 channels, an odd
file name, audio in an MP4 without video) that must get an answer (200). `run_corpus` sends every case,
and counts clear 4xx, 5xx, other answers and failed exchanges.

Used by tests/test_service_server.py; the media come from `emofuse.diagnostics.corpus_media` (the
shipped sample clips and synthesised files).
"""

from __future__ import annotations

import gzip
import io
import json
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from emofuse.diagnostics.corpus_media import SR, Material, cut, pcm16, speech_mp4, tiny_png, write_av, write_riff
from emofuse.service.loadtest import Reply

sys.path.insert(0, str(Path(__file__).parent))
from service_http import closing, file_form, form, multipart_head, part, plain, raw  # noqa: E402

BAD, VALID = "bad", "valid"
#: the upload limit and upload time limit the corpus server runs with (`server_options`)
MAX_UPLOAD_MB, UPLOAD_TIMEOUT = 5, 3.0


def server_options() -> list[str]:
    """``emofuse serve`` options the corpus expects (small limits, so that the cases stay cheap)."""
    return ["--max-upload-mb", str(MAX_UPLOAD_MB), "--upload-timeout", str(UPLOAD_TIMEOUT), "--timeout", "60"]


@dataclass
class Upload:
    name: str
    description: str
    expect: tuple[int, ...]
    send: Callable[[str], Reply]
    kind: str = BAD
    #: checks on a 200 answer's body (e.g. the file name shown has no path)
    check: Callable[[Any], bool] | None = None
    #: a refusal that must come at once (e.g. a 2-hour file, refused from its header without decoding)
    max_seconds: float | None = None


@dataclass
class Tally:
    """What the corpus run gave."""

    clear_4xx: int = 0
    other_4xx: int = 0
    server_errors: int = 0
    valid_ok: int = 0
    unexpected: list[str] = field(default_factory=list)
    #: the bad uploads answered with a 4xx whose body is not the JSON error (name, status, body)
    unclear: list[str] = field(default_factory=list)
    failed_exchanges: list[str] = field(default_factory=list)
    replies: dict[str, tuple[int, Any]] = field(default_factory=dict)


# ------------------------------------------------------------------ media


class Media:
    """The corpus's files, made once (``scratch``: where the costlier ones are written)."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.m = Material()
        self._cache: dict[str, bytes] = {}

    def made(self, key: str, make: Callable[[Path], None], suffix: str = ".bin") -> bytes:
        if key not in self._cache:
            path = self.scratch / f"{key}{suffix}"
            make(path)
            self._cache[key] = path.read_bytes()
        return self._cache[key]

    def wav(self, wave: np.ndarray, subtype: str = "PCM_16", fmt: str = "WAV", rate: int = SR) -> bytes:
        out = io.BytesIO()
        sf.write(out, wave, rate, subtype=subtype, format=fmt)
        return out.getvalue()

    def speech(self) -> np.ndarray:
        return self.m.speech()

    def speech_wav(self) -> bytes:
        return self.made("speech_wav", lambda p: sf.write(str(p), self.speech(), SR, "PCM_16"), ".wav")

    def mp4(self, key: str, tracks: Callable[[], list[np.ndarray]], video: bool = True) -> bytes:
        return self.made(key, lambda p: write_av(p, tracks(), fmt="mp4", video=video), ".mp4")

    def two_hours_flac(self) -> bytes:
        """Two hours of 8 kHz silence as FLAC, written block by block (about 180 kB)."""
        def make(path: Path) -> None:
            block = np.zeros(8000 * 60, np.int16)
            with sf.SoundFile(str(path), "w", samplerate=8000, channels=1, subtype="PCM_16", format="FLAC") as out:
                for _ in range(120):
                    out.write(block)
        return self.made("two_hours", make, ".flac")

    def riff(self, data: bytes, rate: int = SR, **options: Any) -> bytes:
        return self.made(f"riff_{len(data)}_{rate}_{sorted(options.items())}", lambda p: write_riff(p, data, rate, **options),
                         ".wav")


def _noise(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("audio.wav", b"\0" * 50_000_000)
    return out.getvalue()


# ------------------------------------------------------------------ cases


def bad_uploads(scratch: Path) -> list[Upload]:
    """Every case (see the module docstring); the media are made lazily, on first send."""
    md = Media(scratch)
    cases: list[Upload] = []

    def add(name: str, description: str, expect: tuple[int, ...], send: Callable[[str], Reply], kind: str = BAD,
            check: Callable[[Any], bool] | None = None, max_seconds: float | None = None) -> None:
        cases.append(Upload(name, description, expect, send, kind, check, max_seconds))

    def f(name: str, description: str, expect: tuple[int, ...], filename: str, data: Callable[[], bytes],
          query: str = "", **kw: Any) -> None:
        add(name, description, expect, file_form(filename, data, query), **kw)

    _empty_truncated(f, md)
    _not_media(f, md)
    _fake_magic(f)
    _sizes_and_durations(add, f, md)
    _signal(f, md)
    _channels_tracks(f, md)
    _multipart(add, md)
    _content_types(add, md)
    _names_and_params(add, f, md)
    return cases


def _empty_truncated(f: Callable[..., None], md: Media) -> None:
    f("empty_wav", "0-byte .wav", (400,), "empty.wav", lambda: b"")
    f("empty_mp4", "0-byte .mp4", (400,), "empty.mp4", lambda: b"")
    f("wav_no_samples", "WAV header with 0 samples", (422,), "none.wav", lambda: md.riff(b""))
    f("wav_header_cut", "the first 30 bytes of a WAV", (422,), "cut.wav", lambda: md.speech_wav()[:30])
    f("flac_streaminfo_only", "FLAC cut after 120 bytes (no audio frame)", (422,), "cut.flac",
      lambda: md.wav(md.speech(), fmt="FLAC")[:120])
    f("mp4_index_lost", "MP4 (index at the end) cut to half", (422,), "cut.mp4",
      lambda: md.made("mp4_cut", lambda p: (speech_mp4(p, md.m), cut(p)), ".mp4"))
    f("mp3_cut", "MP3 cut to 300 bytes", (422,), "cut.mp3",
      lambda: md.made("mp3", lambda p: write_av(p, [md.speech()], fmt="mp3", codec="mp3"), ".mp3")[:300])
    f("ogg_cut", "Ogg Vorbis cut to 200 bytes", (422,), "cut.ogg",
      lambda: md.wav(md.speech(), subtype="VORBIS", fmt="OGG")[:200])


def _not_media(f: Callable[..., None], md: Media) -> None:
    noise = _noise(65536)
    noise = b"\x00" + noise[1:]  # never an accidental MPEG frame sync
    for ext in ("wav", "flac", "mp3", "mp4", "webm", "ogg", "m4a"):
        f(f"random_{ext}", f"64 kB of random bytes named .{ext}", (415,), f"random.{ext}", lambda: noise)
    text = ("This is not audio. " * 300).encode()
    f("text_wav", "a text file named .wav", (415,), "notes.wav", lambda: text)
    f("text_mp4", "a text file named .mp4", (415,), "notes.mp4", lambda: text)
    f("json_wav", "a JSON document named .wav", (415,), "data.wav",
      lambda: json.dumps({"samples": [0.1] * 500}).encode())
    f("png_wav", "a PNG image named .wav", (415,), "image.wav", tiny_png)
    f("jpeg_mp4", "JPEG bytes named .mp4", (415,), "photo.mp4", lambda: b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + noise[:4000])
    f("html_mp3", "an HTML page named .mp3", (415,), "page.mp3", lambda: b"<!doctype html><html><body>hi</body></html>")
    f("pdf_flac", "a PDF header named .flac", (415,), "doc.flac", lambda: b"%PDF-1.4\n" + noise[:2000])
    f("elf_mp4", "an ELF executable header named .mp4", (415,), "prog.mp4", lambda: b"\x7fELF\x02\x01\x01" + noise[:2000])
    f("script_ogg", "a shell script named .ogg", (415,), "run.ogg", lambda: b"#!/bin/sh\nrm -rf /\n")
    f("zip_bomb_wav", "a zip bomb (50 MB of zeros deflated to ~50 kB) named .wav", (415,), "bomb.wav", _zip_bomb)
    f("gzip_bomb_flac", "a gzip bomb (50 MB of zeros) named .flac", (415,), "bomb.flac",
      lambda: gzip.compress(b"\0" * 50_000_000, compresslevel=9))


def _fake_magic(f: Callable[..., None]) -> None:
    noise = _noise(8192, seed=1)
    heads = {"wav": b"RIFF\x00\x10\x00\x00WAVE", "flac": b"fLaC", "ogg": b"OggS", "mp4": b"\x00\x00\x00\x18ftypisom",
             "mkv": b"\x1a\x45\xdf\xa3", "mp3": b"ID3\x03\x00\x00\x00\x00\x00\x00", "flv": b"FLV\x01",
             "avi": b"RIFF\x00\x10\x00\x00AVI ", "aiff": b"FORM\x00\x00\x10\x00AIFF"}
    for ext, head in heads.items():
        f(f"magic_{ext}_garbage", f"the {ext} magic number followed by random bytes", (422,), f"fake.{ext}",
          lambda head=head: head + noise)


def _sizes_and_durations(add: Callable[..., None], f: Callable[..., None], md: Media) -> None:
    f("wav_declares_4gb", "WAV header declaring 4 GB of data, 2 kB present", (422,), "huge.wav",
      lambda: md.riff(pcm16(md.speech()[:1000]), declared=0xFFFFFF00), max_seconds=5)
    f("wav_declares_2h", "WAV header declaring 2 hours of 16 kHz audio, 2 kB present", (422,), "long.wav",
      lambda: md.riff(pcm16(md.speech()[:1000]), declared=7200 * SR * 2), max_seconds=5)
    f("wav_rate_1hz", "124 kB of speech under a header declaring 1 Hz (17 hours)", (422,), "slow.wav",
      lambda: md.riff(pcm16(md.speech())[:124_000], rate=1))
    f("flac_2_hours", "a real 2-hour FLAC (silence, 180 kB): refused from its header", (422,), "two_hours.flac",
      md.two_hours_flac, max_seconds=5)
    f("wav_0_05s", "0.05 s of speech", (422,), "blip.wav", lambda: md.wav(md.m.loudest(0.05)))
    f("mp4_0_05s", "an MP4 with 0.05 s of audio", (422,), "blip.mp4",
      lambda: md.mp4("mp4_short", lambda: [md.m.loudest(0.05)], video=False))
    big = 6 * 1024 * 1024
    add("content_length_4gb", "Content-Length declaring 4 GB (nothing sent after the headers)", (413,),
        raw(multipart_head(4 * 1024 ** 3), b""))
    add("content_length_over_limit", "Content-Length 6 MB, over the 5 MB limit", (413,),
        raw(multipart_head(big), b""))
    body = part("file", md.speech_wav()[:4000]) + closing()
    add("content_length_short", "Content-Length smaller than the body (the form is cut)", (400,),
        raw(multipart_head(len(body) - 40), body))
    add("content_length_long", "Content-Length larger than the body, then silence (408 after the upload limit)",
        (408,), raw(multipart_head(len(body) + 5000), body, read_timeout=UPLOAD_TIMEOUT + 15))

    def chunked() -> Any:
        yield b"%x\r\n%s\r\n" % (len(first := part("file", md.speech_wav())[:-2]), first)
        piece = b"\0" * 65536
        for _ in range(big // len(piece)):
            yield b"%x\r\n%s\r\n" % (len(piece), piece)
        yield b"0\r\n\r\n"
    add("chunked_over_limit", "a chunked upload (no Content-Length) of 6 MB, over the 5 MB limit", (413,),
        raw(multipart_head(None, extra="Transfer-Encoding: chunked\r\n"), chunked))
    add("gzip_encoded_body", "a gzip-compressed body (Content-Encoding: gzip; the server never inflates)", (400,),
        raw(multipart_head(len(gz := gzip.compress(body)), extra="Content-Encoding: gzip\r\n"), gz))


def _signal(f: Callable[..., None], md: Media) -> None:
    zeros = np.zeros(3 * SR, np.float32)
    f("silence_wav", "3 s of digital silence", (422,), "silence.wav", lambda: md.wav(zeros))
    f("silence_flac", "3 s of digital silence, FLAC", (422,), "silence.flac", lambda: md.wav(zeros, fmt="FLAC"))
    f("noise_wav", "3 s of quiet white noise", (422,), "noise.wav",
      lambda: md.wav((np.random.default_rng(2).standard_normal(3 * SR) * 0.01).astype(np.float32)))
    f("dc_wav", "3 s of a constant (DC) level", (422,), "dc.wav", lambda: md.wav(np.full(3 * SR, 0.3, np.float32)))
    f("silence_timeline", "a timeline (segments=2.0:1.0) of 3 s of silence: no window has speech", (422,),
      "silence.wav", lambda: md.wav(zeros), query="segments=2.0:1.0")
    f("nan_wav", "float WAV with NaN samples", (422,), "nan.wav",
      lambda: md.wav(np.where(np.arange(md.speech().size) % 100 == 0, np.nan, md.speech()).astype(np.float32),
                     subtype="FLOAT"))
    f("all_nan_wav", "float WAV of NaN only", (422,), "allnan.wav",
      lambda: md.wav(np.full(SR, np.nan, np.float32), subtype="FLOAT"))
    f("inf_wav", "float WAV with an infinite sample", (422,), "inf.wav",
      lambda: md.wav(np.concatenate([md.speech(), [np.inf]]).astype(np.float32), subtype="FLOAT"))


def _channels_tracks(f: Callable[..., None], md: Media) -> None:
    gains = [1, .8, .6, .5, .4, .3]
    f("ch6_silence", "6-channel silence", (422,), "ch6_silent.wav", lambda: md.wav(np.zeros((3 * SR, 6), np.float32)))
    f("ch6_speech", "6-channel speech (5.1-like gains)", (200,), "ch6.wav",
      lambda: md.wav(np.stack([md.speech() * g for g in gains], axis=1)), kind=VALID)
    f("video_no_audio", "an MP4 with a video track (no face) and no audio", (422,), "video_only.mp4",
      lambda: md.mp4("mp4_video_only", lambda: [], video=True))
    f("video_silent_audio", "an MP4 whose audio track is silent and whose video has no face", (422,), "silent.mp4",
      lambda: md.mp4("mp4_silent", lambda: [np.zeros(3 * SR, np.float32)], video=True))
    f("audio_only_mp4", "an MP4 with speech and no video track", (200,), "voice.mp4",
      lambda: md.mp4("mp4_audio_only", lambda: [md.speech()], video=False), kind=VALID)
    f("audio_only_mp4_silent", "an MP4 with a silent audio track and no video", (422,), "quiet.mp4",
      lambda: md.mp4("mp4_audio_silent", lambda: [np.zeros(3 * SR, np.float32)], video=False))
    f("wav_named_mp3", "a WAV named .mp3 (the bytes decide)", (200,), "speech.mp3", md.speech_wav, kind=VALID)
    for fmt in ("webm", "ogg"):  # what a browser's MediaRecorder sends: Opus at 48 kHz, WebM without a duration
        f(f"opus_{fmt}_recording", f"an Opus recording in {fmt} (as MediaRecorder makes)", (200,), f"microphone.{fmt}",
          lambda fmt=fmt: md.made(f"opus_{fmt}", lambda p: write_av(p, [md.m.at_rate(48000)], fmt=fmt, codec="libopus",
                                                                    rate=48000), f".{fmt}"), kind=VALID)


def _multipart(add: Callable[..., None], md: Media) -> None:
    speech = md.speech_wav
    kind = "multipart/form-data; boundary=B0UNDARY"
    add("wrong_boundary", "the body uses another boundary than the header", (400,),
        lambda base: plain(part("file", speech(), boundary="OTHER") + closing("OTHER"), kind)(base))
    add("no_closing_boundary", "the form has no closing boundary", (400,),
        lambda base: plain(part("file", speech()), kind)(base))
    add("no_disposition", "a part without Content-Disposition", (400,),
        plain(b"--B0UNDARY\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n" + closing(), kind))
    add("garbage_body", "random bytes under a multipart Content-Type", (400,), plain(_noise(4096, 3), kind))
    add("empty_body", "an empty body under a multipart Content-Type", (400,), plain(b"", kind))
    add("no_boundary_param", "multipart/form-data without a boundary", (400,),
        plain(part("file", b"RIFF") + closing(), "multipart/form-data"))
    add("unknown_field", "a field named 'video'", (400,), form({"video": ("v.mp4", b"x")}))
    add("file_twice", "the file field twice", (400,),
        lambda base: plain(part("file", speech()) + part("file", speech()) + closing(), kind)(base))
    add("many_parts", "six parts", (400,), plain(b"".join(part("text", b"x", None) for _ in range(6)) + closing(), kind))
    add("huge_part_header", "a part header of 6 kB", (400,),
        plain(b"--B0UNDARY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + b"a" * 6000
              + b".wav\"\r\n\r\nRIFF\r\n" + closing(), kind))
    add("empty_form", "a form with no part", (400,), plain(closing(), kind))
    add("text_not_utf8", "a text field that is not UTF-8", (400,), form({"text": (None, b"\xff\xfe\xfa bad")}))
    add("text_too_long", "a 20 kB text field", (413,), form({"text": (None, b"word " * 4000)}))
    add("text_only_audio_model", "a text alone, for a model that reads no text", (422,), form({"text": (None, b"I am so happy")}))


def _content_types(add: Callable[..., None], md: Media) -> None:
    add("json_body", "a JSON body", (415,), plain(b'{"file": "clip.wav"}', "application/json"))
    add("raw_wav_body", "the WAV as the raw body (audio/wav)", (415,), lambda base: plain(md.speech_wav(), "audio/wav")(base))
    add("urlencoded", "an urlencoded form", (415,), plain(b"file=clip.wav", "application/x-www-form-urlencoded"))
    add("text_plain", "text/plain", (415,), plain(b"hello", "text/plain"))
    add("no_content_type", "no Content-Type at all", (415,), plain(b"hello", None))
    add("get_predict", "GET on the upload endpoint", (405,), plain(b"", None, "GET"))
    add("put_predict", "PUT on the upload endpoint", (405,), plain(b"x", "text/plain", "PUT"))


def _names_and_params(add: Callable[..., None], f: Callable[..., None], md: Media) -> None:
    def no_path(body: Any) -> bool:
        name = body["input"]["filename"]
        return "/" not in name and "\\" not in name and "\x00" not in name and ".." not in name.split("/")

    f("traversal_garbage", "random bytes named ../../../etc/passwd.wav", (415,), "../../../etc/passwd.wav",
      lambda: _noise(1000, 4))
    f("nul_garbage", "random bytes named with a NUL byte", (415,), "a\x00b.wav", lambda: _noise(1000, 5))
    f("traversal_speech", "speech named ../../tmp/evil.wav", (200,), "../../tmp/evil.wav", md.speech_wav, kind=VALID,
      check=no_path)
    f("nul_speech", "speech named clip\\x00.wav", (200,), "clip\x00.wav", md.speech_wav, kind=VALID, check=no_path)
    f("unicode_speech", "speech named with non-ASCII characters", (200,), "émotion 😀.wav", md.speech_wav, kind=VALID)
    f("segments_bad", "segments=abc", (400,), "clip.wav", md.speech_wav, query="segments=abc")
    f("segments_zero", "segments=0:0", (400,), "clip.wav", md.speech_wav, query="segments=0:0")
    f("segments_huge", "segments=1000", (400,), "clip.wav", md.speech_wav, query="segments=1000")
    f("explain_bad", "explain=maybe", (400,), "clip.wav", md.speech_wav, query="explain=maybe")
    add("unknown_path", "GET /v1/nothing", (404,), plain(b"", None, "GET", "/v1/nothing"))
    add("static_traversal", "GET /static/../../etc/passwd", (404,), plain(b"", None, "GET", "/static/..%2f..%2fetc/passwd"))


# ------------------------------------------------------------------ runner


def clear_error(reply: Reply) -> bool:
    """A 4xx whose body is ``{"error": {"code", "message", "field"}}`` with a code and a message."""
    error = reply.body.get("error") if isinstance(reply.body, dict) else None
    return (400 <= reply.status < 500 and isinstance(error, dict) and bool(error.get("code"))
            and bool(error.get("message")) and "field" in error)


def run_corpus(base: str, cases: list[Upload]) -> Tally:
    """Send every case (in order) and count; an exchange that raised is a failure, named."""
    tally = Tally()
    for case in cases:
        try:
            reply = case.send(base)
        except Exception as exc:  # noqa: BLE001  (counted and named, never hidden)
            tally.failed_exchanges.append(f"{case.name}: {type(exc).__name__}: {exc}")
            continue
        tally.replies[case.name] = (reply.status, reply.body)
        if reply.status >= 500 or reply.status == 0:
            tally.server_errors += 1
        if case.kind == BAD:
            if clear_error(reply):
                tally.clear_4xx += 1
            elif 400 <= reply.status < 500:
                tally.other_4xx += 1
                tally.unclear.append(f"{case.name}: {reply.status} {str(reply.body)[:200]}")
        elif reply.status == 200 and (case.check is None or case.check(reply.body)):
            tally.valid_ok += 1
        if case.max_seconds is not None and reply.seconds > case.max_seconds:
            tally.unexpected.append(f"{case.name}: took {reply.seconds:.1f} s, more than {case.max_seconds:g} s")
        if reply.status not in case.expect or (reply.status == 200 and case.check and not case.check(reply.body)):
            tally.unexpected.append(f"{case.name}: expected {case.expect}, got {reply.status} "
                                    f"{json.dumps(reply.body)[:300] if not isinstance(reply.body, str) else reply.body[:300]}")
    return tally
