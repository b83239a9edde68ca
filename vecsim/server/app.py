"""``create_app(settings)``: the FastAPI application of ``vecsim serve``, for users who mount it in
their own ASGI stack too. Its lifespan opens the key store, the task ledger and queue at once and
loads the index (model and store) on a thread, so ``/livez`` answers from the first second and
``/readyz`` says when calls can run; the task workers start once the index is loaded. With the
``console`` setting, the web console is served at ``/`` too."""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import VecsimError
from .console import console_router
from .errors import ServiceError, classify, public_message
from .models import ErrorResponse, Health
from .observability import AccessMiddleware
from .routes import router
from .runtime import Runtime
from .settings import ServerSettings

log = logging.getLogger("vecsim.server")


def error_response(exc: BaseException, request_id: str) -> JSONResponse:
    status, code, headers = classify(exc)
    body = ErrorResponse(error={"code": code, "message": public_message(exc)}, request_id=request_id)
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def _request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id", "")


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """The service as an ASGI app. ``settings`` defaults to ``ServerSettings.load()`` (the
    environment and ``$VECSIM_CONFIG``)."""
    settings = settings or ServerSettings.load()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runtime = Runtime(settings)
        app.state.runtime = runtime

        def load() -> None:
            runtime.service.load()
            if runtime.service.ready:
                runtime.queue.start()

        loader = threading.Thread(target=load, name="vecsim-load", daemon=True)
        loader.start()
        try:
            yield
        finally:
            runtime.service.closing.set()  # a load still waiting for the store gives up
            loader.join()
            runtime.close()

    app = FastAPI(
        title="vecsim", version=__version__, lifespan=lifespan,
        description="Visual copy detection: add images and videos to a project's custom index, then ask which "
                    "indexed assets an upload copies. Authenticate with `Authorization: Token KEY`.",
    )
    app.include_router(router)
    if settings.console:  # the web console at / (docs/console.md); off by default
        app.include_router(console_router())

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc, _request_id(request))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return error_response(ServiceError(400, "invalid_request", f"{where}: {first.get('msg', 'invalid')}"),
                              _request_id(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        return error_response(ServiceError(exc.status_code, code, str(exc.detail)), _request_id(request))

    @app.exception_handler(VecsimError)
    async def _vecsim_error(request: Request, exc: VecsimError) -> JSONResponse:
        status, _, _ = classify(exc)
        if status >= 500 and status != 503:  # an unreachable store is logged once, by its health
            log.error("request %s failed", _request_id(request), exc_info=exc)
        return error_response(exc, _request_id(request))

    @app.exception_handler(Exception)  # a bug: a 500 naming the request id (Starlette then logs it too)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        status, _, _ = classify(exc)
        if status >= 500:
            log.error("request %s failed", _request_id(request), exc_info=exc)
        return error_response(exc, _request_id(request))

    @app.get("/livez", response_model=Health, summary="The process answers")
    async def livez() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, responses={503: {"model": Health}},
             summary="Ready: the model and the store are loaded, and the store answers")
    async def readyz(request: Request) -> Any:
        service = request.app.state.runtime.service
        if service.ready:
            answers, _ = await anyio.to_thread.run_sync(service.store_status)
            if answers:
                return Health(status="ok")
            detail = "the vector store cannot be reached or does not answer in time (the reason is in the log)"
            return JSONResponse(Health(status="store_unavailable", detail=detail).model_dump(), status_code=503)
        status = "failed" if service.error else "loading"
        return JSONResponse(Health(status=status, detail=service.error or "").model_dump(), status_code=503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response,
             responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    async def metrics(request: Request) -> Response:
        runtime: Runtime = request.app.state.runtime
        runtime.refresh_gauges()
        return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict[str, Any]:
        """FastAPI's schema, without its default 422 answers: a malformed parameter is a 400
        ``invalid_request`` ErrorResponse here (every route documents it)."""
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            for ops in schema["paths"].values():
                for op in ops.values():
                    resp = op.get("responses", {})
                    if "HTTPValidationError" in str(resp.get("422", "")):
                        del resp["422"]
                        resp.setdefault("400", {"description": "error codes: invalid_request",
                                                "content": {"application/json": {"schema": {
                                                    "$ref": "#/components/schemas/ErrorResponse"}}}})
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    # the outermost layer: request ids, the body limit, access logs and request metrics
    app.add_middleware(_AccessLayer, settings=settings)
    return app


class _AccessLayer:
    """Installs :class:`AccessMiddleware` with the runtime's metrics (known once the app starts)."""

    def __init__(self, app: Any, settings: ServerSettings):
        self.app, self.settings = app, settings
        self._inner: AccessMiddleware | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._inner is None:
            runtime: Runtime = scope["app"].state.runtime
            self._inner = AccessMiddleware(self.app, runtime.metrics, self.settings.max_upload_bytes,
                                           self.settings.access_log, error_response)
        await self._inner(scope, receive, send)
