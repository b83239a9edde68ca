"""``RemoteIndex``: :class:`~vecsim.CustomIndex`'s interface over a vecsim service (httpx.Client).

Switching from an embedded index to a shared service is one line::

    index = CustomIndex("qdrant-edge:./index")                   # embedded
    index = RemoteIndex("https://vecsim.example", api_key=key)    # the service

The same methods take the same arguments and return the same pydantic models; errors are the
SDK's own typed errors (an unreadable upload is an ``UnsupportedMediaError``), plus
:class:`~vecsim.RemoteError` and its subclasses for what only a service answers (a bad key, a
rate limit). ``add`` / ``query`` / ``remove`` take ``wait=False`` to run as the service's durable
async tasks: they return a :class:`RemoteTask` at once.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from .. import errors as E
from ..index import DEFAULT_TOP_K
from ..media.inputs import MediaInput
from ..schema import AddFailure, AddManyResult, AddResult, AssetInfo, AssetPage, IndexInfo, QueryResult, RemoveResult
from . import protocol as P
from .protocol import Call, MediaArg, RemoteOptions


def options_with(options: RemoteOptions | None, overrides: dict[str, Any]) -> RemoteOptions:
    options = options or RemoteOptions()
    unknown = set(overrides) - {f.name for f in dataclasses.fields(RemoteOptions)}
    if unknown:
        raise TypeError(f"unknown RemoteIndex option(s): {', '.join(sorted(unknown))}")
    return dataclasses.replace(options, **overrides) if overrides else options


def client_kwargs(url: str, api_key: str | None, options: RemoteOptions) -> dict[str, Any]:
    """httpx client arguments shared by the sync and async clients."""
    if not api_key:
        raise E.AuthenticationError("a vecsim service needs an API key: pass api_key=... or set VECSIM_API_KEY",
                                    status=401, code="unauthorized")
    from .. import __version__

    headers = {"Authorization": f"Token {api_key}", "User-Agent": f"vecsim/{__version__}", **options.headers}
    return {"base_url": P.base_url(url), "headers": headers, "verify": options.verify,
            "timeout": httpx.Timeout(options.timeout)}


class RemoteTask:
    """An async task of the service (``wait=False``): ``wait()`` returns its result as the sync
    call would have (or raises its error); ``refresh()`` reads its status once."""

    def __init__(self, index: RemoteIndex, body: dict[str, Any], media: MediaArg | None = None):
        self._index, self._media = index, media
        self._update(body)

    def _update(self, body: dict[str, Any]) -> None:
        self.body = body
        self.id: str = body["task_id"]
        self.kind: str = body.get("kind", "")
        self.status: str = body["status"]

    @property
    def done(self) -> bool:
        return self.status in ("completed", "failed")

    def refresh(self) -> str:
        self._update(self._index._send(P.task_call(self.id)))
        return self.status

    def wait(self, timeout: float | None = None) -> Any:
        """Poll until the task is done (at most ``timeout`` seconds): its AddResult / QueryResult
        / RemoveResult, or its error raised as the sync call would have raised it."""
        poll = P.Polling(self.id, timeout, self._index.options.poll_interval)
        while not self.done:
            time.sleep(poll.pause(self.status))
            self.refresh()
        return self.result()

    def result(self) -> Any:
        if self.status == "failed":
            raise P.task_error(self.body, self._media, self.id)
        if self.status != "completed":
            raise E.InvalidRequestError(f"task {self.id!r} is {self.status}: wait() for it")
        return P.task_result(self.body, self._media)

    def __repr__(self) -> str:
        return f"RemoteTask(id={self.id!r}, kind={self.kind!r}, status={self.status!r})"


class RemoteIndex:
    """``RemoteIndex(url, api_key=None, options=None, **option_overrides)``: a vecsim service at
    ``url`` (``https://host:8000``; ``vecsim+https://`` also works), with an API key (default:
    ``$VECSIM_API_KEY``). The key's project is the index's project: every call sees only its
    assets. ``options`` (:class:`RemoteOptions`, or its fields as keywords) sets time-outs,
    retries and polling. Thread-safe: one instance may serve many threads."""

    def __init__(self, url: str, api_key: str | None = None, options: RemoteOptions | None = None, *,
                 transport: httpx.BaseTransport | None = None, **overrides: Any):
        self.options = options_with(options, overrides)
        self.url = P.base_url(url)
        self._http = httpx.Client(**client_kwargs(url, P.api_key_from_env(api_key), self.options), transport=transport)
        self._project: str | None = None

    # --- plumbing -------------------------------------------------------------------------------

    def _send(self, call: Call) -> Any:
        """Send ``call``, retrying what the service says was not done (429, 503, a refused
        connection) as :class:`RemoteOptions` allows (:class:`~.protocol.Attempts`); the parsed
        answer, or a typed error."""
        attempts = P.Attempts(self.options, call, self.url)
        while True:
            kwargs, handle = call.request_kwargs()
            try:
                done, value = attempts.answered(self._http.request(call.method, call.path, **kwargs))
                if done:
                    return value
            except httpx.HTTPError as exc:
                value = attempts.failed(exc)
            finally:
                if handle is not None:
                    handle.close()
            time.sleep(value)

    def _task_or(self, call: Call, wait: bool) -> Any:
        body = self._send(call)
        return body if wait else RemoteTask(self, body, call.media)

    # --- the SDK's operations ---------------------------------------------------------------------

    def add(self, media: MediaInput, metadata: dict[str, Any] | None = None, task_id: str | None = None, *,
            replace: bool = False, wait: bool = True, callback_url: str | None = None) -> AddResult | RemoteTask:
        """Add one image or video (a path, bytes, a binary file object, a PIL image, or an
        http(s) URL the service fetches). ``wait=False``: an async task (``callback_url`` is
        POSTed its result)."""
        return self._task_or(P.add_call(media, metadata, task_id, replace, wait, callback_url), wait)

    def add_many(self, media: Iterable[MediaInput] | MediaInput,
                 metadata: dict[str, Any] | Sequence[dict[str, Any] | None] | None = None,
                 task_ids: Sequence[str] | None = None, *, replace: bool = False) -> AddManyResult:
        """Add many inputs (folders expanded recursively), ``options.concurrency`` uploads at a
        time; a bad input is reported in ``failed`` and does not stop the others (a bad API key
        does). Results in input order."""
        def one(item: P.ManyItem) -> AddResult | AddFailure:
            try:
                if item.refused is not None:
                    raise item.refused
                return self.add(item.media, item.metadata, item.task_id, replace=replace)
            except Exception as exc:  # noqa: BLE001 - every bad input is reported, none stops the rest
                return P.add_many_failure(item, exc)

        items = P.add_many_items(media, metadata, task_ids)
        with ThreadPoolExecutor(max_workers=max(1, self.options.concurrency), thread_name_prefix="vecsim-add") as pool:
            return P.add_many_result(list(pool.map(one, items)))

    def query(self, media: MediaInput, top_k: int = DEFAULT_TOP_K, threshold: float | None = None,
              rotations: bool | None = None, *, wait: bool = True,
              callback_url: str | None = None) -> QueryResult | RemoteTask:
        """Which of the project's assets does ``media`` copy? As ``CustomIndex.query``."""
        return self._task_or(P.query_call(media, top_k, threshold, rotations, wait, callback_url), wait)

    def remove(self, task_id: str, *, wait: bool = True, callback_url: str | None = None) -> RemoveResult | RemoteTask:
        return self._task_or(P.remove_call(task_id, wait, callback_url), wait)

    def get(self, task_id: str) -> AssetInfo:
        return self._send(P.get_call(task_id))

    def list_assets(self, limit: int = 100, after: str | None = None) -> AssetPage:
        """A page of the project's assets by task_id; pass ``page.next`` as ``after`` for the next."""
        return self._send(P.list_call(limit, after))

    def count(self) -> int:
        """Number of assets in the project."""
        return self.info().assets

    def info(self) -> IndexInfo:
        """The index as the key's project sees it (``uri`` is this service's URL)."""
        info = self._send(P.info_call(self.url))
        self._project = info.project
        return info

    def task(self, task_id: str) -> RemoteTask:
        """An async task of the project, by id (e.g. one started by another process)."""
        return RemoteTask(self, self._send(P.task_call(task_id)))

    def vacuum(self) -> Any:
        raise E.UnsupportedOperationError(
            "vacuum is the operator's maintenance of the store, not an API call: run `vecsim --index <store URI> "
            "vacuum` against the vector store while no adds are in flight (docs/remote.md)")

    @property
    def project(self) -> str:
        """The API key's project ("" = the default project)."""
        if self._project is None:
            self.info()
        return self._project or ""

    def for_project(self, project: str) -> RemoteIndex:
        """This index, when ``project`` is its key's project; a key belongs to one project, so
        another project needs a RemoteIndex with that project's key."""
        if project != self.project:
            raise E.UnsupportedOperationError(
                f"this API key belongs to project {self.project!r}: open a RemoteIndex with a key of project "
                f"{project!r} (`vecsim keys create --project {project}` on the service)")
        return self

    @property
    def uri(self) -> str:
        return self.url

    # --- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RemoteIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteIndex({self.url!r})"


__all__ = ["RemoteIndex", "RemoteTask", "RemoteOptions"]
