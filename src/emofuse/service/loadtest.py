"""Load and latency of ``emofuse serve`` on loopback, measured with a real server process.

``python -m emofuse.service.loadtest [--requests 200] [--clients 8] [--latency 20] [--video FILE] [--out r.json]``
starts ``emofuse --threads 1 serve`` on a free loopback port (or uses ``--url``), then measures:

- warm latency: the median (and p95) of ``--latency`` sequential requests of one shipped 3.7 s sample clip
  (and of ``--video`` through the audio-visual path, when given);
- load: ``--requests`` requests from ``--clients`` concurrent clients (p50/p95 latency, throughput,
  every request answered 200, none lost);
- the 429 path: a second server with one worker and a queue of 1 gets a burst from ``--clients``
  clients: some answers must be 429 with ``Retry-After``, the others 200, none lost;
- the server's peak resident memory (VmHWM).

Only loopback addresses are used; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Reply:
    """One HTTP answer: status, headers (lower-case names), body (parsed JSON, else text), seconds taken."""

    status: int
    headers: dict[str, str]
    body: Any
    seconds: float


def multipart(fields: dict[str, tuple[str | None, bytes]], boundary: str | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body from ``{name: (filename or None, bytes)}``; returns (body, content type)."""
    boundary = boundary or uuid.uuid4().hex
    out = bytearray()
    for name, (filename, data) in fields.items():
        out += f"--{boundary}\r\n".encode()
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"Content-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def request(url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None,
            timeout: float = 120.0) -> Reply:
    """One HTTP request on a fresh connection (loopback only)."""
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"only loopback addresses are measured, got {parts.hostname}")
    start = time.perf_counter()
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body, headers=headers or {})
        response = conn.getresponse()
        raw = response.read()
        answer = {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()
    try:
        parsed: Any = json.loads(raw)
    except ValueError:
        parsed = raw.decode("utf-8", "replace")
    return Reply(response.status, answer, parsed, time.perf_counter() - start)


def predict(base: str, data: bytes, filename: str, query: str = "", timeout: float = 120.0) -> Reply:
    """``POST /v1/predict`` with one file."""
    body, kind = multipart({"file": (filename, data)})
    return request(f"{base}/v1/predict" + (f"?{query}" if query else ""), "POST", body, {"Content-Type": kind},
                   timeout)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``emofuse --threads 1 serve`` in a child process on a free loopback port."""

    def __init__(self, *options: str, tmp_dir: str | None = None, log: str | None = None,
                 start_timeout: float = 240.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp_dir = tmp_dir or tempfile.mkdtemp(prefix="emofuse-serve-test-")
        command = [sys.executable, "-m", "emofuse.cli", "--threads", "1", "serve", "--host", "127.0.0.1",
                   "--port", str(self.port), "--tmp-dir", self.tmp_dir, *options]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self._log = open(log or os.devnull, "ab")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode} before answering")
            try:
                if request(f"{self.url}/healthz", timeout=2).status == 200:
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the server did not answer /healthz within {start_timeout:g} s")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def peak_rss_mb(self) -> float | None:
        """The server process's peak resident memory (VmHWM), in MB."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def warm_latency(base: str, data: bytes, filename: str, n: int) -> dict[str, Any]:
    """``n`` sequential requests after two warm-up ones: median, p95, server-side predict time, statuses."""
    for _ in range(2):
        predict(base, data, filename)
    replies = [predict(base, data, filename) for _ in range(n)]
    ok = [r for r in replies if r.status == 200]
    inner = [r.body["timings_ms"]["predict"] for r in ok]
    return {"requests": n, "ok": len(ok), "median_ms": round(1000 * statistics.median(r.seconds for r in replies), 1),
            "p95_ms": round(1000 * percentile([r.seconds for r in replies], 0.95), 1),
            "server_predict_median_ms": round(statistics.median(inner), 1) if inner else None,
            "label": ok[0].body.get("label") if ok else None,
            "modalities_used": ok[0].body.get("modalities_used") if ok else None}


def load(base: str, data: bytes, filename: str, requests: int, clients: int) -> dict[str, Any]:
    """``requests`` requests from ``clients`` concurrent clients: latency percentiles, throughput, statuses."""
    def one(_: int) -> Reply:
        try:
            return predict(base, data, filename)
        except OSError as exc:
            return Reply(0, {}, str(exc), 0.0)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        replies = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - start
    statuses: dict[str, int] = {}
    for r in replies:
        statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
    seconds = [r.seconds for r in replies if r.status == 200]
    return {"requests": requests, "clients": clients, "answered": sum(r.status != 0 for r in replies),
            "statuses": statuses, "lost": sum(r.status == 0 for r in replies),
            "p50_ms": round(1000 * percentile(seconds, 0.5), 1) if seconds else None,
            "p95_ms": round(1000 * percentile(seconds, 0.95), 1) if seconds else None,
            "throughput_rps": round(requests / wall, 2), "wall_s": round(wall, 2),
            "retry_after": sorted({r.headers.get("retry-after") for r in replies if r.status == 429} - {None})}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emofuse.service.loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an already running server (default: start one)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--latency", type=int, default=20, help="sequential requests for the warm latency")
    parser.add_argument("--clip", help="audio file (default: the shipped sample 03-01-03-02-02-01-02.flac, 3.7 s)")
    parser.add_argument("--video", help="a video file for the audio + face latency")
    parser.add_argument("--no-429", action="store_true", help="skip the queue-of-1 server")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    from emofuse.inference.predictor import sample_clips

    clip = Path(args.clip) if args.clip else sample_clips()[0]
    data = clip.read_bytes()
    result: dict[str, Any] = {"clip": clip.name, "date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()}
    server = None if args.url else Server()
    base = args.url or server.url
    try:
        result["warm_audio"] = warm_latency(base, data, clip.name, args.latency)
        if args.video:
            video = Path(args.video)
            result["warm_audio_face"] = warm_latency(base, video.read_bytes(), video.name, args.latency)
        result["load"] = load(base, data, clip.name, args.requests, args.clients)
        result["server_peak_rss_mb"] = None if server is None else server.peak_rss_mb()
    finally:
        if server is not None:
            server.stop()
    if not args.no_429:
        small = Server("--workers", "1", "--queue", "1")
        try:
            result["queue_of_1"] = load(small.url, data, clip.name, max(24, args.clients * 3), args.clients)
        finally:
            small.stop()
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        from emofuse.atomic import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
