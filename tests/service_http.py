"""HTTP senders for the service tests: a multipart form, a plain body, or raw bytes on a socket (for what an
HTTP library will not send: a lying Content-Length, broken framing, a chunked body that overruns the limit).
Each returns a function ``send(base_url) -> Reply``."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from emofuse.service.loadtest import Reply, multipart, request


def form(fields: dict[str, tuple[str | None, bytes]], query: str = "") -> Callable[[str], Reply]:
    def send(base: str) -> Reply:
        body, kind = multipart(fields)
        return request(f"{base}/v1/predict" + (f"?{query}" if query else ""), "POST", body, {"Content-Type": kind})
    return send


def file_form(filename: str, data: Callable[[], bytes], query: str = "") -> Callable[[str], Reply]:
    return lambda base: form({"file": (filename, data())}, query)(base)


def plain(body: bytes, content_type: str | None, method: str = "POST", path: str = "/v1/predict"
          ) -> Callable[[str], Reply]:
    headers = {} if content_type is None else {"Content-Type": content_type}
    return lambda base: request(f"{base}{path}", method, body if method in ("POST", "PUT") else None, headers)


def raw(head: bytes, body: bytes | Callable[[], Any], read_timeout: float = 20.0) -> Callable[[str], Reply]:
    """Send ``head`` (request line + headers; ``{host}`` filled in) and ``body`` (bytes, or an iterator of
    chunks) on a socket, then read the answer until the server closes or ``read_timeout``."""
    def send(base: str) -> Reply:
        parts = urlsplit(base)
        start = time.perf_counter()
        with socket.create_connection((parts.hostname, parts.port), timeout=read_timeout) as sock:
            sock.sendall(head.replace(b"{host}", f"{parts.hostname}:{parts.port}".encode()))
            try:
                for chunk in ([body] if isinstance(body, bytes) else body()):
                    sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered and closed before the whole body went
            data = _read_answer(sock)
        return _parse_answer(data, time.perf_counter() - start)
    return send


def _read_answer(sock: socket.socket) -> bytes:
    data = b""
    try:
        while True:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
            if b"\r\n\r\n" in data:
                head, _, rest = data.partition(b"\r\n\r\n")
                length = [int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
                if length and len(rest) >= length[0]:
                    break
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def _parse_answer(data: bytes, seconds: float) -> Reply:
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return Reply(0, {}, data[:200].decode("latin-1"), seconds)
    headers = {k.strip().lower().decode(): v.strip().decode("latin-1") for k, _, v in (x.partition(b":") for x in lines[1:])}
    if headers.get("content-length", "").isdigit():  # what follows is not this answer's (e.g. the server's reply
        rest = rest[:int(headers["content-length"])]  # to the bytes sent past a too-small Content-Length)
    try:
        body: Any = json.loads(rest)
    except ValueError:
        body = rest.decode("latin-1")
    return Reply(status, headers, body, seconds)


def multipart_head(length: int | None, boundary: str = "B0UNDARY", extra: str = "") -> bytes:
    size = "" if length is None else f"Content-Length: {length}\r\n"
    return (f"POST /v1/predict HTTP/1.1\r\nHost: {{host}}\r\nContent-Type: multipart/form-data; boundary={boundary}"
            f"\r\n{size}{extra}\r\n").encode()


def part(name: str, data: bytes, filename: str | None = "clip.wav", boundary: str = "B0UNDARY") -> bytes:
    fn = f'; filename="{filename}"' if filename is not None else ""
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{fn}\r\n\r\n").encode() + data + b"\r\n"


def closing(boundary: str = "B0UNDARY") -> bytes:
    return f"--{boundary}--\r\n".encode()
