"""Every failure becomes a JSON 4xx/5xx naming the offending field: ``{"detail", "code", "field"}``
(Open Inference Protocol routes under ``/v2`` use its ``{"error": ...}`` shape, with the same extras)."""

from __future__ import annotations

from typing import Any, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.api.responses import JSON
from service.errors import (FeedbackConflict, InvalidInput, ModelExists, ModelNotFound, NotLeader, NotReady,
                            PredictionNotFound, ServiceError, WrongRole)
from service.stores.base import StoreError

# loc entries pydantic adds for the branches of a union (``x: list[int | float]`` → ``x.0.int``)
_UNION_TAGS = {"int", "float", "str", "bool", "none", "list", "dict"}

STATUS = {InvalidInput: 422, ModelNotFound: 404, PredictionNotFound: 404, ModelExists: 409,
          FeedbackConflict: 409, NotReady: 503, WrongRole: 409, NotLeader: 503}


class APIError(Exception):
    """An HTTP-level error raised by the API layer itself (auth, body format, size)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.headers = status, code, message, field, headers


def format_loc(loc: Sequence[Any]) -> str:
    """``("body", "samples", 3, "x")`` → ``"samples[3].x"``.

    >>> format_loc(("body", "samples", 3, "x_b64"))
    'samples[3].x_b64'
    """
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in str(part) or "|" in str(part) or part in _UNION_TAGS:   # union-branch tags: no information
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


def invalid_from_validation(errors: list[dict], prefix: Sequence[Any] = ()) -> InvalidInput:
    """The first pydantic error, as an :class:`InvalidInput` naming the field."""
    err = errors[0]
    if err.get("type") == "json_invalid":
        return InvalidInput(f"body is not valid JSON: {err.get('ctx', {}).get('error', err['msg'])}", "body")
    field = format_loc((*prefix, *err.get("loc", ())))
    # a union reports one error per branch at the same place: merge them into one message
    same = [e for e in errors if format_loc((*prefix, *e.get("loc", ()))) == field]
    message = " or ".join(dict.fromkeys(e["msg"] for e in same))
    rest = len(errors) - len(same)
    extra = f" ({rest} more error(s))" if rest else ""
    return InvalidInput(f"{field}: {message}{extra}", field)


def error_response(request: Request, status: int, code: str, message: str, field: str | None,
                   headers: dict[str, str] | None = None) -> JSON:
    if request.url.path.startswith("/v2/"):
        body = {"error": message, "code": code, "field": field}
    else:
        body = {"detail": message, "code": code, "field": field}
    return JSON(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    def retry_after(request: Request) -> dict[str, str]:
        return {"Retry-After": str(request.app.state.settings.store_retry_after_seconds)}

    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError):
        status = STATUS.get(type(exc), 400)
        return error_response(request, status, exc.code, exc.message, exc.field,
                              retry_after(request) if status == 503 else None)

    @app.exception_handler(APIError)
    async def _api(request: Request, exc: APIError):
        return error_response(request, exc.status, exc.code, exc.message, exc.field, exc.headers)

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError):
        # nothing was acknowledged (the write was not logged): the client retries after a pause
        return error_response(request, 503, "store_unavailable", f"store error: {exc}", None, retry_after(request))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = list(exc.errors())
        invalid = invalid_from_validation(errors)
        status = 400 if errors and errors[0].get("type") == "json_invalid" else 422
        return error_response(request, status, "malformed_body" if status == 400 else invalid.code,
                              invalid.message, invalid.field)

    @app.exception_handler(ValidationError)
    async def _pydantic(request: Request, exc: ValidationError):
        invalid = invalid_from_validation(list(exc.errors()))
        return error_response(request, 422, invalid.code, invalid.message, invalid.field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(request, exc.status_code, code, str(exc.detail), None, getattr(exc, "headers", None))
