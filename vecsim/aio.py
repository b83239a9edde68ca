"""``AsyncCustomIndex``: the same operations as :class:`~vecsim.CustomIndex`, as coroutines.

It runs the synchronous index on one worker thread, so the event loop never blocks on decoding,
model inference or the store, and calls on one index run in the order they were awaited.
There is no second copy of the logic: every method delegates to ``CustomIndex``, and its
signature and docstring are the synchronous method's (:func:`_delegate` copies them), so the two
cannot drift apart.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .index import CustomIndex

T = TypeVar("T")


def _delegate(name: str) -> Callable[..., Any]:
    """A coroutine method that runs ``CustomIndex.<name>`` on the index's worker thread, with the
    synchronous method's name, signature and docstring (``inspect.signature`` shows them)."""
    sync_method = getattr(CustomIndex, name)

    @functools.wraps(sync_method)
    async def method(self: AsyncCustomIndex, *args: Any, **kwargs: Any) -> Any:
        return await self._run(getattr(self.sync, name), *args, **kwargs)

    return method


class AsyncCustomIndex:
    """Use ``index = await AsyncCustomIndex.open(uri, ...)`` (same arguments as ``CustomIndex``,
    ``project=`` included), or wrap an open one with ``AsyncCustomIndex(index)``. Every operation
    of ``CustomIndex`` (:data:`OPERATIONS`) is here as a coroutine with the same arguments and
    result; ``await index.for_project(name)`` gives an ``AsyncCustomIndex`` (with its own worker
    thread) on the same model and store, scoped to that project."""

    #: The methods of ``CustomIndex`` offered as coroutines.
    OPERATIONS = ("add", "add_many", "query", "remove", "get", "list_assets", "vacuum", "count", "info",
                  "for_project")

    def __init__(self, index: CustomIndex):
        self.sync = index
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vecsim")

    @classmethod
    async def open(cls, *args: Any, **kwargs: Any) -> AsyncCustomIndex:
        """``CustomIndex(*args, **kwargs)``, opened on a worker thread (``project=...`` included)."""
        return cls(await asyncio.to_thread(CustomIndex, *args, **kwargs))

    @property
    def project(self) -> str:
        """The project this index works in (``CustomIndex.project``)."""
        return self.sync.project

    @functools.wraps(CustomIndex.for_project)
    async def for_project(self, project: str) -> AsyncCustomIndex:
        # CustomIndex.for_project, wrapped: an AsyncCustomIndex on the same model and store, scoped
        # to ``project``, with its own worker thread (one project's calls do not queue behind
        # another's). It does no I/O, so it runs here, not on the worker; closing the result stops
        # its thread and leaves the shared store open.
        return AsyncCustomIndex(self.sync.for_project(project))

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    add = _delegate("add")
    add_many = _delegate("add_many")
    query = _delegate("query")
    remove = _delegate("remove")
    get = _delegate("get")
    list_assets = _delegate("list_assets")
    vacuum = _delegate("vacuum")
    count = _delegate("count")
    info = _delegate("info")

    async def close(self) -> None:
        await self._run(self.sync.close)
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> AsyncCustomIndex:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
