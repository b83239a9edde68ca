"""Shared fixtures. Media is made here or comes from scikit-image's bundled photos: the tests
need nothing from ../shared and no network."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from vecsim.sample_media import sample_photos

from .backends import BACKENDS, INDEXES, backend_uri, open_index

PHOTO_NAMES = ["astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "immunohistochemistry", "clock"]


@pytest.fixture(scope="session")
def photos() -> dict[str, Image.Image]:
    return sample_photos(PHOTO_NAMES)


MILVUS_IMAGE = "milvusdb/milvus:v2.5.14"
QDRANT_IMAGE = "qdrant/qdrant:v1.15.4"
QDRANT_API_KEY = "vecsim-test-key"


@pytest.fixture(scope="session")
def milvus_server_dir(tmp_path_factory):
    """The fresh base directory of the session's Milvus server (data, logs, ``milvus.pid``)."""
    return tmp_path_factory.mktemp("milvus")


@pytest.fixture(scope="session")
def milvus_server_uri(milvus_server_dir):
    """A Milvus 2.3.5 standalone server (PyPI ``milvus``) in its own network namespace, for the
    whole session; skips with the reason where it cannot start. Yields (uri, store options)."""
    from vecsim.testing.milvus_server import MilvusServerUnavailable, milvus_server

    server = milvus_server(milvus_server_dir)
    try:
        uri = server.__enter__()
    except MilvusServerUnavailable as exc:
        pytest.skip(f"no Milvus server: {exc}")
    try:
        yield uri, {}
    finally:
        server.__exit__(None, None, None)


def _docker_container(make):
    """Start a testcontainers container, or skip at once (with the reason) where Docker is not
    running: the constructor raises ``docker.errors.DockerException`` within milliseconds."""
    tc = pytest.importorskip("testcontainers.core.container", reason="testcontainers is not installed")
    import docker.errors

    try:
        container = make()
    except docker.errors.DockerException as exc:
        pytest.skip(f"Docker is not available: {exc}")
    assert isinstance(container, tc.DockerContainer)
    return container


@pytest.fixture(scope="session")
def milvus_container_uri():
    from testcontainers.community.milvus import MilvusContainer

    container = _docker_container(lambda: MilvusContainer(MILVUS_IMAGE))
    with container:
        yield container.get_connection_url(), {}


@pytest.fixture(scope="session")
def qdrant_container_uri():
    from testcontainers.community.qdrant import QdrantContainer

    container = _docker_container(lambda: QdrantContainer(QDRANT_IMAGE, api_key=QDRANT_API_KEY))
    with container:
        host, port = container.get_container_host_ip(), container.get_exposed_port(6333)
        yield f"qdrant://{host}:{port}", {"api_key": QDRANT_API_KEY}


@pytest.fixture(params=list(BACKENDS))
def backend(request, tmp_path):
    """(index URI, store options) on every backend: tests that take it form the conformance suite."""
    uri, options, cleanup = backend_uri(request, request.param, tmp_path)
    yield uri, options
    cleanup()


@pytest.fixture(scope="session")
def vecsim_service(tmp_path_factory):
    """A real ``vecsim serve`` process on Qdrant Edge, for the conformance suite's "service"
    index (RemoteIndex); stopped by its PID at the end of the session."""
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    from vecsim.testing.serve import start_service, stop_service

    folder = tmp_path_factory.mktemp("vecsim-service")
    service = start_service(f"qdrant-edge:{folder / 'edge'}", folder / "data",
                            env={"rate_limit_per_s": 1000, "rate_burst": 1000, "request_timeout_s": 600,
                                 "sync_concurrency": 2})
    yield service
    stop_service(service)


@pytest.fixture(params=INDEXES)
def index(request, tmp_path):
    """An empty index on every backend, and a RemoteIndex over the service: the SDK's
    conformance suite runs on each."""
    idx, cleanup = open_index(request, request.param, tmp_path)
    try:
        yield idx
    finally:
        idx.close()
        cleanup()


@pytest.fixture
def filled_index(index, photos):
    """An index holding the sample photos (task_id = photo name) with nested unicode metadata."""
    index.add_many(
        list(photos.values()),
        metadata=[{"name": n, "tags": ["ünïcödé", "写真"], "nested": {"n": i, "ok": True}} for i, n in enumerate(photos)],
        task_ids=list(photos),
    )
    return index


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture
def redis_url(tmp_path):
    """A redis-server (Debian's package) on a free loopback port, for one test; skips where absent."""
    import shutil
    import socket
    import subprocess
    import time

    from vecsim.testing.serve import free_port

    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (Debian package redis-server; .ci/run installs it)")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", "",
                             "--appendonly", "yes", "--protected-mode", "yes"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "redis-server did not start"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
