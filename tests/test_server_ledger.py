"""The task ledger's claim, the heart of "each accepted task runs once": on SQLite and on Redis."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("huey", reason="the serve extra is not installed")

from vecsim.server.ledger import COMPLETED, FAILED, QUEUED, RUNNING, RedisLedger, SqliteLedger, TaskRecord  # noqa: E402


@pytest.fixture(params=["sqlite", "redis"])
def ledger(request, tmp_path):
    if request.param == "sqlite":
        led = SqliteLedger(tmp_path / "tasks.sqlite")
    else:
        pytest.importorskip("redis", reason="redis-py is not installed")
        led = RedisLedger(request.getfixturevalue("redis_url"), ttl_s=60)
    yield led
    led.close()


def _rec(task_id: str = "t1", project: str = "p") -> TaskRecord:
    now = time.time()
    return TaskRecord(project=project, id=task_id, kind="add", params={"metadata": {}, "nested": {"a": []}},
                      created=now, enqueued=now)


def test_a_task_is_claimed_once_and_finished_under_its_claim(ledger):
    assert ledger.create(_rec()) is None
    assert ledger.create(_rec()).status == QUEUED  # an active task of that id: not replaced
    first = ledger.claim("p", "t1", lease_s=30)
    assert first.status == RUNNING and first.attempts == 1
    assert first.params == {"metadata": {}, "nested": {"a": []}}  # empty objects stay objects
    assert ledger.claim("p", "t1", lease_s=30) is None  # a duplicate message: nothing to run
    assert ledger.renew(first, 30)
    done = ledger.finish(first, COMPLETED, {"task_id": "t1", "metadata": {}})
    assert done.status == COMPLETED and done.result == {"task_id": "t1", "metadata": {}}
    assert ledger.claim("p", "t1", lease_s=30) is None  # finished: never runs again
    assert ledger.get("p", "t1").result == {"task_id": "t1", "metadata": {}}
    assert ledger.pending()[0] == 0


def test_an_expired_lease_is_taken_over_and_the_old_claim_cannot_finish(ledger):
    ledger.create(_rec())
    dead = ledger.claim("p", "t1", lease_s=0.05)
    time.sleep(0.1)
    assert ("p", "t1") in ledger.stale(requeue_after_s=3600)
    live = ledger.claim("p", "t1", lease_s=30)
    assert live.attempts == 2
    assert ledger.finish(dead, FAILED, error={"code": "x", "message": "y"}) is None
    assert not ledger.renew(dead, 30)
    assert ledger.finish(live, COMPLETED, {"ok": True}).status == COMPLETED


def test_projects_have_their_own_task_ids(ledger):
    ledger.create(_rec("same", "a"))
    ledger.create(_rec("same", "b"))
    assert ledger.claim("a", "same", 30).project == "a"
    assert ledger.get("b", "same").status == QUEUED
    assert ledger.get("c", "same") is None
    assert ledger.pending()[0] == 2


def test_a_finished_id_can_be_reused(ledger):
    ledger.create(_rec())
    ledger.finish(ledger.claim("p", "t1", 30), COMPLETED, {})
    assert ledger.create(_rec()) is None
    assert ledger.get("p", "t1").status == QUEUED and ledger.get("p", "t1").attempts == 0


def test_a_task_put_back_stays_active_and_runs_again(ledger):
    """A task that could not reach the store: back to queued under its claim, retries counted,
    claimed and finished by the next try; a lost claim cannot put it back."""
    ledger.create(_rec())
    first = ledger.claim("p", "t1", lease_s=30)
    back = ledger.retry(first)
    assert back.status == QUEUED and back.retries == 1 and back.error is None
    got = ledger.get("p", "t1")
    assert got.status == QUEUED and got.retries == 1 and ("p", "t1") in ledger.active()
    assert ledger.pending()[0] == 1
    assert ledger.retry(first) is None  # no longer running under that claim
    second = ledger.claim("p", "t1", lease_s=30)
    assert second.attempts == 2 and second.retries == 1
    assert ledger.finish(second, COMPLETED, {"ok": True}).retries == 1
    assert ledger.get("p", "t1").status == COMPLETED and ledger.pending()[0] == 0


def test_a_running_task_saves_a_step_under_its_claim_only(ledger):
    """save_params: what an attempt notes (an add's task_id checked) is there for the next
    attempt; a claim that was taken over cannot write it."""
    from dataclasses import replace

    ledger.create(_rec())
    first = ledger.claim("p", "t1", lease_s=30)
    saved = ledger.save_params(replace(first, params={**first.params, "checked": True}))
    assert saved.params["checked"] is True and saved.status == RUNNING and saved.attempts == 1
    back = ledger.retry(first)
    assert back.params["checked"] is True  # kept across the retry
    second = ledger.claim("p", "t1", lease_s=30)
    assert second.params == {"metadata": {}, "nested": {"a": []}, "checked": True}
    assert ledger.save_params(replace(first, params={"stale": 1})) is None  # the first claim is gone
    assert ledger.get("p", "t1").params["checked"] is True
