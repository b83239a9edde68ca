"""One lock per ``task_id``, project and collection, shared by every index object in the process.

``add`` checks that a ``task_id`` is new and, seconds later (after decoding and embedding), commits
it. Two adds of the same new ``task_id`` at once (two threads, on one ``CustomIndex`` or on two
opened on the same URI) would both pass the check and the later commit would silently replace
the earlier one. Holding this lock from the check to the commit makes the pair one step: the
second add then sees the first and raises :class:`~vecsim.errors.TaskExistsError` (or, with
``replace=True``, replaces it whole). Two projects may hold the same ``task_id`` independently, so
the project is part of the key: their adds never wait for each other.

The lock is per process. The embedded engines (Milvus Lite, Qdrant Edge) open an index in one
process at a time, so for them this is complete; on a server shared by several processes the
check and the commit are not atomic across processes (docs/concepts.md says what that means).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_guard = threading.Lock()
#: (scope..., task_id) -> [lock, number of holders and waiters]
_locks: dict[tuple[str, ...], list] = {}


def lock_scope(uri: str, collection: str, project: str = "") -> tuple[str, str, str]:
    """The key under which two index objects share locks: the same store, collection and
    project. Local paths are resolved, so ``x.db`` and ``./x.db`` are one scope."""
    if "://" not in uri:
        prefix, sep, path = uri.rpartition(":") if uri.startswith(("qdrant-edge:", "qdrant-local:")) else ("", "", uri)
        uri = f"{prefix}{sep}{os.path.realpath(path)}"
    return uri, collection, project


@contextmanager
def task_lock(scope: tuple[str, ...], task_id: str) -> Iterator[None]:
    """Hold the lock of ``task_id`` in ``scope`` (blocking until other holders are done)."""
    key = (*scope, task_id)
    with _guard:
        entry = _locks.setdefault(key, [threading.Lock(), 0])
        entry[1] += 1
    try:
        with entry[0]:
            yield
    finally:
        with _guard:
            entry[1] -= 1
            if entry[1] == 0:
                del _locks[key]
