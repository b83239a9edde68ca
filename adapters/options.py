"""Typed connection options of each engine, and the keyword arguments they replace.

``open_store(uri, ..., options=MilvusOptions(token=...))``; the older
``open_store(uri, ..., token=...)`` (and ``CustomIndex(uri, token=...)``, the CLI) still works:
:func:`options_from_kwargs` builds the options object of the URI's engine and refuses a key that
engine does not take. No engine client is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Union

from vecsim.errors import IndexConfigError

CONSISTENCY_LEVELS = ("Strong", "Bounded", "Session", "Eventually")
DEFAULT_AUTO_OPTIMIZE = 20_000  # unindexed rows that make the next Qdrant Edge search build HNSW first


@dataclass(frozen=True)
class MilvusOptions:
    """Milvus Lite (``*.db``) and a Milvus server (``http://host:19530``).

    ``token``: ``user:password`` or an API key (a server); ``db_name``: the Milvus database;
    ``consistency``: the level of every read on a server (``Strong``, ``Bounded``, ``Session`` or
    ``Eventually``; default: ``Bounded``, then ``Session`` once this store writes). Milvus Lite
    reads are always strong. ``timeout``: seconds each request to a server may take, and the
    deadline of a reconnection (None: pymilvus's own, which waits for ever on a server that
    accepts the connection but never answers); a request past it is a
    :class:`~vecsim.errors.StoreUnavailableError`. Opening a collection that has to be loaded into
    memory first waits at least :data:`~adapters.milvus.LOAD_TIMEOUT_S`. Milvus Lite ignores it.
    """

    token: str | None = None
    db_name: str | None = None
    consistency: str | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.consistency is not None and self.consistency not in CONSISTENCY_LEVELS:
            raise IndexConfigError(
                f"consistency must be one of {', '.join(CONSISTENCY_LEVELS)}, got {self.consistency!r}")
        _check_timeout(self.timeout)


@dataclass(frozen=True)
class QdrantOptions:
    """A Qdrant server (``qdrant://host:6333``, ``qdrants://``) and the qdrant-client local mode
    (``qdrant-local:PATH``, which ignores them). ``api_key`` (the keyword ``token`` is taken for
    it), ``prefer_grpc``, ``timeout`` (seconds per request)."""

    api_key: str | None = None
    prefer_grpc: bool = False
    timeout: int | None = None

    def __post_init__(self) -> None:
        _check_timeout(self.timeout)


def _check_timeout(timeout: Any) -> None:
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise IndexConfigError(f"timeout must be a number of seconds above 0, got {timeout!r}")


@dataclass(frozen=True)
class QdrantEdgeOptions:
    """Qdrant Edge (``qdrant-edge:PATH``). ``auto_optimize``: unindexed rows that make a search of
    an HNSW collection build the graph first (None: build only when asked), for this store object;
    ``indexing_threshold_kb`` (engine default when None) and ``full_scan_threshold_kb`` apply when
    the collection is created (they are saved with its shards); ``hnsw_ef``: the search breadth of
    the HNSW graph for this store object, instead of the ``ef`` the collection was created with
    (more: higher recall, slower searches; docs/index-configs.md has the measured curve)."""

    auto_optimize: int | None = DEFAULT_AUTO_OPTIMIZE
    indexing_threshold_kb: int | None = None
    full_scan_threshold_kb: int = 10_000
    hnsw_ef: int | None = None

    def __post_init__(self) -> None:
        if self.hnsw_ef is not None and (isinstance(self.hnsw_ef, bool) or not isinstance(self.hnsw_ef, int)
                                         or not 1 <= self.hnsw_ef <= 1_000_000):
            raise IndexConfigError(f"hnsw_ef must be an integer from 1 to 1000000, got {self.hnsw_ef!r}")


StoreOptions = Union[MilvusOptions, QdrantOptions, QdrantEdgeOptions]

#: The options class of each engine (``VectorStore.engine``).
OPTIONS_BY_ENGINE: dict[str, type] = {
    "milvus-lite": MilvusOptions,
    "milvus": MilvusOptions,
    "qdrant-local": QdrantOptions,
    "qdrant": QdrantOptions,
    "qdrant-edge": QdrantEdgeOptions,
}
#: Older keyword names, per options class.
_ALIASES: dict[type, dict[str, str]] = {QdrantOptions: {"token": "api_key"}}


def options_from_kwargs(engine: str, uri: str, kwargs: dict[str, Any]) -> StoreOptions:
    """The options object of ``engine`` from keyword arguments; an unknown key is an
    :class:`~vecsim.errors.IndexConfigError` naming it and the engine."""
    cls = OPTIONS_BY_ENGINE[engine]
    names = {f.name for f in fields(cls)}
    aliases = _ALIASES.get(cls, {})
    values: dict[str, Any] = {}
    for key, value in kwargs.items():
        name = aliases.get(key, key)
        if name not in names:
            takes = ", ".join(sorted(names | set(aliases)))
            raise IndexConfigError(f"{key!r} is not an option of {engine} ({uri}); {cls.__name__} takes {takes}")
        if values.get(name) is not None and (value is None or key != name):
            continue  # the first value given wins over None; the option's own name over an alias
        values[name] = value
    return cls(**values)


def check_options(engine: str, uri: str, options: Any) -> StoreOptions:
    """``options`` if it is the options class of ``engine``, else an IndexConfigError."""
    cls = OPTIONS_BY_ENGINE[engine]
    if not isinstance(options, cls):
        raise IndexConfigError(f"{uri} is {engine}, which takes {cls.__name__}, not {type(options).__name__}")
    return options
