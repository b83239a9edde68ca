"""Operations: Prometheus metrics, one JSON access-log line per request with a request id (echoed
in ``X-Request-ID``), and the request-body limit, as one ASGI middleware around the app.

Metrics (``/metrics``, a registry per app): requests by route, method and status; request latency
(seconds) by route; time per stage of a call (embed, search, aggregate; from
:mod:`vecsim.timing`); queue depth and the age of the oldest queued task; task outcomes by kind;
assets per project. Logs never hold API keys or other secrets: the ``Authorization`` header is not
logged, and neither are query strings (a ``url=`` may carry a signed link).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .errors import ServiceError

log = logging.getLogger("vecsim.server.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("vecsim_http_requests_total", "HTTP requests", ["route", "method", "status"], registry=r)
        self.latency = Histogram("vecsim_http_request_duration_seconds", "HTTP request latency",
                                 ["route", "method"], buckets=LATENCY_BUCKETS, registry=r)
        self.stage = Histogram("vecsim_stage_duration_seconds", "time per stage of an add or query",
                               ["stage"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("vecsim_queue_depth", "async tasks queued or running", registry=r)
        self.queue_age = Gauge("vecsim_queue_oldest_age_seconds", "age of the oldest queued or running task",
                               registry=r)
        self.tasks = Counter("vecsim_tasks_total", "async tasks finished", ["kind", "outcome"], registry=r)
        self.callbacks = Counter("vecsim_callbacks_total", "callback deliveries", ["outcome"], registry=r)
        self.assets = Gauge("vecsim_assets", "assets in the index per project", ["project"], registry=r)
        self.ready = Gauge("vecsim_ready", "1 when the model and the store are loaded", registry=r)


class AccessMiddleware:
    """Request id, body limit, access log and request metrics, for every HTTP request."""

    def __init__(self, app: Any, metrics: Metrics, max_body: int, log_enabled: bool,
                 error_response: Callable[[ServiceError, str], Any]):
        self.app, self.metrics, self.max_body, self.log_enabled = app, metrics, max_body, log_enabled
        self.error_response = error_response

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        given = headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        status = {"code": 500}
        received = 0

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        async def receive_wrapper() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _TooLarge(self.max_body)
            return message

        try:
            length = int(headers.get("content-length", "0") or 0)
        except ValueError:
            length = 0
        try:
            if length > self.max_body:  # refused before a byte of the body is read
                await self.error_response(_TooLarge(self.max_body), request_id)(scope, receive, send_wrapper)
            else:
                await self.app(scope, receive_wrapper, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "?")
            self.metrics.requests.labels(route, method, str(status["code"])).inc()
            self.metrics.latency.labels(route, method).observe(elapsed)
            if self.log_enabled:
                log.info(json.dumps({
                    "ts": round(time.time(), 3), "request_id": request_id, "method": method, "route": route,
                    "path": scope.get("path", ""), "status": status["code"], "ms": round(elapsed * 1000, 2),
                    "project": scope["state"].get("project"), "client": (scope.get("client") or ["?"])[0],
                }))


class _TooLarge(ServiceError):
    """Raised while the body streams in (the app's error handler answers it as any ServiceError)."""

    def __init__(self, limit: int = 0):
        super().__init__(413, "request_too_large", f"the request body is over the limit of {limit:,} bytes "
                         "(max_upload_bytes)", {"Connection": "close"})


class JsonFormatter(logging.Formatter):
    """Log records as one JSON object a line (the access log's lines are JSON already)."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.name == log.name:
            return msg
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name, "message": msg}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("vecsim", "huey", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        # huey logs every task at info: only its warnings (vecsim logs what matters about tasks)
        lg.setLevel(max(logging.WARNING, logging.getLevelName(level.upper())) if name == "huey" else level.upper())
        lg.propagate = False
