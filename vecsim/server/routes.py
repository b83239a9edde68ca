"""The HTTP API: ``/api/v2/custom_index/{add,query,remove}/{sync,async}``, the reads
``/api/v2/custom_index/{asset/{task_id},assets,info}`` and ``/api/v2/task/{id}``.

Each handler authenticates (one key works on every endpoint of its project), applies the
project's rate limit, reads the request (:mod:`vecsim.server.inputs`) and calls the SDK through
:class:`~vecsim.server.service.Service` (sync: on a worker thread, at most ``sync_concurrency`` at
once, cut at ``request_timeout_s``) or records and queues a task (:mod:`vecsim.server.tasks`).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..validate import check_metadata, check_query_args, check_task_id, new_task_id
from .auth import authenticate
from .errors import CODES, ServiceError
from .inputs import MediaRequest, read_request
from .ledger import TaskRecord
from .models import (AddResponse, AssetResponse, AssetsResponse, ErrorResponse, InfoResponse, QueryResponse,
                     RemoveResponse, TaskResponse)
from .runtime import Runtime, envelope

PREFIX = "/api/v2"
router = APIRouter(prefix=PREFIX)

_MEDIA_FORM = {
    "type": "object",
    "properties": {
        "media": {"type": "string", "format": "binary", "description": "the image or video (or give url)"},
        "url": {"type": "string", "description": "an http(s) URL of the image or video (or send media)"},
        "metadata": {"type": "string", "description": "add: a JSON object, stored with the asset"},
        "task_id": {"type": "string", "description": "add: the asset's id (generated when absent)"},
        "replace": {"type": "boolean", "description": "add: replace the asset of this task_id if there is one"},
        "callback_url": {"type": "string", "description": "async: the finished task is POSTed here, signed"},
        "top_k": {"type": "integer", "minimum": 1, "description": "query: most assets returned (default 5)"},
        "threshold": {"type": "number", "minimum": 0, "maximum": 1,
                      "description": "query: lowest similarity_score of a match (default 0.5)"},
        "rotations": {"type": "boolean", "description": "query: also search each frame turned a quarter left "
                      "and right (default: for images only)"},
    },
}
_JSON_BODY = {**_MEDIA_FORM, "properties": {**_MEDIA_FORM["properties"],
                                            "metadata": {"type": "object", "description": "add: stored with the asset"}}}
_JSON_BODY["properties"] = {k: v for k, v in _JSON_BODY["properties"].items() if k != "media"}
MEDIA_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": _MEDIA_FORM},
    "application/json": {"schema": _JSON_BODY},
    "application/x-www-form-urlencoded": {"schema": {**_JSON_BODY, "properties": {
        k: v for k, v in _MEDIA_FORM["properties"].items() if k != "media"}}},
}}}
REMOVE_PARAMS = {"parameters": [{"name": "task_id", "in": "query", "required": False, "schema": {"type": "string"},
                                 "description": "the asset to remove (or in a JSON / form body)"},
                                {"name": "callback_url", "in": "query", "required": False,
                                 "schema": {"type": "string"}, "description": "async only"}]}
QUERY_GET_PARAMS = {"parameters": [
    {"name": n, "in": "query", "required": n == "url", "schema": s} for n, s in
    (("url", {"type": "string"}), ("top_k", {"type": "integer", "minimum": 1}),
     ("threshold", {"type": "number", "minimum": 0, "maximum": 1}), ("rotations", {"type": "boolean"}),
     ("callback_url", {"type": "string"}))]}


def _errors(*codes: str) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route (every one is an ErrorResponse)."""
    by_status: dict[int, list[str]] = {}
    for code in ("unauthorized", "rate_limited", "internal_error", *codes):
        by_status.setdefault(CODES[code], []).append(code)
    return {status: {"model": ErrorResponse, "description": "error codes: " + ", ".join(sorted(set(c)))}
            for status, c in sorted(by_status.items())}


MEDIA_ERRORS = ("invalid_request", "empty_media", "unsupported_media", "unsupported_media_type", "corrupt_media",
                "media_too_large", "request_too_large", "url_not_allowed", "url_not_found", "url_fetch_failed",
                "bad_media", "not_ready", "store_unavailable", "store_error")
SYNC_ERRORS = (*MEDIA_ERRORS, "timeout")
ASYNC_ERRORS = (*MEDIA_ERRORS, "queue_full", "task_in_progress")


def _rt(request: Request) -> Runtime:
    return request.app.state.runtime


def _project(request: Request) -> str:
    rt = _rt(request)
    project = authenticate(rt.keys, request.headers.get("authorization"))
    request.scope["state"]["project"] = project
    rt.limiter.take(project)
    return project


async def _sync(rt: Runtime, fn: Any, *args: Any, limiter: anyio.CapacityLimiter | None = None) -> Any:
    """``fn(*args)`` on a worker thread, at most ``sync_concurrency`` at once (decoding and
    embedding are the CPU's work; a remove, which only writes to the store, has its own
    ``limiter``), within the timeout."""
    try:
        with anyio.fail_after(rt.settings.request_timeout_s):
            return await anyio.to_thread.run_sync(lambda: fn(*args), limiter=limiter or rt.sync_limiter,
                                                  abandon_on_cancel=True)
    except TimeoutError:
        raise ServiceError(504, "timeout", f"the call took longer than request_timeout_s="
                           f"{rt.settings.request_timeout_s:g} s; use the async endpoint for long media") from None


def _check_queue(rt: Runtime) -> None:
    depth, _ = rt.queue.pending()
    if depth >= rt.settings.max_queue:
        raise ServiceError(429, "queue_full", f"{depth} tasks are queued or running, the limit (max_queue) is "
                           f"{rt.settings.max_queue}; retry later", {"Retry-After": "10"})


def _admit(request: Request, *, task: bool) -> tuple[Runtime, str]:
    """Authenticate and rate-limit, check that the index is loaded, and that the queue has room
    (an async call) or that the store was not just found unreachable (a sync call, which needs
    it now: 503 at once). (runtime, the caller's project)."""
    project = _project(request)
    rt = _rt(request)
    rt.service.check_ready()
    if task:
        _check_queue(rt)
    else:
        rt.service.check_store()
    return rt, project


async def _begin(request: Request, *, media: bool, task: bool) -> tuple[Runtime, str, MediaRequest]:
    """What every call does first: authenticate and rate-limit, check that the index is loaded
    (and, for an async call, that the queue has room), read the request (a task's upload is
    spooled durably) and check its url against the URL policy."""
    rt, project = _admit(request, task=task)
    req = await read_request(request, rt.service.spool_dir, need_media=media, spool=task)
    try:
        if req.url:
            await anyio.to_thread.run_sync(rt.check_url, req.url)
    except BaseException:
        req.discard()
        raise
    return rt, project, req


def _accepted(rec: TaskRecord) -> JSONResponse:
    return JSONResponse(envelope(rec), status_code=202)


async def _submit(rt: Runtime, project: str, kind: str, task_id: str, params: dict, req: MediaRequest) -> JSONResponse:
    if req.callback_url:
        await anyio.to_thread.run_sync(rt.check_url, req.callback_url)
    now = time.time()
    rec = TaskRecord(project=project, id=task_id, kind=kind, params=params, created=now, enqueued=now,
                     callback_url=req.callback_url)
    existing = await anyio.to_thread.run_sync(rt.queue.submit, rec)
    if existing is not None:
        req.discard()
        raise ServiceError(409, "task_in_progress", f"task {task_id!r} is already {existing.status}; "
                           f"GET {PREFIX}/task/{task_id} follows it")
    return _accepted(rec)


# --- add -----------------------------------------------------------------------------------------


@router.post("/custom_index/add/sync", response_model=AddResponse, responses=_errors(*SYNC_ERRORS, "task_exists"),
             openapi_extra=MEDIA_BODY, summary="Add an image or video, and wait")
async def add_sync(request: Request) -> AddResponse:
    rt, project, req = await _begin(request, media=True, task=False)
    try:
        result = await _sync(rt, rt.service.add, project, req.media_params(), req.metadata, req.task_id, req.replace)
    finally:
        req.discard()
    return AddResponse(task_id=result.task_id, status="completed", output=result)


@router.post("/custom_index/add/async", response_model=AddResponse, status_code=202,
             responses=_errors(*ASYNC_ERRORS, "task_exists"), openapi_extra=MEDIA_BODY,
             summary="Add an image or video in the background")
async def add_async(request: Request) -> JSONResponse:
    rt, project, req = await _begin(request, media=True, task=True)
    try:
        task_id = check_task_id(req.task_id) if req.task_id is not None else new_task_id()
        metadata = check_metadata(req.metadata)
        taken = None if req.replace else await anyio.to_thread.run_sync(rt.service.exists_if_reachable, project,
                                                                          task_id)
        if taken:
            raise ServiceError(409, "task_exists", f"task_id {task_id!r} is already in the index")
        # checked: the task_id was free when the task was accepted (else the task checks it first)
        params = {"media": req.media_params(), "metadata": metadata, "source": req.source, "replace": req.replace,
                  "checked": req.replace or taken is False}
        return await _submit(rt, project, "add", task_id, params, req)
    except BaseException:
        req.discard()
        raise


# --- query ---------------------------------------------------------------------------------------


async def _query_sync(request: Request) -> QueryResponse:
    rt, project, req = await _begin(request, media=True, task=False)
    try:
        result = await _sync(rt, rt.service.query, project, req.media_params(), req.top_k, req.threshold, req.rotations)
    finally:
        req.discard()
    return QueryResponse(task_id="q" + uuid.uuid4().hex, status="completed", output=result.output,
                         query=rt.query_info(result))


async def _query_async(request: Request) -> JSONResponse:
    rt, project, req = await _begin(request, media=True, task=True)
    try:
        check_query_args(req.top_k, req.threshold)
        params = {"media": req.media_params(), "top_k": req.top_k, "threshold": req.threshold,
                  "rotations": req.rotations, "source": req.source}
        return await _submit(rt, project, "query", "q" + uuid.uuid4().hex, params, req)
    except BaseException:
        req.discard()
        raise


_Q_SYNC = dict(response_model=QueryResponse, responses=_errors(*SYNC_ERRORS))
_Q_ASYNC = dict(response_model=QueryResponse, status_code=202, responses=_errors(*ASYNC_ERRORS))
router.post("/custom_index/query/sync", openapi_extra=MEDIA_BODY, summary="Which indexed assets does this copy?",
            **_Q_SYNC)(_query_sync)
router.get("/custom_index/query/sync", openapi_extra=QUERY_GET_PARAMS, summary="Query by url (GET)",
           **_Q_SYNC)(_query_sync)
router.post("/custom_index/query/async", openapi_extra=MEDIA_BODY, summary="Query in the background",
            **_Q_ASYNC)(_query_async)
router.get("/custom_index/query/async", openapi_extra=QUERY_GET_PARAMS, summary="Query by url in the background (GET)",
           **_Q_ASYNC)(_query_async)


# --- remove --------------------------------------------------------------------------------------


@router.delete("/custom_index/remove/sync", response_model=RemoveResponse, openapi_extra=REMOVE_PARAMS,
               responses=_errors("invalid_request", "task_not_found", "not_ready", "timeout", "store_unavailable",
                                 "store_error"), summary="Remove an asset")
async def remove_sync(request: Request) -> RemoveResponse:
    rt, project, req = await _begin(request, media=False, task=False)
    task_id = check_task_id(req.task_id) if req.task_id is not None else _missing_task_id()
    result = await _sync(rt, rt.service.remove, project, task_id, limiter=rt.store_limiter)
    return RemoveResponse(task_id=task_id, status="completed", output=result)


@router.delete("/custom_index/remove/async", response_model=RemoveResponse, status_code=202,
               openapi_extra=REMOVE_PARAMS, responses=_errors("invalid_request", "not_ready", "queue_full",
                                                             "task_in_progress"),
               summary="Remove an asset in the background")
async def remove_async(request: Request) -> JSONResponse:
    rt, project, req = await _begin(request, media=False, task=True)
    target = check_task_id(req.task_id) if req.task_id is not None else _missing_task_id()
    return await _submit(rt, project, "remove", "r" + uuid.uuid4().hex, {"target": target}, req)


def _missing_task_id() -> str:
    raise ServiceError(400, "invalid_request", "task_id is required: the asset to remove")


# --- reads ---------------------------------------------------------------------------------------

# A read is a sync call of the caller's project that runs on a store thread, like a remove (no
# model work).
_READ_ERRORS = ("invalid_request", "not_ready", "timeout", "store_unavailable", "store_error")


@router.get("/custom_index/asset/{task_id:path}", response_model=AssetResponse,
            responses=_errors(*_READ_ERRORS, "task_not_found"), summary="One asset: its metadata and frames")
async def get_asset(task_id: str, request: Request) -> AssetResponse:
    rt, project = _admit(request, task=False)
    info = await _sync(rt, rt.service.get, project, check_task_id(task_id), limiter=rt.store_limiter)
    return AssetResponse(output=info)


@router.get("/custom_index/assets", response_model=AssetsResponse, responses=_errors(*_READ_ERRORS),
            openapi_extra={"parameters": [
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
                {"name": "after", "in": "query", "required": False, "schema": {"type": "string"},
                 "description": "the next of the previous page: the task_id after which this page starts"}]},
            summary="The project's assets, a page at a time, by task_id")
async def list_assets(request: Request) -> AssetsResponse:
    rt, project = _admit(request, task=False)
    params = request.query_params
    unknown = sorted(set(params) - {"limit", "after"})
    if unknown:
        raise ServiceError(400, "invalid_request", f"unknown parameter(s): {', '.join(unknown)}; "
                           "the parameters are after and limit")
    try:
        limit = int(params.get("limit", "100"))
    except ValueError:
        raise ServiceError(400, "invalid_request", f"limit must be an integer, got {params['limit']!r}") from None
    page = await _sync(rt, rt.service.list_assets, project, limit, params.get("after") or None,
                       limiter=rt.store_limiter)
    return AssetsResponse(output=page)


@router.get("/custom_index/info", response_model=InfoResponse, responses=_errors(*_READ_ERRORS),
            summary="The index as this project sees it: engine, descriptor, counts")
async def index_info(request: Request) -> InfoResponse:
    rt, project = _admit(request, task=False)
    base = str(request.base_url).rstrip("/")
    return InfoResponse(output=await _sync(rt, rt.service.info, project, base, limiter=rt.store_limiter))


# --- tasks ---------------------------------------------------------------------------------------


@router.get("/task/{task_id:path}", response_model=TaskResponse, responses=_errors("task_not_found"),
            summary="An async task's status and result")
async def get_task(task_id: str, request: Request) -> JSONResponse:
    project = _project(request)
    rt = _rt(request)
    rec = await anyio.to_thread.run_sync(rt.ledger.get, project, task_id)
    if rec is None:  # another project's task looks exactly like a task that does not exist
        raise ServiceError(404, "task_not_found", f"no task {task_id!r} in this project (results are kept "
                           f"{rt.settings.result_ttl_s / 86400:g} days)")
    return JSONResponse(envelope(rec))
