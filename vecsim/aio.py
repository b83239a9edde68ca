"""``AsyncCustomIndex``: the same operations as :class:`~vecsim.CustomIndex`, as coroutines.

It runs the synchronous index on one worker thread, so the event loop never blocks on decoding,
model inference or the store, and calls on one index run in the order they were awaited.
There is no second copy of the logic: every method delegates to ``CustomIndex``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .index import CustomIndex
from .media import MediaInput
from .schema import AddManyResult, AddResult, AssetInfo, IndexInfo, QueryResult, RemoveResult, VacuumResult

T = TypeVar("T")


class AsyncCustomIndex:
    """Use ``index = await AsyncCustomIndex.open(uri, ...)`` (same arguments as ``CustomIndex``),
    or wrap an open one with ``AsyncCustomIndex(index)``."""

    def __init__(self, index: CustomIndex):
        self.sync = index
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vecsim")

    @classmethod
    async def open(cls, *args: Any, **kwargs: Any) -> AsyncCustomIndex:
        return cls(await asyncio.to_thread(CustomIndex, *args, **kwargs))

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def add(
        self, media: MediaInput, metadata: dict[str, Any] | None = None, task_id: str | None = None,
        *, replace: bool = False,
    ) -> AddResult:
        return await self._run(self.sync.add, media, metadata, task_id, replace=replace)

    async def add_many(
        self, media: Iterable[MediaInput] | MediaInput, metadata: Any = None,
        task_ids: Sequence[str] | None = None, *, replace: bool = False,
    ) -> AddManyResult:
        return await self._run(self.sync.add_many, media, metadata, task_ids, replace=replace)

    async def query(self, media: MediaInput, top_k: int = 5, threshold: float | None = None,
                    rotations: bool | None = None) -> QueryResult:
        return await self._run(self.sync.query, media, top_k, threshold, rotations)

    async def remove(self, task_id: str) -> RemoveResult:
        return await self._run(self.sync.remove, task_id)

    async def get(self, task_id: str) -> AssetInfo:
        return await self._run(self.sync.get, task_id)

    async def vacuum(self) -> VacuumResult:
        return await self._run(self.sync.vacuum)

    async def count(self) -> int:
        return await self._run(self.sync.count)

    async def info(self) -> IndexInfo:
        return await self._run(self.sync.info)

    async def close(self) -> None:
        await self._run(self.sync.close)
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> AsyncCustomIndex:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
