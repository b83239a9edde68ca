"""Vector-store adapters, shipped as ``vecsim.adapters``: one module per engine, on one shared core
(``_common.py``: row keys, records, the generations scan, collection names, the Qdrant index
layout and the error boundary).

:func:`open_store` picks the adapter from the index URI:

- a local path (``vecsim.db``, ``/data/photos``): the **embedded default**, no server. A new path
  is created as a Qdrant Edge index (Qdrant's own engine in-process: HNSW, fast bulk loads; see
  ``docs/index-configs.md`` for the measurements behind the choice); a path that already holds a
  Milvus Lite index (what earlier vecsim versions created) keeps opening as Milvus Lite;
- ``milvus-lite:PATH``: Milvus Lite, embedded (to create a new Milvus Lite index explicitly);
- ``qdrant-edge:PATH``: Qdrant Edge, embedded, explicitly;
- ``http://host:19530``, ``https://...`` or ``milvus://host:port``: a Milvus server;
- ``qdrant-local:PATH``: Qdrant's embedded local mode (qdrant-client; exact search only);
- ``qdrant://host:6333`` (``qdrants://`` for TLS): a Qdrant server.

Each engine takes a typed options object (:class:`MilvusOptions`, :class:`QdrantOptions`,
:class:`QdrantEdgeOptions`). Only the adapter modules import an engine's client.

A store is scoped to one project (``open_store(..., project="acme")``; ``""``, the default
project, when not given) and ``store.for_project(name)`` gives a view of the same open collection
scoped to another: ``docs/tenancy.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vecsim.errors import IndexConfigError
from vecsim.index_config import FlatIndex, HnswIndex, IndexConfig
from vecsim.store import CollectionSpec, VectorStore
from vecsim.validate import DEFAULT_PROJECT, check_project

from .options import (
    MilvusOptions,
    QdrantEdgeOptions,
    QdrantOptions,
    StoreOptions,
    check_options,
    options_from_kwargs,
)

__all__ = ["MilvusOptions", "QdrantEdgeOptions", "QdrantOptions", "StoreOptions", "default_index", "engine_of",
           "local_engine", "open_store"]

_SERVER_SCHEMES = ("http://", "https://", "tcp://", "grpc://")


#: The scheme that names Milvus Lite explicitly (a plain path picks by what is there).
LITE_SCHEME = "milvus-lite:"


def engine_of(uri: str) -> str:
    """The engine a URI names (``milvus-lite``, ``milvus``, ``qdrant-local``, ``qdrant``,
    ``qdrant-edge``), or an IndexConfigError for a URI no adapter takes. A plain local path is
    the embedded default: :func:`local_engine`."""
    if uri.startswith("qdrant-edge:"):
        return "qdrant-edge"
    if uri.startswith(LITE_SCHEME):
        return "milvus-lite"
    if uri.startswith("qdrant-local:"):
        return "qdrant-local"
    if uri.startswith(("qdrant://", "qdrants://")):
        return "qdrant"
    if uri.startswith(("milvus://", *_SERVER_SCHEMES)):
        return "milvus"
    if "://" in uri or ":" in uri.split("/", 1)[0]:
        raise IndexConfigError(
            f"unsupported index URI {uri!r}: use a local path (the embedded default), milvus-lite:PATH, "
            "qdrant-edge:PATH, qdrant-local:PATH, http://host:port (Milvus server) or qdrant://host:port"
        )
    return local_engine(Path(uri).expanduser())


def is_milvus_lite_path(path: Path) -> bool:
    """Whether ``path`` holds a Milvus Lite index: a file (the single-file format of Milvus Lite
    2.x), or a folder laid out as Milvus Lite 3 lays it out."""
    if path.is_file():
        return True
    return path.is_dir() and (path / "LOCK").exists() and ((path / "collections").is_dir()
                                                          or (path / "databases").is_dir())


def local_engine(path: Path) -> str:
    """The engine of a plain local path: Milvus Lite where one is already there, else Qdrant Edge
    (the embedded default, also for a new path)."""
    return "milvus-lite" if is_milvus_lite_path(path) else "qdrant-edge"


def open_store(
    uri: str,
    collection: str,
    create_spec: CollectionSpec,
    options: StoreOptions | None = None,
    project: str = DEFAULT_PROJECT,
    **legacy_kwargs: Any,
) -> VectorStore:
    """Open (or create, with ``create_spec``) a collection at ``uri``, scoped to ``project``.

    ``project``: every read and write of the store is confined to that project (``""``: the
    default project); ``store.for_project(other)`` gives views of the same connection scoped to
    others. A name :func:`~vecsim.validate.check_project` refuses is an
    :class:`~vecsim.errors.InvalidRequestError` (nothing is opened or created); a project other than
    ``""`` on a collection without project isolation (``spec.projects`` false: one made by vecsim <
    0.4, or created here from a spec without it) is an :class:`~vecsim.errors.IndexConfigError`.
    ``create_spec.projects`` decides whether a *new* collection isolates projects (``CustomIndex``
    always sets it); an existing collection keeps what it was made with.

    ``options`` is the options object of the URI's engine (:class:`MilvusOptions` for a ``*.db``
    path or a Milvus server, :class:`QdrantOptions` for ``qdrant://`` / ``qdrant-local:``,
    :class:`QdrantEdgeOptions` for ``qdrant-edge:``). For backward compatibility its fields may
    instead be given as keyword arguments (``token=...``; Qdrant also takes ``token`` for
    ``api_key``); a key the engine does not take is an :class:`~vecsim.errors.IndexConfigError`.
    """
    project = check_project(project)
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
            raise IndexConfigError(f"{uri!r} needs qdrant-edge-py: pip install qdrant-edge-py") from exc
        return QdrantEdgeStore(uri, collection, create_spec, opts, project)  # type: ignore[arg-type]
    if engine in ("qdrant-local", "qdrant"):
        try:
            from .qdrant import QdrantStore
        except ImportError as exc:
            raise IndexConfigError(f"{uri!r} needs qdrant-client: pip install 'vecsim[qdrant]'") from exc
        return QdrantStore(uri, collection, create_spec, opts, project)  # type: ignore[arg-type]
    from .milvus import MilvusStore

    if engine == "milvus":
        if uri.startswith("milvus://"):
            uri = "http://" + uri[len("milvus://") :]
        return MilvusStore(uri, collection, create_spec, opts, project)  # type: ignore[arg-type]
    path = Path(uri.removeprefix(LITE_SCHEME)).expanduser()
    if not path.exists() and path.suffix != ".db":
        raise IndexConfigError(f"a new Milvus Lite index is a path ending in .db, got {uri!r}")
    if path.parent and not path.parent.exists():
        raise IndexConfigError(f"the folder of {uri!r} does not exist")
    return MilvusStore(str(path), collection, create_spec, opts, project)  # type: ignore[arg-type]


def default_index(uri: str) -> IndexConfig:
    """The index config a new collection at ``uri`` gets when none is named: HNSW on Qdrant Edge
    (exact search over a million rows costs ~50 ms a query vector there; with these defaults a
    search at 1 M rows takes ~7 ms and finds the right asset as exact search does,
    docs/index-configs.md), FLAT elsewhere (Milvus Lite's search cost is its own per-row
    bookkeeping, not the vector distance; a server's FLAT is exact and what earlier versions
    created)."""
    if engine_of(uri) == "qdrant-edge":
        return embedded_hnsw()
    return FlatIndex()


def embedded_hnsw() -> IndexConfig:
    """The default HNSW of the embedded default engine (Qdrant Edge)."""
    return HnswIndex(**EMBEDDED_HNSW)


#: Measured at 1 M rows (docs/index-configs.md, "The embedded default"): efConstruction 100 builds
#: the graph in ~7 min on two cores; ef 1024 keeps 0.976 of the exact top-10 assets and every
#: right asset in 7 ms (ef 256: 0.890 in 3.5 ms; 2048: 0.989 in 9.6 ms).
EMBEDDED_HNSW = {"M": 16, "efConstruction": 100, "ef": 1024}
