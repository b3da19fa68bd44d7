"""The service's error model: every refusal is JSON ``{"error": {"code", "message", "field"}}`` with the
HTTP status that fits it, naming what was wrong with the request (never a traceback).

=====  ==========================================================================================
400    ``malformed_multipart``, ``missing_input``, ``bad_parameter``, ``unknown_field``,
       ``duplicate_field``, ``bad_text``, ``bad_request`` (an HTTP request the server could not use)
404    ``not_found``; 405 ``method_not_allowed``
408    ``upload_timeout``: the body did not arrive within the upload time limit
413    ``too_large``: the upload (or its declared Content-Length) exceeds the size limit
415    ``unsupported_media_type``: the bytes are not a known audio/video container; ``wrong_content_type``
422    ``invalid_media`` (the decoder refused it), ``too_long`` (duration limit), ``too_short``,
       ``no_speech``, ``no_usable_input``, ``text_not_read``
429    ``busy``: the queue is full (with ``Retry-After``)
501    ``not_available``: a feature this installation lacks (e.g. timelines)
504    ``timeout``: the prediction did not finish within the per-request time limit
500    ``internal``: an unexpected error, logged on the server
=====  ==========================================================================================
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse


class ServiceError(Exception):
    """A request the service refuses: HTTP ``status``, a stable ``code``, a ``message`` saying what was
    wrong, the ``field`` it concerns (a form field, query parameter or header; None for the whole
    request) and extra response ``headers`` (e.g. ``Retry-After``)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_response(status: int, code: str, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON error response (see the module docstring)."""
    return ServiceError(status, code, message, field, headers).response()


#: DataError / NoSpeechError statuses (`emofuse.inference.predictor.Prediction.status`) → service codes
STATUS_CODES = {"no_speech": "no_speech", "too_short": "too_short", "error": "invalid_media"}
