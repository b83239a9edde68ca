"""The service's view of the store's health: one probe at a time, its answer cached, a caller's
wait bounded however long a probe hangs (a stopped server)."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")

from vecsim.errors import StoreError, StoreUnavailableError  # noqa: E402
from vecsim.server.health import StoreHealth  # noqa: E402


def test_a_hanging_store_is_not_ready_within_the_wait_and_probed_once():
    release = threading.Event()
    calls = []

    def probe() -> None:
        calls.append(time.monotonic())
        release.wait(10)  # a stopped server: no answer until released
        raise StoreUnavailableError("deadline exceeded")

    health = StoreHealth(probe, ttl_s=0.5, wait_s=0.2)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(health.check())) for _ in range(20)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert time.monotonic() - start < 2  # nobody waited for the hanging probe
    assert len(answers) == 20 and not any(ok for ok, _ in answers)
    assert len(calls) == 1  # a flood of checks, one probe
    release.set()
    deadline = time.monotonic() + 5
    while health.down() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "deadline exceeded" in health.down()


def test_calls_mark_it_down_and_up_and_a_refusal_is_still_an_answer():
    outcome: list[BaseException | None] = [None]

    def probe() -> None:
        if outcome[0] is not None:
            raise outcome[0]

    health = StoreHealth(probe, ttl_s=0.3, wait_s=1)
    assert health.check() == (True, "") and health.down() is None
    health.failed(StoreUnavailableError("refused"))
    assert health.down() == "refused" and health.check() == (False, "refused")  # fresh: no probe
    time.sleep(0.35)
    assert health.down() is None  # not known lately: calls may try the store again
    assert health.check() == (True, "")  # the probe answers
    outcome[0] = StoreError("collection closed")  # the store answered, with an error: reachable
    time.sleep(0.35)
    assert health.check()[0] is True
    outcome[0] = StoreUnavailableError("gone")
    time.sleep(0.35)
    assert health.check() == (False, "gone")
    health.succeeded()
    assert health.check() == (True, "")


def test_the_stores_token_reaches_the_store_options_and_is_never_shown():
    from vecsim.server.service import store_options
    from vecsim.server.settings import ServerSettings

    milvus = ServerSettings(index="http://127.0.0.1:19530", store_token="root:s3cret-pw")
    assert store_options(milvus) == {"timeout": 10.0, "token": "root:s3cret-pw"}
    assert "s3cret-pw" not in repr(milvus) and "s3cret-pw" not in milvus.model_dump_json()
    qdrant = ServerSettings(index="qdrant://127.0.0.1:6333", store_token="qk")
    assert store_options(qdrant)["token"] == "qk"  # the Qdrant adapter takes it as its api_key
    assert store_options(ServerSettings(index="qdrant-edge:/tmp/x", store_token="unused")) == {}
