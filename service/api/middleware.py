"""One pure-ASGI middleware (cheaper per request than stacked ``BaseHTTPMiddleware``s): request body
size limit (413), latency histogram, structured access log."""

from __future__ import annotations

import logging
import time

import orjson

from service.metrics import Metrics

access_log = logging.getLogger("hebb.access")


class BodyTooLarge(Exception):
    pass


class RequestMiddleware:
    def __init__(self, app, *, max_body_bytes: int, metrics: Metrics, log_requests: bool):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.log_requests = log_requests

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500
        response_started = False
        limit = self.max_body_bytes

        async def send_wrapper(message):
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
            await send(message)

        declared = _content_length(scope)
        try:
            if declared is not None and declared > limit:
                status = 413
                await _too_large(send, limit)
            else:
                received = 0

                async def receive_limited():
                    nonlocal received
                    message = await receive()
                    if message["type"] == "http.request":
                        received += len(message.get("body", b""))
                        if received > limit:
                            raise BodyTooLarge
                    return message

                await self.app(scope, receive_limited, send_wrapper)
        except BodyTooLarge:
            status = 413
            if not response_started:
                await _too_large(send, limit)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.request_seconds.labels(scope["method"], path, str(status)).observe(elapsed)
            if self.log_requests:
                access_log.info("request", extra={"method": scope["method"], "path": scope["path"], "route": path,
                                                  "status": status, "ms": round(elapsed * 1000, 3)})


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send, limit: int) -> None:
    body = orjson.dumps({"detail": f"request body exceeds the {limit}-byte limit (HEBB_MAX_BODY_BYTES)",
                         "code": "body_too_large", "field": "body"})
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
