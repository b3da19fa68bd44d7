"""Reading a ``multipart/form-data`` request body as it streams in, into the request's own temporary
folder, with limits: the upload stops at the size limit (413) and at the upload time limit (408).

Only two fields exist: ``file`` (the recording, saved as ``upload`` + the extension its bytes show,
never under the client's name) and ``text`` (a transcript, UTF-8, at most `MAX_TEXT_BYTES`). Anything
else, a field given twice or a body that is not well-formed multipart is refused (400) naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from emofuse.service.errors import ServiceError

FIELDS = ("file", "text")
MAX_TEXT_BYTES = 10_000
#: the most parts a body may have (two fields, with room for an empty preamble part)
MAX_PARTS = 4
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]+")


@dataclass
class Form:
    """The fields read from a request: the saved file (``file``: its path in the request folder),
    the client's name for it (cleaned, for messages only), its size, and the text."""

    file: Path | None = None
    filename: str = "upload"
    size: int = 0
    text: str | None = None
    seen: list[str] = field(default_factory=list)


def display_name(raw: str | bytes | None) -> str:
    """A client's file name made safe to show: its last path component, without control characters
    or NUL, at most 100 characters ("upload" when nothing is left). Never used as a path."""
    if raw is None:
        return "upload"
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = _UNSAFE.sub("_", text).strip(" .")
    return text[:100] or "upload"


def boundary_of(content_type: str | None) -> bytes:
    """The multipart boundary of a ``Content-Type`` header; 415 for another type, 400 without a boundary."""
    if not content_type:
        raise ServiceError(415, "wrong_content_type", "the request has no Content-Type: send multipart/form-data "
                           "with a 'file' field (audio or video) and/or a 'text' field", "content-type")
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise ServiceError(415, "wrong_content_type", f"Content-Type {kind.decode('latin-1')!r} is not accepted: send "
                           "multipart/form-data with a 'file' field and/or a 'text' field", "content-type")
    boundary = params.get(b"boundary", b"")
    if not boundary or len(boundary) > 200:
        raise ServiceError(400, "malformed_multipart", "the multipart/form-data Content-Type has no valid boundary "
                           "parameter", "content-type")
    return boundary


class FormReader:
    """Feeds body chunks to a streaming multipart parser and writes the ``file`` field to
    ``folder/upload`` (renamed later by its content), stopping at ``max_bytes``."""

    def __init__(self, boundary: bytes, folder: Path, max_bytes: int) -> None:
        self.folder, self.max_bytes = folder, max_bytes
        self.form = Form()
        self.received = 0
        self._ended = False
        self._parts = 0
        self._headers: dict[bytes, bytes] = {}
        self._hfield = self._hvalue = b""
        self._name: str | None = None
        self._sink: IO[bytes] | None = None
        self._text = bytearray()
        callbacks: Any = {
            "on_part_begin": self._part_begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
            "on_part_end": self._part_end, "on_end": self._end,
        }
        self._parser = MultipartParser(boundary, callbacks, max_header_count=8, max_header_size=4224)

    def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        try:
            self._parser.write(chunk)  # the file's own limit is checked as its bytes are written
        except MultipartParseError as exc:
            raise ServiceError(400, "malformed_multipart", f"the multipart/form-data body is malformed: {exc}",
                               "body") from None
        if self.received > self.max_bytes + 64 * 1024:  # the file's limit, plus room for the form's framing
            raise self._too_large("body")

    def finish(self) -> Form:
        """The form, once the whole body was fed; 400 when it ended before its closing boundary."""
        self.close()
        if not self._ended:
            raise ServiceError(400, "malformed_multipart", "the multipart/form-data body ended before its closing "
                               "boundary (truncated, or not multipart at all)", "body")
        return self.form

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    # ----------------------------------------------------------- parser callbacks
    def _too_large(self, which: str) -> ServiceError:
        return ServiceError(413, "too_large", f"the upload is larger than the limit of {self.max_bytes} bytes "
                            f"({self.max_bytes / 1e6:g} MB); the rest was not read", "file" if which == "file" else which)

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise ServiceError(400, "malformed_multipart", f"too many parts in the form (more than {MAX_PARTS}); "
                               "send one 'file' and/or one 'text' field", "body")
        self._headers, self._name = {}, None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._hfield += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._hfield.strip().lower()] = self._hvalue.strip()
        self._hfield = self._hvalue = b""

    def _headers_finished(self) -> None:
        disposition = self._headers.get(b"content-disposition")
        if disposition is None:
            raise ServiceError(400, "malformed_multipart", "a form part has no Content-Disposition header", "body")
        kind, params = parse_options_header(disposition)
        name = params.get(b"name")
        if kind != b"form-data" or name is None:
            raise ServiceError(400, "malformed_multipart", "a form part's Content-Disposition is not "
                               "'form-data' with a name", "body")
        label = name.decode("utf-8", "replace")
        if label not in FIELDS:
            raise ServiceError(400, "unknown_field", f"unknown form field {display_name(label)!r}: the fields are "
                               "'file' (audio or video) and 'text' (a transcript)", display_name(label))
        if label in self.form.seen:
            raise ServiceError(400, "duplicate_field", f"the form field {label!r} is given twice", label)
        self.form.seen.append(label)
        self._name = label
        if label == "file":
            self.form.filename = display_name(params.get(b"filename"))
            self.form.file = self.folder / "upload"
            self._sink = self.form.file.open("xb")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._name == "file" and self._sink is not None:
            self.form.size += end - start
            if self.form.size > self.max_bytes:
                raise self._too_large("file")
            self._sink.write(data[start:end])
        elif self._name == "text":
            self._text += data[start:end]
            if len(self._text) > MAX_TEXT_BYTES:
                raise ServiceError(413, "too_large", f"the text is longer than {MAX_TEXT_BYTES} bytes", "text")

    def _part_end(self) -> None:
        if self._name == "file":
            self.close()
        elif self._name == "text":
            try:
                self.form.text = bytes(self._text).decode("utf-8")
            except UnicodeDecodeError:
                raise ServiceError(400, "bad_text", "the text field is not valid UTF-8", "text") from None
            if "\x00" in self.form.text:
                raise ServiceError(400, "bad_text", "the text field contains a NUL character", "text")
        self._name = None

    def _end(self) -> None:
        self._ended = True
