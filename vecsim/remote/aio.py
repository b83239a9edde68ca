"""``AsyncRemoteIndex``: :class:`~vecsim.remote.client.RemoteIndex` as coroutines (httpx.AsyncClient).

Every request and every answer is built and read by :mod:`vecsim.remote.protocol`, as for the
sync client; only the sending (and the waiting between retries and polls) is awaited here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

import httpx

from .. import errors as E
from ..index import DEFAULT_TOP_K
from ..media.inputs import MediaInput
from ..schema import AddFailure, AddManyResult, AddResult, AssetInfo, AssetPage, IndexInfo, QueryResult, RemoveResult
from . import protocol as P
from .client import RemoteIndex, RemoteTask, client_kwargs, options_with
from .protocol import Call, RemoteOptions


class AsyncRemoteTask(RemoteTask):
    """A :class:`RemoteTask` whose ``refresh()`` and ``wait()`` are coroutines."""

    _index: AsyncRemoteIndex  # type: ignore[assignment]

    async def refresh(self) -> str:  # type: ignore[override]
        self._update(await self._index._send(P.task_call(self.id)))
        return self.status

    async def wait(self, timeout: float | None = None) -> Any:  # type: ignore[override]
        poll = P.Polling(self.id, timeout, self._index.options.poll_interval)
        while not self.done:
            await asyncio.sleep(poll.pause(self.status))
            await self.refresh()
        return self.result()


class AsyncRemoteIndex:
    """``AsyncRemoteIndex(url, api_key=None, options=None, **option_overrides)``: the methods of
    :class:`RemoteIndex` (and so of ``AsyncCustomIndex``), as coroutines. Use ``async with``."""

    def __init__(self, url: str, api_key: str | None = None, options: RemoteOptions | None = None, *,
                 transport: httpx.AsyncBaseTransport | None = None, **overrides: Any):
        self.options = options_with(options, overrides)
        self.url = P.base_url(url)
        self._http = httpx.AsyncClient(**client_kwargs(url, P.api_key_from_env(api_key), self.options),
                                       transport=transport)
        self._project: str | None = None

    @classmethod
    async def open(cls, *args: Any, **kwargs: Any) -> AsyncRemoteIndex:
        """``AsyncRemoteIndex(*args, **kwargs)``, as ``AsyncCustomIndex.open`` is spelt."""
        return cls(*args, **kwargs)

    async def _send(self, call: Call) -> Any:
        """As ``RemoteIndex._send``, awaiting the request and the waits between retries."""
        attempts = P.Attempts(self.options, call, self.url)
        while True:
            kwargs, handle = call.request_kwargs()
            try:
                done, value = attempts.answered(await self._http.request(call.method, call.path, **kwargs))
                if done:
                    return value
            except httpx.HTTPError as exc:
                value = attempts.failed(exc)
            finally:
                if handle is not None:
                    handle.close()
            await asyncio.sleep(value)

    async def _task_or(self, call: Call, wait: bool) -> Any:
        body = await self._send(call)
        return body if wait else AsyncRemoteTask(self, body, call.media)  # type: ignore[arg-type]

    async def add(self, media: MediaInput, metadata: dict[str, Any] | None = None, task_id: str | None = None, *,
                  replace: bool = False, wait: bool = True,
                  callback_url: str | None = None) -> AddResult | AsyncRemoteTask:
        return await self._task_or(P.add_call(media, metadata, task_id, replace, wait, callback_url), wait)

    async def add_many(self, media: Iterable[MediaInput] | MediaInput,
                       metadata: dict[str, Any] | Sequence[dict[str, Any] | None] | None = None,
                       task_ids: Sequence[str] | None = None, *, replace: bool = False) -> AddManyResult:
        gate = asyncio.Semaphore(max(1, self.options.concurrency))

        async def one(item: P.ManyItem) -> AddResult | AddFailure:
            async with gate:
                try:
                    if item.refused is not None:
                        raise item.refused
                    return await self.add(item.media, item.metadata, item.task_id, replace=replace)
                except Exception as exc:  # noqa: BLE001 - every bad input is reported, none stops the rest
                    return P.add_many_failure(item, exc)

        return P.add_many_result(list(await asyncio.gather(*map(one, P.add_many_items(media, metadata, task_ids)))))

    async def query(self, media: MediaInput, top_k: int = DEFAULT_TOP_K, threshold: float | None = None,
                    rotations: bool | None = None, *, wait: bool = True,
                    callback_url: str | None = None) -> QueryResult | AsyncRemoteTask:
        return await self._task_or(P.query_call(media, top_k, threshold, rotations, wait, callback_url), wait)

    async def remove(self, task_id: str, *, wait: bool = True,
                     callback_url: str | None = None) -> RemoveResult | AsyncRemoteTask:
        return await self._task_or(P.remove_call(task_id, wait, callback_url), wait)

    async def get(self, task_id: str) -> AssetInfo:
        return await self._send(P.get_call(task_id))

    async def list_assets(self, limit: int = 100, after: str | None = None) -> AssetPage:
        return await self._send(P.list_call(limit, after))

    async def count(self) -> int:
        return (await self.info()).assets

    async def info(self) -> IndexInfo:
        info = await self._send(P.info_call(self.url))
        self._project = info.project
        return info

    async def task(self, task_id: str) -> AsyncRemoteTask:
        return AsyncRemoteTask(self, await self._send(P.task_call(task_id)))  # type: ignore[arg-type]

    async def vacuum(self) -> Any:
        return RemoteIndex.vacuum(self)  # type: ignore[arg-type]

    @property
    def project(self) -> str:
        """The API key's project, known once a call read it (``await index.info()``)."""
        if self._project is None:
            raise E.InvalidRequestError("the project is known after the first info(): await index.info() first")
        return self._project

    async def for_project(self, project: str) -> AsyncRemoteIndex:
        if self._project is None:
            await self.info()
        if project != self._project:
            raise E.UnsupportedOperationError(
                f"this API key belongs to project {self._project!r}: open an AsyncRemoteIndex with a key of "
                f"project {project!r}")
        return self

    @property
    def uri(self) -> str:
        return self.url

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncRemoteIndex:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncRemoteIndex({self.url!r})"
