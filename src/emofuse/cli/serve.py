"""``emofuse serve [--model CKPT] [--host 127.0.0.1] [--port 8000]``: the REST service and web page
(`emofuse.service`), with the model loaded once and kept warm."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="serve the model over HTTP: REST API, OpenAPI docs and a web page",
                              epilog="Endpoints: POST /v1/predict (multipart 'file' and/or 'text'; ?segments=W:H for a "
                                     "timeline), GET /v1/models, GET /healthz, /docs, and the page at /. Every refusal "
                                     "is JSON {\"error\": {\"code\", \"message\", \"field\"}} (docs/service.md). On a "
                                     "busy CPU, 'emofuse --threads 1 serve' is faster.")
    p.add_argument("--model", action="append", metavar="CHECKPOINT", help="checkpoint folder (default: the shipped "
                   "demo model); repeat it for a seed ensemble")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port, printed)")
    p.add_argument("--no-face", action="store_true", help="predict video uploads from their audio alone")
    p.add_argument("--av-model", metavar="DIR", help="audio-visual model folder for video uploads (default: the "
                   "shipped one)")
    p.add_argument("--detector", help="face detector for video uploads (haar, mtcnn; default: the audio-visual "
                   "model's)")
    p.add_argument("--sampler", help="which frames of a video to read, e.g. 2fps, 2fps_8 (default: the audio-visual "
                   "model's)")
    limits = p.add_argument_group("limits")
    limits.add_argument("--max-upload-mb", type=float, default=50.0, help="largest upload in MB (default 50): larger "
                        "ones are cut off and refused (413)")
    limits.add_argument("--max-duration", type=float, default=600.0, metavar="SECONDS", help="longest media for one "
                        "prediction (default 600 s; refused from the header when it says so)")
    limits.add_argument("--max-timeline-duration", type=float, default=3600.0, metavar="SECONDS",
                        help="longest media for a timeline (?segments=; default 3600 s)")
    limits.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS", help="time limit of one "
                        "prediction, queue wait included (default 120 s; 504 after)")
    limits.add_argument("--upload-timeout", type=float, default=60.0, metavar="SECONDS", help="time limit for a "
                        "request body to arrive (default 60 s; 408 after)")
    limits.add_argument("--workers", type=int, default=1, help="model replicas predicting at once (default 1)")
    limits.add_argument("--queue", type=int, default=8, help="requests waiting for a worker before the server answers "
                        "429 with Retry-After (default 8)")
    limits.add_argument("--tmp-dir", metavar="DIR", help="folder for the per-request upload folders (default: the "
                        "system's temporary folder); each is removed when its request ends")
    p.add_argument("--min-speech", type=float, metavar="SECONDS", help="seconds of detected speech a file needs for a "
                   "label (default 0.5)")
    p.add_argument("--threshold", type=float, metavar="P", help="confidence threshold below which the answer is "
                   "'uncertain' (default: the model's own)")
    p.set_defaults(func=run)


def settings_from(args: argparse.Namespace):
    """`emofuse.service.app.ServiceSettings` from the options, each checked (`ConfigError` naming it)."""
    from emofuse.errors import ConfigError
    from emofuse.service.app import ServiceSettings
    from emofuse.service.engine import EngineOptions

    positive = {"--max-upload-mb": args.max_upload_mb, "--max-duration": args.max_duration,
                "--max-timeline-duration": args.max_timeline_duration, "--timeout": args.timeout,
                "--upload-timeout": args.upload_timeout}
    for name, value in positive.items():
        if not value > 0:
            raise ConfigError(f"{name} must be a positive number, got {value}")
    if args.workers < 1 or args.queue < 0:
        raise ConfigError(f"--workers must be >= 1 and --queue >= 0, got {args.workers} and {args.queue}")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0-65535, got {args.port}")
    if args.tmp_dir is not None and not Path(args.tmp_dir).is_dir():
        raise ConfigError(f"--tmp-dir {args.tmp_dir}: not an existing folder")
    face = {k: v for k, v in (("detector", args.detector), ("sampler", args.sampler)) if v}
    engine = EngineOptions(model=args.model, use_face=not args.no_face, av_model=args.av_model, face=face or None,
                           max_duration=args.max_duration,
                           min_speech=args.min_speech, threshold=args.threshold)
    return ServiceSettings(engine=engine, max_upload_bytes=int(args.max_upload_mb * 1e6),
                           max_duration=args.max_duration, max_timeline_duration=args.max_timeline_duration,
                           timeout=args.timeout, upload_timeout=args.upload_timeout, workers=args.workers,
                           queue=args.queue, tmp_dir=args.tmp_dir)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from emofuse.service.app import create_app

    settings = settings_from(args)
    app = create_app(settings)  # loads and warms the model before the port opens
    extra = 32  # connections beyond the queue (health checks, refusals) before uvicorn's own 503
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", timeout_keep_alive=5,
                limit_concurrency=settings.workers + settings.queue + extra)
    return 0
