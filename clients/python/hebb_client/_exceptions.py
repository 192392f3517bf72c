"""Typed errors. Every error the SDK raises is a :class:`HebbError`; HTTP failures carry the
status code and the server's message, so callers can branch on type instead of parsing text."""

from __future__ import annotations

from typing import Any


class HebbError(Exception):
    """Base class of every error raised by ``hebb_client``. For an error answer, ``status_code`` is
    the HTTP status, ``code`` the service's machine-readable error code (e.g. ``invalid_input``),
    ``field`` the request field it names (e.g. ``samples[3].label``) and ``body`` the decoded body."""

    def __init__(self, message: str, *, status_code: int | None = None, body: Any = None):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.body = body
        details = body if isinstance(body, dict) else {}
        self.code: str | None = details.get("code")
        self.field: str | None = details.get("field")

    def __str__(self) -> str:
        return f"[{self.status_code}] {self.message}" if self.status_code else self.message


class InvalidInput(HebbError, ValueError):
    """The request was rejected as invalid (a 4xx other than 401/403/404), or the SDK caught the
    problem before sending. The message is the server's, naming the offending field."""


class Conflict(InvalidInput):
    """409: the resource already exists (e.g. creating a model whose name is taken)."""


class NotFound(HebbError, LookupError):
    """404: unknown model, prediction id or route."""


class Unauthorized(HebbError):
    """401: an API key is required, or the one given is not known."""


class Forbidden(HebbError):
    """403: the API key is valid but its scope does not allow this call (e.g. a read key learning)."""


class ServerError(HebbError):
    """A 5xx answer that is not worth retrying (500, 501, ...)."""


class Unavailable(HebbError):
    """The service could not be reached or kept answering 429/502/503/504 until the retries ran out."""
