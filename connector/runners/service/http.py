"""The service's HTTP plumbing: correlation ids, the body-size limit and the error answers every route shares."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connector.observability.metrics import Metrics

log = logging.getLogger("connector.service")

# HubSpot retries a 503 honouring Retry-After [crm-behaviour: HubSpot webhook deliveries]; Segment retries 5xx with backoff.
RETRY_AFTER_SECONDS = 5
REQUEST_ID_HEADER = "x-request-id"

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


class CorrelationFilter(logging.Filter):
    """Stamps each log record with the current request's correlation id (when there is one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        cid = correlation_id.get()
        if cid is not None and not hasattr(record, "correlation_id"):
            record.correlation_id = cid
        return True


class Problem(BaseModel):
    """An error answer: what failed, and the request's correlation id."""

    detail: str
    correlation_id: str | None = None


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI description of a route's error answers."""
    text = {400: "Malformed body, or a value the state store cannot keep (the field and index are named)",
            401: "Bad or missing signature / credentials", 404: "Not enabled, or its secret is not configured",
            413: "Body too large, or more work than the intake queue can ever hold",
            503: "Not accepting work now; retry after Retry-After seconds"}
    return {code: {"model": Problem, "description": text[code]} for code in codes}


def unavailable(metrics: Metrics, reason: str, endpoint: str) -> JSONResponse:
    """503 with Retry-After: nothing was accepted, the sender retries."""
    metrics.rejected_requests.labels(endpoint, "503").inc()
    return JSONResponse(
        {"detail": reason, "correlation_id": correlation_id.get()}, 503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


def problem(metrics: Metrics, status: int, detail: str, endpoint: str) -> JSONResponse:
    """An error answer with the request's correlation id, counted by endpoint and status."""
    metrics.rejected_requests.labels(endpoint, str(status)).inc()
    return JSONResponse({"detail": detail, "correlation_id": correlation_id.get()}, status)


def correlate(monotonic: Callable[[], float]) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """HTTP middleware: each request gets a correlation id (its X-Request-Id, or a new one), echoed and logged."""

    async def middleware(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        cid = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        token = correlation_id.set(cid)
        started = monotonic()
        try:
            response: Response = await call_next(request)
        except Exception:  # process boundary: an unexpected error is a 500 with the id to find it in the logs
            log.exception("request failed", extra={"method": request.method, "path": request.url.path})
            response = JSONResponse({"detail": "internal error; see the logs for this correlation id", "correlation_id": cid}, 500)
        finally:
            correlation_id.reset(token)
        response.headers[REQUEST_ID_HEADER] = cid
        log.info(
            "request",
            extra={
                "method": request.method, "path": request.url.path, "status": response.status_code,
                "ms": round((monotonic() - started) * 1000, 1), "correlation_id": cid,
            },
        )
        return response

    return middleware


class BodyLimit:
    """ASGI middleware: 413 for bodies over the limit, by Content-Length or while reading; the app sees the buffered body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(self.max_bytes)(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await _too_large(self.max_bytes)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _too_large(max_bytes: int) -> JSONResponse:
    cid = correlation_id.get()
    return JSONResponse({"detail": f"request body larger than {max_bytes} bytes ([service] max_body_bytes)", "correlation_id": cid}, 413)
