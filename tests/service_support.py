"""Servers for the service tests: the real ``emofuse serve`` process (shared by the test modules, started
once, stopped at exit) and an in-process uvicorn thread around an app with stand-in engines."""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from service_corpus import server_options  # noqa: E402

from emofuse.service.loadtest import Server, free_port  # noqa: E402

_LIVE: dict[str, Any] = {}


def live_server() -> Server:
    """The shared ``emofuse --threads 1 serve`` (shipped model, the corpus's limits), its upload folder in
    ``server.tmp_dir``; started on first use (model loading and warm-up included)."""
    if "server" not in _LIVE or not _LIVE["server"].alive():
        folder = tempfile.mkdtemp(prefix="emofuse-serve-tests-")
        log = str(Path(folder).with_suffix(".log"))
        server = Server(*server_options(), tmp_dir=folder, log=log)
        _LIVE["server"] = server

        def stop() -> None:
            server.stop()
            shutil.rmtree(folder, ignore_errors=True)
        atexit.register(stop)
    return _LIVE["server"]


def request_folders(server: Server, wait: float = 10.0) -> list[Path]:
    """The per-request folders left under the server's temporary folder, once no request is pending
    (waits up to ``wait`` seconds for running jobs to end)."""
    from emofuse.service.loadtest import request

    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and request(f"{server.url}/healthz").body["pending"]:
        time.sleep(0.1)
    return [p for root in Path(server.tmp_dir).iterdir() for p in root.iterdir()]


class ThreadServer:
    """uvicorn serving ``app`` in a thread of the test process, on a free loopback port."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            raise RuntimeError("the in-process server did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
