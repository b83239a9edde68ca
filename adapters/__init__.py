"""Vector-store adapters, shipped as ``vecsim.adapters``: one module per engine.

:func:`open_store` picks the adapter from the index URI:

- a local path (``vecsim.db``, ``/data/photos.db``): Milvus Lite, embedded, no server;
- ``http://host:19530``, ``https://...`` or ``milvus://host:port``: a Milvus server;
- ``qdrant-local:PATH``: Qdrant's embedded local mode (qdrant-client; exact search only);
- ``qdrant-edge:PATH``: Qdrant's own engine in-process (qdrant-edge-py; real HNSW, quantization);
- ``qdrant://host:6333`` (``qdrants://`` for TLS): a Qdrant server (options ``api_key`` or
  ``token``, ``prefer_grpc``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vecsim.errors import IndexConfigError
from vecsim.store import CollectionSpec, VectorStore


def open_store(uri: str, collection: str, create_spec: CollectionSpec, **options: Any) -> VectorStore:
    """Open (or create, with ``create_spec``) a collection at ``uri``.

    ``options`` go to the adapter (Milvus: ``token``, ``db_name``, ``consistency``; Qdrant server:
    ``api_key`` / ``token``, ``prefer_grpc``).
    """
    from .milvus import MilvusStore, is_server_uri

    if uri.startswith("qdrant-edge:"):
        try:
            from .qdrant_edge import QdrantEdgeStore
        except ImportError as exc:
            raise IndexConfigError(f"{uri!r} needs qdrant-edge-py: pip install 'vecsim[qdrant]'") from exc
        return QdrantEdgeStore(uri, collection, create_spec, **options)
    if uri.startswith(("qdrant-local:", "qdrant://", "qdrants://")):
        try:
            from .qdrant import QdrantStore
        except ImportError as exc:
            raise IndexConfigError(f"{uri!r} needs qdrant-client: pip install 'vecsim[qdrant]'") from exc
        return QdrantStore(uri, collection, create_spec, **options)
    if uri.startswith("milvus://"):
        uri = "http://" + uri[len("milvus://") :]
    if is_server_uri(uri):
        return MilvusStore(uri, collection, create_spec, **options)
    if "://" in uri or ":" in uri.split("/", 1)[0]:
        raise IndexConfigError(
            f"unsupported index URI {uri!r}: use a local *.db path (Milvus Lite), http://host:port (Milvus "
            "server), qdrant-local:PATH, qdrant-edge:PATH or qdrant://host:port"
        )
    path = Path(uri)
    if path.suffix != ".db":
        raise IndexConfigError(f"a Milvus Lite index is a file ending in .db, got {uri!r}")
    if path.parent and not path.parent.exists():
        raise IndexConfigError(f"the folder of {uri!r} does not exist")
    return MilvusStore(str(path), collection, create_spec, **options)
