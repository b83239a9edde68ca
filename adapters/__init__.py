"""Vector-store adapters, shipped as ``vecsim.adapters``: one module per engine, on one shared core
(``_common.py``: row keys, records, the generations scan, collection names, the Qdrant index
layout and the error boundary).

:func:`open_store` picks the adapter from the index URI:

- a local path (``vecsim.db``, ``/data/photos.db``): Milvus Lite, embedded, no server;
- ``http://host:19530``, ``https://...`` or ``milvus://host:port``: a Milvus server;
- ``qdrant-local:PATH``: Qdrant's embedded local mode (qdrant-client; exact search only);
- ``qdrant-edge:PATH``: Qdrant's own engine in-process (qdrant-edge-py; real HNSW, quantization);
- ``qdrant://host:6333`` (``qdrants://`` for TLS): a Qdrant server.

Each engine takes a typed options object (:class:`MilvusOptions`, :class:`QdrantOptions`,
:class:`QdrantEdgeOptions`). Only the adapter modules import an engine's client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vecsim.errors import IndexConfigError
from vecsim.store import CollectionSpec, VectorStore

from .options import (
    MilvusOptions,
    QdrantEdgeOptions,
    QdrantOptions,
    StoreOptions,
    check_options,
    options_from_kwargs,
)

__all__ = ["MilvusOptions", "QdrantEdgeOptions", "QdrantOptions", "StoreOptions", "engine_of", "open_store"]

_SERVER_SCHEMES = ("http://", "https://", "tcp://", "grpc://")


def engine_of(uri: str) -> str:
    """The engine a URI names (``milvus-lite``, ``milvus``, ``qdrant-local``, ``qdrant``,
    ``qdrant-edge``), or an IndexConfigError for a URI no adapter takes."""
    if uri.startswith("qdrant-edge:"):
        return "qdrant-edge"
    if uri.startswith("qdrant-local:"):
        return "qdrant-local"
    if uri.startswith(("qdrant://", "qdrants://")):
        return "qdrant"
    if uri.startswith(("milvus://", *_SERVER_SCHEMES)):
        return "milvus"
    if "://" in uri or ":" in uri.split("/", 1)[0]:
        raise IndexConfigError(
            f"unsupported index URI {uri!r}: use a local *.db path (Milvus Lite), http://host:port (Milvus "
            "server), qdrant-local:PATH, qdrant-edge:PATH or qdrant://host:port"
        )
    return "milvus-lite"


def open_store(
    uri: str,
    collection: str,
    create_spec: CollectionSpec,
    options: StoreOptions | None = None,
    **legacy_kwargs: Any,
) -> VectorStore:
    """Open (or create, with ``create_spec``) a collection at ``uri``.

    ``options`` is the options object of the URI's engine (:class:`MilvusOptions` for a ``*.db``
    path or a Milvus server, :class:`QdrantOptions` for ``qdrant://`` / ``qdrant-local:``,
    :class:`QdrantEdgeOptions` for ``qdrant-edge:``). For backward compatibility its fields may
    instead be given as keyword arguments (``token=...``; Qdrant also takes ``token`` for
    ``api_key``); a key the engine does not take is an :class:`~vecsim.errors.IndexConfigError`.
    """
    engine = engine_of(uri)
    if options is not None and legacy_kwargs:
        raise IndexConfigError(f"pass either an options object or keyword options for {uri}, not both "
                               f"(got {', '.join(sorted(legacy_kwargs))})")
    opts = (check_options(engine, uri, options) if options is not None
            else options_from_kwargs(engine, uri, legacy_kwargs))
    if engine == "qdrant-edge":
        try:
            from .qdrant_edge import QdrantEdgeStore
        except ImportError as exc:
            raise IndexConfigError(f"{uri!r} needs qdrant-edge-py: pip install 'vecsim[qdrant]'") from exc
        return QdrantEdgeStore(uri, collection, create_spec, opts)  # type: ignore[arg-type]
    if engine in ("qdrant-local", "qdrant"):
        try:
            from .qdrant import QdrantStore
        except ImportError as exc:
            raise IndexConfigError(f"{uri!r} needs qdrant-client: pip install 'vecsim[qdrant]'") from exc
        return QdrantStore(uri, collection, create_spec, opts)  # type: ignore[arg-type]
    from .milvus import MilvusStore

    if engine == "milvus":
        if uri.startswith("milvus://"):
            uri = "http://" + uri[len("milvus://") :]
        return MilvusStore(uri, collection, create_spec, opts)  # type: ignore[arg-type]
    path = Path(uri)
    if path.suffix != ".db":
        raise IndexConfigError(f"a Milvus Lite index is a file ending in .db, got {uri!r}")
    if path.parent and not path.parent.exists():
        raise IndexConfigError(f"the folder of {uri!r} does not exist")
    return MilvusStore(str(path), collection, create_spec, opts)  # type: ignore[arg-type]
