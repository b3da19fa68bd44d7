"""emofuse serve, API behaviour with stand-in engines (no model): limits, queue, timeouts, errors, temporary
folders, content sniffing, the page and the docs. Real HTTP on loopback (uvicorn in a thread)."""

from __future__ import annotations

import io
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
from service_support import ThreadServer  # noqa: E402

from emofuse.errors import ConfigError  # noqa: E402
from emofuse.service.app import WEB, ServiceSettings, create_app, parse_segments  # noqa: E402
from emofuse.service.errors import ServiceError  # noqa: E402
from emofuse.service.loadtest import multipart, predict, request  # noqa: E402
from emofuse.service.sniff import sniff  # noqa: E402
from emofuse.service.uploads import display_name  # noqa: E402


def wav_bytes(seconds: float = 0.5) -> bytes:
    out = io.BytesIO()
    sf.write(out, np.zeros(int(16000 * seconds), np.float32), 16000, subtype="PCM_16", format="WAV")
    return out.getvalue()


class FakeEngine:
    """Stands in for `emofuse.service.engine.Engine`: records what it was given; can block or fail."""

    labels = ["calm", "happy"]

    def __init__(self, release: threading.Event | None = None, fail: bool = False) -> None:
        self.release, self.fail = release, fail
        self.paths: list[Path] = []
        self.running = threading.Event()

    def info(self) -> dict[str, Any]:
        return {"model": {"labels": self.labels, "modalities": ["audio"], "reads_text": False, "reads_faces": False},
                "audio_visual": None, "model_card": "# card"}

    def check_duration(self, path: Path, media: Any, name: str, limit: float) -> float:
        return 0.5

    def predict(self, path: Path, media: Any, name: str, text: str | None, explain: bool, workdir: Path) -> dict:
        self.paths.append(path)
        self.running.set()
        assert path.is_file() and path.parent == workdir
        if self.release is not None:
            self.release.wait(20)
        if self.fail:
            raise RuntimeError("boom")
        return {"label": "happy", "probabilities": {"calm": 0.25, "happy": 0.75}, "filename": name}

    def predict_text(self, text: str) -> dict:
        raise ServiceError(422, "text_not_read", "no text", "text")

    def timeline(self, path: Path, name: str, window: float, hop: float, max_duration: float) -> dict:
        return {"filename": name, "timeline": {"window": window, "hop": hop, "segments": []}}


@pytest.fixture
def serve(tmp_path: Path):
    """``serve(engine, **settings)`` → a running in-process server; all stopped at the end."""
    started: list[ThreadServer] = []

    def start(engine: Any = None, **options: Any) -> ThreadServer:
        settings = ServiceSettings(tmp_dir=str(tmp_path), **options)
        server = ThreadServer(create_app(settings, [engine or FakeEngine()]))
        server.engine, server.tmp = engine, tmp_path
        started.append(server)
        return server
    yield start
    for server in started:
        server.stop()


def folders(tmp: Path) -> list[Path]:
    return [p for root in tmp.iterdir() for p in root.iterdir()]


def test_upload_is_saved_under_its_own_name_in_a_request_folder_removed_afterwards(serve):
    engine = FakeEngine()
    server = serve(engine)
    reply = predict(server.url, wav_bytes(), "../../etc/evil\x00name.wav")
    assert reply.status == 200, reply.body
    assert reply.body["label"] == "happy" and reply.body["filename"] == "evil_name.wav"
    assert reply.body["input"] == {"filename": "evil_name.wav", "format": "wav", "kind": "audio",
                                   "bytes": len(wav_bytes()), "duration_s": 0.5}
    assert engine.paths[0].name == "upload.wav"  # the type read from the bytes, never the client's name
    assert folders(server.tmp) == []  # the request folder is gone once the answer is sent


def test_the_type_comes_from_the_bytes_not_the_name(serve):
    engine = FakeEngine()
    server = serve(engine)
    assert predict(server.url, wav_bytes(), "clip.mp4").body["input"]["format"] == "wav"
    reply = predict(server.url, b"This is not audio at all." * 20, "clip.wav")
    assert reply.status == 415 and reply.body["error"]["code"] == "unsupported_media_type"
    assert reply.body["error"]["field"] == "file" and "clip.wav" in reply.body["error"]["message"]
    assert len(engine.paths) == 1  # the text never reached the model


def test_queue_full_answers_429_with_retry_after_and_serves_again(serve):
    release = threading.Event()
    engine = FakeEngine(release)
    server = serve(engine, workers=1, queue=1)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(predict, server.url, wav_bytes(), "a.wav")
        assert engine.running.wait(10)
        second = pool.submit(predict, server.url, wav_bytes(), "b.wav")
        deadline = time.monotonic() + 10
        while request(f"{server.url}/healthz").body["pending"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        refused = predict(server.url, wav_bytes(), "c.wav")
        release.set()
        assert first.result().status == 200 and second.result().status == 200
    assert refused.status == 429 and refused.body["error"]["code"] == "busy"
    assert int(refused.headers["retry-after"]) >= 1
    assert predict(server.url, wav_bytes(), "d.wav").status == 200
    assert request(f"{server.url}/healthz").body["pending"] == 0


def test_timeout_answers_504_and_the_job_keeps_its_place_and_folder_until_it_ends(serve):
    release = threading.Event()
    server = serve(FakeEngine(release), workers=1, queue=0, timeout=0.5)
    reply = predict(server.url, wav_bytes(), "slow.wav")
    assert reply.status == 504 and reply.body["error"]["code"] == "timeout"
    assert len(folders(server.tmp)) == 1  # the running job still reads its upload
    assert predict(server.url, wav_bytes(), "next.wav").status == 429  # its worker is still busy
    release.set()
    deadline = time.monotonic() + 10
    while folders(server.tmp) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert folders(server.tmp) == []


def test_upload_over_the_limit_is_cut_off_with_413_and_the_server_keeps_serving(serve):
    server = serve(max_upload_bytes=4000)
    big = wav_bytes(3.0)  # 96 kB: over the limit plus the 64 kB allowed for the form framing
    body, kind = multipart({"file": ("big.wav", big)})
    reply = request(f"{server.url}/v1/predict", "POST", body, {"Content-Type": kind})
    assert reply.status == 413 and reply.body["error"]["code"] == "too_large"
    assert reply.body["error"]["field"] == "content-length"  # refused from the declared length, unread

    def chunks():
        yield body
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/v1/predict", body=chunks(), headers={"Content-Type": kind})  # chunked: no length
    answer = conn.getresponse()
    assert answer.status == 413 and b'"file"' in answer.read()
    conn.close()
    assert predict(server.url, wav_bytes(0.05), "small.wav").status == 200
    assert folders(server.tmp) == []


def test_unexpected_engine_error_is_a_json_500_and_the_next_request_is_served(serve):
    engine = FakeEngine(fail=True)
    server = serve(engine)
    reply = predict(server.url, wav_bytes(), "x.wav")
    assert reply.status == 500 and reply.body["error"]["code"] == "internal"
    assert "Traceback" not in str(reply.body)
    engine.fail = False
    assert predict(server.url, wav_bytes(), "x.wav").status == 200
    assert folders(server.tmp) == []


def test_errors_are_json_naming_the_problem(serve):
    server = serve()
    for path, method, status, code in (("/nothing", "GET", 404, "not_found"), ("/v1/predict", "GET", 405,
                                       "method_not_allowed")):
        reply = request(server.url + path, method)
        assert reply.status == status and reply.body["error"]["code"] == code
    reply = request(f"{server.url}/v1/predict", "POST", b"{}", {"Content-Type": "application/json"})
    assert reply.status == 415 and reply.body["error"]["field"] == "content-type"
    body, kind = multipart({})
    reply = request(f"{server.url}/v1/predict", "POST", body, {"Content-Type": kind})
    assert reply.status == 400 and reply.body["error"]["code"] == "missing_input"
    reply = predict(server.url, wav_bytes(), "a.wav", query="segments=2:5")
    assert reply.status == 400 and reply.body["error"]["field"] == "segments"
    assert predict(server.url, wav_bytes(), "a.wav", query="segments=2:1").body["timeline"]["hop"] == 1.0


def test_models_health_docs_and_page(serve):
    server = serve()
    models = request(f"{server.url}/v1/models").body
    assert models["model"]["labels"] == ["calm", "happy"] and models["model_card"] == "# card"
    assert models["limits"]["max_upload_bytes"] == 50_000_000 and "timeline" in models
    assert request(f"{server.url}/healthz").body["status"] == "ok"
    schema = request(f"{server.url}/openapi.json").body
    form = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["file"]["format"] == "binary"
    docs = request(f"{server.url}/docs").body
    assert "/docs-assets/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert request(f"{server.url}/docs-assets/swagger-ui-bundle.js").status == 200
    page = request(f"{server.url}/")
    assert page.status == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.body):
        assert request(server.url + asset).status == 200, asset


def test_page_assets_are_shipped_and_load_nothing_from_elsewhere():
    names = {p.name for p in WEB.iterdir()}
    assert {"index.html", "app.js", "style.css"} <= names
    for path in WEB.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(?:src|href|url\()\s*=?\s*[\"']?(?:https?:)?//", text), path.name
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert '"service/web/*"' in pyproject  # shipped as package data


@pytest.mark.parametrize("head,name,kind", [
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "wav", "audio"), (b"RIFF\x24\x00\x00\x00AVI LIST", "avi", "video"),
    (b"fLaC\x00\x00\x00\x22", "flac", "audio"), (b"OggS\x00\x02", "ogg", "audio"),
    (b"FORM\x00\x00\x00\x10AIFFCOMM", "aiff", "audio"), (b"ID3\x04\x00\x00", "mp3", "audio"),
    (b"\xff\xfb\x90\x64\x00", "mp3", "audio"), (b"\xff\xf1\x50\x80\x00", "aac", "audio"),
    (b"\x00\x00\x00\x20ftypisom\x00\x00", "mp4", "video"), (b"\x00\x00\x00\x20ftypM4A \x00\x00", "m4a", "audio"),
    (b"\x00\x00\x00\x14ftypqt  \x00\x00", "mov", "video"), (b"\x1a\x45\xdf\xa3\x9f\x42\x82\x84webm", "webm", "video"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x82\x88matroska", "matroska", "video"), (b"FLV\x01\x05", "flv", "video"),
])
def test_sniff_reads_magic_numbers(head, name, kind):
    media = sniff(head)
    assert media is not None and (media.name, media.kind) == (name, kind)


@pytest.mark.parametrize("head", [b"", b"RIFF\x00\x00\x00\x00JUNK", b"\xff\xd8\xff\xe0JFIF", b"PK\x03\x04",
                                  b"\xff\xff\xff\xff", b"\x1f\x8b\x08", b"%PDF-1.4", b"<html>"])
def test_sniff_refuses_other_bytes(head):
    assert sniff(head) is None


def test_sniff_real_files(tmp_path):
    from emofuse.diagnostics.corpus_media import write_av

    wave = np.zeros(8000, np.float32)
    for fmt, subtype, want in (("WAV", "PCM_16", "wav"), ("FLAC", "PCM_16", "flac"), ("OGG", "VORBIS", "ogg"),
                               ("AIFF", "PCM_16", "aiff")):
        out = io.BytesIO()
        sf.write(out, wave, 16000, subtype=subtype, format=fmt)
        assert sniff(out.getvalue()[:64]).name == want
    for fmt, want in (("mp4", "mp4"), ("matroska", "matroska")):
        path = tmp_path / f"x.{fmt}"
        write_av(path, [wave], fmt=fmt, video=True)
        assert sniff(path.read_bytes()[:64]).name == want


def test_parse_segments_and_display_name():
    assert parse_segments(None) is None and parse_segments("2") == (2.0, 2.0) and parse_segments("2.0:1.0") == (2.0, 1.0)
    for bad in ("", "a", "2:3", "0.1", "2:1:1", "nan", "inf:1"):
        with pytest.raises(ServiceError) as info:
            parse_segments(bad)
        assert info.value.status == 400 and info.value.field == "segments"
    assert display_name("../../a/b.wav") == "b.wav" and display_name("C:\\x\\y.wav") == "y.wav"
    assert display_name("a\x00b\n.wav") == "a_b_.wav" and display_name("..") == "upload" and display_name(None) == "upload"


def test_serve_options_are_checked():
    from emofuse.cli import COMMANDS, build_parser
    from emofuse.cli.serve import settings_from

    assert "serve" in COMMANDS
    args = build_parser().parse_args(["serve", "--port", "0", "--queue", "3", "--max-upload-mb", "2"])
    settings = settings_from(args)
    assert settings.queue == 3 and settings.max_upload_bytes == 2_000_000 and settings.engine.use_face
    assert settings.engine.face is None
    args = build_parser().parse_args(["serve", "--detector", "haar", "--no-face"])
    assert settings_from(args).engine.face == {"detector": "haar"} and not settings_from(args).engine.use_face
    for bad in (["--timeout", "0"], ["--workers", "0"], ["--max-duration", "-1"], ["--port", "70000"],
                ["--tmp-dir", "/nonexistent/folder"]):
        with pytest.raises(ConfigError):
            settings_from(build_parser().parse_args(["serve", *bad]))
