"""The ASGI application: ``create_app(settings)`` loads the model once (warm), and serves

- ``POST /v1/predict``: a multipart upload (``file``: audio or video, and/or ``text``) → label, every class's
  probability, modality weights, the modalities used and the transcript; ``?segments=W[:H]`` → a timeline;
- ``GET /v1/models``: labels, modalities, limits and the model card; ``GET /healthz``;
- ``/docs`` (OpenAPI, assets served locally) and the web page at ``/`` (`emofuse/service/web`).

Every refusal is a JSON error (`emofuse.service.errors`); the blocking work runs in the gate's threads
(`emofuse.service.gate`); each request's upload lives in its own temporary folder, removed when the
request and its job are both done.
"""

from __future__ import annotations

import asyncio
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from emofuse.service.engine import Engine, EngineOptions
from emofuse.service.errors import ServiceError, error_response
from emofuse.service.gate import Gate, Ticket
from emofuse.service.sniff import ACCEPTED, HEAD_BYTES, describe_head, sniff
from emofuse.service.uploads import Form, FormReader, boundary_of

log = logging.getLogger("emofuse.service")
WEB = Path(str(resources.files("emofuse") / "service" / "web"))
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                "style-src 'self'; script-src 'self'; connect-src 'self'", "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-cache"}


@dataclass
class ServiceSettings:
    """Limits of the service (``emofuse serve`` options)."""

    engine: EngineOptions = field(default_factory=EngineOptions)
    max_upload_bytes: int = 50_000_000
    max_duration: float = 600.0            # seconds of media for one prediction
    max_timeline_duration: float = 3600.0  # seconds of media for ?segments=
    timeout: float = 120.0                 # seconds for one prediction (queue wait included)
    upload_timeout: float = 60.0           # seconds for the body to arrive
    workers: int = 1                       # model replicas, each used by one thread
    queue: int = 8                         # requests waiting for a worker before 429
    tmp_dir: str | None = None             # where the per-request folders go (None: the system's)

    def limits(self) -> dict[str, Any]:
        return {"max_upload_bytes": self.max_upload_bytes, "max_duration_s": self.max_duration,
                "max_timeline_duration_s": self.max_timeline_duration, "timeout_s": self.timeout,
                "upload_timeout_s": self.upload_timeout, "workers": self.workers, "queue": self.queue}


class Uploads:
    """The service's temporary folder: one sub-folder per request, removed when its request ends."""

    def __init__(self, base: str | None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="emofuse-serve-", dir=base))

    def new(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="req-", dir=self.path))

    @staticmethod
    def remove(folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)

    def open_count(self) -> int:
        return sum(1 for _ in self.path.iterdir()) if self.path.is_dir() else 0

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def load_engines(settings: ServiceSettings) -> list[Engine]:
    """``settings.workers`` warm engines (the model loaded and one sample clip predicted by each)."""
    engines = [Engine(settings.engine) for _ in range(settings.workers)]
    for engine in engines:
        engine.warm_up()
    return engines


def create_app(settings: ServiceSettings | None = None, engines: Sequence[Any] | None = None) -> FastAPI:
    """The application (see the module docstring); ``engines``: already loaded ones (tests pass their own)."""
    settings = settings or ServiceSettings()
    gate: Gate[Any] = Gate(list(engines) if engines is not None else load_engines(settings), settings.queue)
    uploads = Uploads(settings.tmp_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        gate.shutdown()
        uploads.close()

    app = FastAPI(title="emofuse", description="Emotion recognition from speech, face and text: upload a "
                  "recording (and/or a transcript) and get the emotion, every class's probability and why.",
                  version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.gate, app.state.settings, app.state.uploads = gate, settings, uploads
    _errors(app)
    _pages(app)

    @app.get("/healthz", summary="Liveness and load")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "workers": gate.workers, "queue": gate.queue, "pending": gate.pending,
                "served": gate.served, "open_uploads": uploads.open_count()}

    @app.get("/v1/models", summary="The loaded model: labels, modalities, limits, model card")
    async def models() -> dict[str, Any]:
        engine = gate.engines[0]
        return {**engine.info(), "limits": settings.limits(), "formats": ACCEPTED,
                "timeline": _timeline_available()}

    @app.post("/v1/predict", summary="Predict the emotion of a recording and/or a text", openapi_extra=PREDICT_BODY,
              responses=ERROR_RESPONSES)
    async def predict(request: Request,
                      segments: str | None = Query(None, description="a timeline for long media: window length "
                                                   "and hop in seconds, 'W' or 'W:H' (e.g. 2.0:1.0)"),
                      explain: bool = Query(False, description="for video: include the face crops used "
                                            "(a PNG sheet as a data URL)")) -> JSONResponse:
        window = parse_segments(segments)
        _check_length(request.headers.get("content-length"), settings)
        boundary = boundary_of(request.headers.get("content-type"))
        ticket = gate.reserve()
        if ticket is None:
            wait = gate.retry_after()
            raise ServiceError(429, "busy", f"the server is busy ({gate.pending} requests running or queued, "
                               f"the most it takes); retry in {wait} s", None, {"Retry-After": str(wait)})
        return await _handle(request, boundary, window, explain, ticket, gate, uploads, settings)

    return app


async def _handle(request: Request, boundary: bytes, window: tuple[float, float] | None, explain: bool,
                  ticket: Ticket, gate: Gate[Any], uploads: Uploads, settings: ServiceSettings) -> JSONResponse:
    """Read the upload into its own folder, then predict in a worker; the folder is removed when both end."""
    folder, job = uploads.new(), None
    try:
        try:
            form = await asyncio.wait_for(_read_form(request, boundary, folder, settings.max_upload_bytes),
                                          settings.upload_timeout)
        except asyncio.TimeoutError:
            raise ServiceError(408, "upload_timeout", f"the request body did not arrive within "
                               f"{settings.upload_timeout:g} s", "body", {"Connection": "close"}) from None
        work = _job(form, window, explain, folder, settings)
        queued = time.perf_counter()
        job = gate.submit(ticket, lambda engine: work(engine, queued))
        try:
            body = await asyncio.wait_for(asyncio.wrap_future(job), settings.timeout)
        except asyncio.TimeoutError:
            raise ServiceError(504, "timeout", f"the prediction did not finish within {settings.timeout:g} s",
                               None) from None
        return JSONResponse(body)
    finally:
        if job is None:
            ticket.release()
            uploads.remove(folder)
        else:  # runs at once if the job is done; else when it ends (a timed-out job still owns the folder)
            job.add_done_callback(lambda _: uploads.remove(folder))


#: after a 413, at most this much more of the body is read and dropped, so that the client (still sending)
#: receives the answer instead of a reset connection; then the connection is closed
DRAIN_BYTES, DRAIN_SECONDS = 64_000_000, 3.0


async def _read_form(request: Request, boundary: bytes, folder: Path, max_bytes: int) -> Form:
    reader = FormReader(boundary, folder, max_bytes)
    stream = request.stream()
    try:
        async for chunk in stream:
            reader.feed(chunk)
        return reader.finish()
    except ClientDisconnect:
        raise ServiceError(400, "bad_request", "the client closed the connection before the body was complete",
                           "body") from None
    except ServiceError as exc:
        if exc.status == 413:
            reader.close()
            await _drain(stream)
            exc.headers.setdefault("Connection", "close")
        raise
    finally:
        reader.close()


async def _drain(stream: Any) -> None:
    """Read and drop what is left of a refused body, up to `DRAIN_BYTES` / `DRAIN_SECONDS`."""
    dropped, deadline = 0, time.monotonic() + DRAIN_SECONDS
    try:
        async for chunk in stream:
            dropped += len(chunk)
            if dropped > DRAIN_BYTES or time.monotonic() > deadline:
                break
    except ClientDisconnect:
        pass


def _job(form: Form, window: tuple[float, float] | None, explain: bool, folder: Path, settings: ServiceSettings):
    """The worker's part of a request (checked here, before it queues): sniff the file, check its
    duration from the header, predict (or make a timeline)."""
    if form.file is None and form.text is None:
        raise ServiceError(400, "missing_input", "nothing to predict: send a 'file' field (audio or video) and/or "
                           "a 'text' field", "file")
    media = path = None
    if form.file is not None:
        if form.size == 0:
            raise ServiceError(400, "empty_file", f"{form.filename}: the uploaded file is empty (0 bytes)", "file")
        with form.file.open("rb") as handle:
            head = handle.read(HEAD_BYTES)
        media = sniff(head)
        if media is None:
            raise ServiceError(415, "unsupported_media_type", f"{form.filename}: not a recognised audio or video "
                               f"file ({describe_head(head)}); accepted: {ACCEPTED}", "file")
        path = form.file.rename(folder / ("upload" + media.extension))
    elif window is not None:
        raise ServiceError(400, "missing_input", "a timeline (segments=...) needs a 'file' field", "file")

    def work(engine: Engine, queued: float) -> dict[str, Any]:
        start = time.perf_counter()
        duration = None
        if path is None:
            body = engine.predict_text(form.text or "")
        else:
            limit = settings.max_timeline_duration if window else settings.max_duration
            duration = engine.check_duration(path, media, form.filename, limit)
            body = (engine.timeline(path, form.filename, *window, limit) if window else
                    engine.predict(path, media, form.filename, form.text, explain, folder))
        body["input"] = None if path is None else {"filename": form.filename, "format": media.name,
                                                   "kind": media.kind, "bytes": form.size, "duration_s": duration}
        body["timings_ms"] = {"queued": round(1000 * (start - queued), 1),
                              "predict": round(1000 * (time.perf_counter() - start), 1)}
        return body
    return work


def parse_segments(text: str | None) -> tuple[float, float] | None:
    """``segments=W`` or ``W:H`` (seconds) → ``(window, hop)``; 400 ``bad_parameter`` when malformed."""
    if text is None:
        return None
    parts = text.split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(parts) > 2 or not values or not all(math.isfinite(v) for v in values):
        raise ServiceError(400, "bad_parameter", f"segments must be 'W' or 'W:H' in seconds (e.g. 2.0:1.0), got "
                           f"{text[:40]!r}", "segments")
    window, hop = values[0], values[-1] if len(values) == 2 else values[0]
    if not 0.5 <= window <= 60 or not 0.1 <= hop <= window:
        raise ServiceError(400, "bad_parameter", f"segments: the window must be 0.5-60 s and the hop 0.1 s to the "
                           f"window, got window {window:g} s, hop {hop:g} s", "segments")
    return window, hop


def _check_length(header: str | None, settings: ServiceSettings) -> None:
    """Refuse a declared Content-Length over the limit before reading a byte of the body."""
    if header is None:
        return
    if not header.isdigit():
        raise ServiceError(400, "bad_request", f"Content-Length is not a number: {header[:40]!r}", "content-length")
    if int(header) > settings.max_upload_bytes + 64 * 1024:
        raise ServiceError(413, "too_large", f"the request declares {int(header)} bytes, more than the upload limit "
                           f"of {settings.max_upload_bytes} bytes ({settings.max_upload_bytes / 1e6:g} MB)",
                           "content-length", {"Connection": "close"})


def _errors(app: FastAPI) -> None:
    """Exception handlers: every error is JSON ``{"error": {"code", "message", "field"}}``."""
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = (exc.errors() or [{}])[0]
        where = [str(p) for p in first.get("loc", ())]
        name = where[-1] if where else None
        return error_response(400, "bad_parameter", f"{name}: {first.get('msg', 'invalid value')}", name)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return error_response(exc.status_code, code, message, None, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return error_response(500, "internal", f"internal error ({type(exc).__name__}); it was logged on the "
                              "server", None)


def _pages(app: FastAPI) -> None:
    """The web page at ``/`` and its assets; ``/docs`` with Swagger UI's assets served locally."""
    app.mount("/static", StaticFiles(directory=WEB), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(WEB / "index.html", headers=PAGE_HEADERS)

    from fastapi.openapi.docs import get_swagger_ui_html

    assets = _swagger_assets()
    if assets is not None:
        app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")
    urls = ({"swagger_js_url": "/docs-assets/swagger-ui-bundle.js", "swagger_css_url": "/docs-assets/swagger-ui.css",
             "swagger_favicon_url": "/docs-assets/favicon-32x32.png"} if assets is not None else {})

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="emofuse API", **urls)


def _swagger_assets() -> Path | None:
    """Swagger UI's files from the installed ``swagger-ui-py`` package (None: not installed)."""
    try:
        import swagger_ui
    except ImportError:
        return None
    folder = Path(swagger_ui.__file__).parent / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def _timeline_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("emofuse.inference.timeline") is not None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("emofuse")
    except PackageNotFoundError:
        return "0"


PREDICT_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object",
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "audio or video (WAV, FLAC, Ogg, MP3, AAC, "
                 "MP4/MOV, MKV/WebM, FLV, AVI); its type is read from its bytes, not its name"},
        "text": {"type": "string", "description": "a transcript, for models that read text (UTF-8, at most 10 kB)"},
    }}}}}}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": what, "content": {"application/json": {"example": {"error": {
        "code": code, "message": "what was wrong", "field": "file"}}}}}
    for status, code, what in (
        (400, "malformed_multipart", "a malformed request"), (408, "upload_timeout", "the upload was too slow"),
        (413, "too_large", "the upload exceeds the size limit"), (415, "unsupported_media_type", "not audio/video"),
        (422, "invalid_media", "the media cannot be used (decoding, duration, no speech)"),
        (429, "busy", "the queue is full (see Retry-After)"), (504, "timeout", "the prediction took too long"))}
