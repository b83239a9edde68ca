"""The backends the conformance suite runs on, in one table.

Each backend gives a fresh index URI for a test: an embedded one in the test's own folder, a
server one (started once per session by a fixture in ``conftest.py``) as the server's URI, with
every collection dropped after the test. Adding a backend = an adapter module in ``adapters/``
plus one entry here (and a server fixture if it needs one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Backend:
    name: str
    #: Embedded: folder -> URI. Server: None, the URI comes from ``server_fixture``.
    make_uri: Callable[[Path], str] | None = None
    #: Name of the session fixture that yields a running server (skips when there is none).
    server_fixture: str | None = None
    #: The optional Python module it needs: the tests skip, saying so, where it is not installed.
    requires: str | None = None


BACKENDS = {
    b.name: b
    for b in [
        Backend("milvus-lite", make_uri=lambda d: f"milvus-lite:{d / 'test.db'}"),
        Backend("qdrant-local", make_uri=lambda d: f"qdrant-local:{d / 'qdrant'}", requires="qdrant_client"),
        Backend("qdrant-edge", make_uri=lambda d: f"qdrant-edge:{d / 'edge'}", requires="qdrant_edge"),
        Backend("milvus-server", server_fixture="milvus_server_uri"),  # PyPI milvus 2.3.5, no Docker
        Backend("milvus-docker", server_fixture="milvus_container_uri"),  # testcontainers, Milvus 2.5
        Backend("qdrant-docker", server_fixture="qdrant_container_uri"),  # testcontainers, Qdrant 1.15
    ]
}


#: The SDK conformance suite's indexes: every backend, and "service": a RemoteIndex over a real
#: ``vecsim serve`` process (on Qdrant Edge, started once per session), each test in a fresh
#: project of its own, so that the remote client and the embedded SDK cannot drift apart.
INDEXES = [*BACKENDS, "service"]


def remote_index(service):
    """A RemoteIndex on a new, empty project of ``service`` (its key made as ``vecsim keys
    create`` makes one, in the service's key store)."""
    import uuid

    from vecsim import RemoteIndex
    from vecsim.server.keys import KeyStore

    key = KeyStore(service.data_dir / "keys.sqlite").create("t" + uuid.uuid4().hex[:12]).key
    return RemoteIndex(service.url, api_key=key)


def open_index(request, name: str, folder: Path):
    """(an index of ``INDEXES[name]``, its cleanup) for one test or module."""
    if name == "service":
        return remote_index(request.getfixturevalue("vecsim_service")), lambda: None
    from vecsim import CustomIndex

    uri, options, cleanup = backend_uri(request, name, folder)
    return CustomIndex(uri, **options), cleanup


def drop_all_collections(uri: str, **options: str) -> None:
    """Empty a test server between tests (vecsim keeps two engine collections per collection)."""
    if uri.startswith(("qdrant://", "qdrants://")):
        from qdrant_client import QdrantClient

        client = QdrantClient(url="http://" + uri.split("://", 1)[1], api_key=options.get("api_key"))
        for c in client.get_collections().collections:
            client.delete_collection(c.name)
        client.close()
    else:
        from pymilvus import MilvusClient

        client = MilvusClient(uri=uri, **options)
        for name in client.list_collections():
            client.drop_collection(name)
        client.close()


def backend_uri(request, name: str, folder: Path):
    """(index URI, store options, cleanup) of backend ``name`` for one test or module."""
    backend = BACKENDS[name]
    if backend.requires:
        pytest.importorskip(backend.requires, reason=f"{backend.requires} is not installed")
    if backend.make_uri is not None:
        return backend.make_uri(folder), {}, lambda: None
    uri, options = request.getfixturevalue(backend.server_fixture)
    return uri, options, lambda: drop_all_collections(uri, **options)
