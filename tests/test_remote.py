"""RemoteIndex / AsyncRemoteIndex beyond the shared conformance suite (which runs them through the
``index`` fixture): the interface matches CustomIndex's, async tasks, typed errors, the retry
policy, streamed uploads and the CLI over a service."""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import subprocess
import sys
import time

import httpx
import pytest

import vecsim
from vecsim import (
    AsyncCustomIndex, AsyncRemoteIndex, AsyncRemoteTask, AuthenticationError, CorruptMediaError, CustomIndex,
    InvalidRequestError, RateLimitedError, RemoteIndex, RemoteTask, RemoteTimeoutError, ServiceUnavailableError,
    StoreUnavailableError, TaskExistsError, TaskNotFoundError, UnsupportedOperationError,
)
from vecsim import edits

from .backends import remote_index
from .conftest import encode

pytest.importorskip("fastapi", reason="the serve extra is not installed")


# --- the interface ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", AsyncCustomIndex.OPERATIONS)
def test_every_operation_takes_the_sdks_arguments(name):
    """Each operation of CustomIndex is on RemoteIndex and AsyncRemoteIndex with the same
    parameters, in the same order, with the same defaults (a remote call may add keyword-only
    wait / callback_url after them)."""
    sdk = inspect.signature(getattr(CustomIndex, name)).parameters
    for cls in (RemoteIndex, AsyncRemoteIndex):
        method = getattr(cls, name)
        remote = inspect.signature(method).parameters
        assert list(remote)[: len(sdk)] == list(sdk), (cls.__name__, name)
        for p in sdk:
            assert (remote[p].default, remote[p].kind) == (sdk[p].default, sdk[p].kind), (cls.__name__, name, p)
        assert set(list(remote)[len(sdk):]) <= {"wait", "callback_url"}, (cls.__name__, name)
        assert inspect.iscoroutinefunction(method) == (cls is AsyncRemoteIndex), (cls.__name__, name)


@pytest.fixture(scope="module")
def remote(vecsim_service, photos):
    with remote_index(vecsim_service) as idx:
        idx.add_many([photos["coffee"], photos["rocket"]], task_ids=["coffee", "rocket"],
                     metadata=[{"n": 1}, {"n": 2}])
        yield idx


# --- async tasks, results and errors --------------------------------------------------------------


def test_wait_false_gives_a_task_with_the_sync_result(remote, photos):
    task = remote.query(edits.center_crop(0.6)(photos["coffee"]), wait=False)
    assert isinstance(task, RemoteTask) and task.kind == "query" and task.status in ("queued", "running", "completed")
    result = task.wait(timeout=60)
    assert isinstance(result, vecsim.QueryResult) and result.output[0].task_id == "coffee"
    assert result.source.startswith("<PIL.Image")  # the caller's name for the input, as CustomIndex says it
    again = remote.task(task.id)  # the same task read back by its id
    assert again.status == "completed" and again.result().output[0].task_id == "coffee"

    add = remote.add(photos["camera"], {"k": "v"}, "camera", wait=False).wait(timeout=60)
    assert add.task_id == "camera" and remote.get("camera").metadata == {"k": "v"}
    removed = remote.remove("camera", wait=False).wait(timeout=60)
    assert removed.removed_frames == 1
    failed = remote.remove("camera", wait=False)
    with pytest.raises(TaskNotFoundError):
        failed.wait(timeout=60)
    assert failed.status == "failed"


def test_errors_are_the_sdks_typed_errors(remote, photos, tmp_path):
    jpeg = encode(photos["coffee"], "JPEG")
    with pytest.raises(CorruptMediaError) as err:
        remote.add(jpeg[: len(jpeg) // 2])
    assert err.value.status == 422 and err.value.code == "corrupt_media" and err.value.request_id
    assert str(err.value).startswith(f"<bytes: {len(jpeg) // 2}>: ")  # names the input as CustomIndex does
    with pytest.raises(TaskExistsError):
        remote.add(photos["coffee"], task_id="coffee")
    with pytest.raises(TaskNotFoundError):
        remote.get("nope")
    with pytest.raises(InvalidRequestError):
        remote.query(photos["coffee"], top_k=0)
    with pytest.raises(UnsupportedOperationError, match="operator"):
        remote.vacuum()
    with pytest.raises(UnsupportedOperationError, match="belongs to project"):
        remote.for_project("someone-else")
    assert remote.for_project(remote.project) is remote
    with pytest.raises(AuthenticationError) as bad:
        RemoteIndex(remote.url, api_key="vsk_000000000000_wrong").count()
    assert bad.value.status == 401
    with pytest.raises(AuthenticationError, match="needs an API key"):
        RemoteIndex(remote.url, api_key="")


def test_a_file_object_is_streamed_and_named(remote, photos, tmp_path):
    path = tmp_path / "coffee copy.jpg"
    path.write_bytes(encode(edits.center_crop(0.7)(photos["coffee"]), "JPEG"))
    by_path = remote.query(path)
    assert by_path.source == str(path) and by_path.output[0].task_id == "coffee"
    with open(path, "rb") as f:
        f.read(3)  # a file object is sent from where it stands, as CustomIndex reads it
        f.seek(0)
        assert remote.query(f).output[0].task_id == "coffee"
        assert not f.closed  # the caller's file stays open
    with pytest.raises(vecsim.UnsupportedMediaError, match="binary mode"):
        with open(path, encoding="latin-1") as text:
            remote.query(text)


def test_list_assets_pages_through_the_project(remote):
    first = remote.list_assets(limit=1)
    assert [a.task_id for a in first.assets] == ["coffee"] and first.next == "coffee"
    rest = remote.list_assets(limit=10, after=first.next)
    assert [a.task_id for a in rest.assets] == ["rocket"] and rest.next is None
    assert rest.assets[0].metadata == {"n": 2} and rest.assets[0].frames == 1


def test_async_remote_index_matches_the_sync_one(vecsim_service, remote, photos):
    async def run():
        async with AsyncRemoteIndex(remote.url, api_key=remote._http.headers["authorization"].split()[1]) as a:
            assert (await a.for_project(remote.project)) is a and a.project == remote.project
            q = await a.query(photos["rocket"])
            assert q == remote.query(photos["rocket"])
            task = await a.query(photos["rocket"], wait=False)
            assert isinstance(task, AsyncRemoteTask)
            assert (await task.wait(timeout=60)).output == q.output
            assert await a.count() == remote.count()
            assert (await a.get("rocket")) == remote.get("rocket")
            assert (await a.list_assets()) == remote.list_assets()
            many = await a.add_many([photos["clock"], b"", photos["astronaut"]])
            assert [f.error for f in many.failed] == ["EmptyMediaError"] and len(many.added) == 2
            for added in many.added:
                await a.remove(added.task_id)
    asyncio.run(run())


# --- the retry policy, against a scripted transport -------------------------------------------------


def _scripted(*answers):
    """An httpx transport that answers with ``answers`` in turn (and records each request)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle), seen


def _error(status, code, retry_after=None):
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return httpx.Response(status, headers=headers, json={"error": {"code": code, "message": code}, "request_id": "r1"})


INFO = {"status": "completed", "output": {"uri": "", "engine": "qdrant-edge", "engine_version": "1", "collection": "c",
        "descriptor": {"name": "d", "version": "1", "dim": 256}, "index": {}, "assets": 7, "frames": 7, "project": "p"}}


def test_503_and_429_are_retried_after_retry_after():
    transport, seen = _scripted(_error(503, "store_unavailable", 0.3), _error(429, "rate_limited", 0.2),
                                httpx.Response(200, json=INFO))
    start = time.monotonic()
    with RemoteIndex("http://svc.test", api_key="k", transport=transport) as idx:
        assert idx.count() == 7
    assert len(seen) == 3 and time.monotonic() - start >= 0.5
    assert seen[0].headers["authorization"] == "Token k"


def test_retries_stop_at_their_limits():
    transport, seen = _scripted(_error(503, "store_unavailable", 0.01))
    with RemoteIndex("http://svc.test", api_key="k", transport=transport, max_retries=2) as idx:
        with pytest.raises(ServiceUnavailableError) as err:
            idx.count()
    assert len(seen) == 3 and err.value.code == "store_unavailable" and isinstance(err.value, StoreUnavailableError)
    transport, seen = _scripted(_error(429, "rate_limited", 120))
    with RemoteIndex("http://svc.test", api_key="k", transport=transport, max_retry_wait=30) as idx:
        with pytest.raises(RateLimitedError) as limited:
            idx.count()
    assert len(seen) == 1 and limited.value.retry_after == 120  # longer than the client may wait: at once


def test_a_refused_connection_is_retried_but_a_lost_upload_is_not(photos):
    transport, seen = _scripted(httpx.ConnectError("refused"), httpx.Response(200, json=INFO))
    with RemoteIndex("http://svc.test", api_key="k", transport=transport, backoff=0.01) as idx:
        assert idx.count() == 7 and len(seen) == 2
    transport, seen = _scripted(httpx.ReadError("connection lost"))
    with RemoteIndex("http://svc.test", api_key="k", transport=transport, backoff=0.01) as idx:
        with pytest.raises(ServiceUnavailableError):
            idx.add(photos["coffee"])  # it may have been added: not sent twice
    assert len(seen) == 1
    transport, seen = _scripted(httpx.ReadTimeout("slow"))
    with RemoteIndex("http://svc.test", api_key="k", transport=transport, timeout=1) as idx:
        with pytest.raises(RemoteTimeoutError):
            idx.count()


def test_a_stream_that_cannot_seek_is_sent_once():
    class Pipe(io.RawIOBase):
        mode = "rb"

        def __init__(self):
            self.data = io.BytesIO(b"\xff\xd8" + b"x" * 100)

        def readable(self):
            return True

        def readinto(self, b):
            chunk = self.data.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    transport, seen = _scripted(_error(503, "store_unavailable", 0.01))
    with RemoteIndex("http://svc.test", api_key="k", transport=transport) as idx:
        with pytest.raises(ServiceUnavailableError):
            idx.query(io.BufferedReader(Pipe()))
    assert len(seen) == 1


def test_a_non_vecsim_answer_says_so():
    transport, _ = _scripted(httpx.Response(404, text="<html>nginx</html>"))
    with RemoteIndex("http://svc.test", api_key="k", transport=transport) as idx:
        with pytest.raises(vecsim.RemoteError, match="not a vecsim answer"):
            idx.count()


# --- the CLI over a service ----------------------------------------------------------------------


def test_cli_takes_a_service_url_and_an_api_key(vecsim_service, photos, tmp_path):
    from vecsim.server.keys import KeyStore

    key = KeyStore(vecsim_service.data_dir / "keys.sqlite").create("cli-remote").key
    photo = tmp_path / "astronaut.png"
    photos["astronaut"].save(photo)

    def cli(*args, env_key=True):
        env = {"VECSIM_API_KEY": key} if env_key else {}
        return subprocess.run([sys.executable, "-m", "vecsim.cli", "--index", vecsim_service.url, *args],
                              capture_output=True, text=True, env={**__import__("os").environ, **env}, timeout=120)

    added = cli("add", str(photo), "--task-id", "astro", "--metadata", '{"a": 1}')
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout.splitlines()[-1])["task_id"] == "astro"
    found = cli("query", str(photo))
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout.splitlines()[-1])["output"][0]["task_id"] == "astro"
    info = json.loads(cli("info").stdout)
    assert info["project"] == "cli-remote" and info["assets"] == 1 and info["uri"] == vecsim_service.url
    refused = cli("add", str(photo), "--index-type", "FLAT")
    assert refused.returncode != 0 and "--index-type" in refused.stderr and "operator" in refused.stderr
    # without a key, an http:// index is a Milvus server, as it always was
    assert cli("info", env_key=False).returncode != 0
    by_option = cli("--api-key", key, "info", env_key=False)
    assert by_option.returncode == 0 and json.loads(by_option.stdout)["project"] == "cli-remote"
