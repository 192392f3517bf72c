"""Dependencies: the manager, and bearer-key auth with read/write scopes.

All are ``async def``: FastAPI runs plain ``def`` dependencies in its threadpool, a thread hop per
dependency per request (that was most of a prediction's server time)."""

from __future__ import annotations

import hmac

from fastapi import Depends, Request

from service.api.errors import APIError
from service.manager import ModelManager

_BEARER = {"WWW-Authenticate": "Bearer"}


async def get_manager(request: Request) -> ModelManager:
    return request.app.state.manager


def _scope_of(request: Request) -> str | None:
    keys: dict[str, str] = request.app.state.api_keys
    if not keys:
        return "write"          # auth disabled
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise APIError(401, "unauthorized", "Authorization: missing 'Bearer <key>' header", "Authorization", _BEARER)
    token = token.strip()
    for key, scope in keys.items():
        if hmac.compare_digest(key.encode(), token.encode()):
            return scope
    raise APIError(401, "unauthorized", "Authorization: unknown API key", "Authorization", _BEARER)


async def require_read(request: Request) -> str:
    return _scope_of(request)


async def require_write(request: Request) -> str:
    scope = _scope_of(request)
    if scope != "write":
        raise APIError(403, "forbidden", "Authorization: this API key may only read and predict (needs a write key)",
                       "Authorization")
    return scope


Read = Depends(require_read)
Write = Depends(require_write)
Manager = Depends(get_manager)
