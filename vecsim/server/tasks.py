"""Durable async tasks on huey: the queue (SQLite in the data folder, or Redis for several
replicas), the worker threads in the service process, the recovery sweep and callbacks.

Accepting a task (:meth:`TaskQueue.submit`): its media is already spooled to disk; the task record
is written to the ledger (:mod:`vecsim.server.ledger`), then a ``(project, id)`` message is put on
huey's queue, then the service answers 202. A worker takes the message, *claims* the record (so a
message delivered twice runs once), renews its lease while it runs, and finishes the record under
its claim. A process killed anywhere in between loses nothing: at start-up, and every few seconds
after, :meth:`TaskQueue.sweep` queues again every task that is queued with no message sent for
``requeue_after_s`` (at start-up: every queued task) or running with an expired lease; the claim
makes the extra messages harmless. An add that a killed worker had already committed is found by
its task_id on the next attempt and completed without adding it twice.

A task that cannot reach the vector store (``execute`` answers :data:`~.ledger.RETRY`) is put back
in the ledger (``queued``, ``retries + 1``) and its message scheduled again after
``store_retry_backoff_s``, doubling per retry up to ``store_retry_max_s`` (huey's scheduler, durable
in the queue): it completes once the store answers again, never fails for it.

Stopping (:meth:`TaskQueue.stop`, on SIGTERM): the workers take no new message and get
``timeout`` seconds, all consumers together, to finish the task they run. A task still running then,
or one that failed only because the service was closing under it, is left ``running`` in the
ledger; the next start on the same data makes it claimable again and runs it
(:meth:`TaskQueue.recover`).

Callbacks: when a task with a ``callback_url`` finishes, a delivery goes on a second huey queue,
served by its own threads (a slow receiver never holds a task worker), retried with exponential
backoff (huey's ``retries`` / ``retry_backoff``), POSTed through the URL policy's checks, signed
``X-Vecsim-Signature: sha256=<HMAC-SHA256 of the body with the project's webhook secret>``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from huey import RedisHuey, SqliteHuey
from huey.consumer import Consumer

from .ledger import ACTIVE, FAILED, RETRY, TaskRecord
from .settings import ServerSettings

log = logging.getLogger("vecsim.server.tasks")
SWEEP_INTERVAL_S = 5.0
SIGNATURE_HEADER = "X-Vecsim-Signature"


class _QuietConsumer(Consumer):
    """huey's consumer, run inside the service: no signal handlers (uvicorn owns the signals)."""

    def _set_signal_handlers(self) -> None:
        pass


class CallbackFailed(Exception):
    pass


class TaskQueue:
    """The queue, its workers and the sweep. ``execute(record) -> (status, result, error)`` runs
    one task; ``deliver(url, body, headers) -> HTTP status`` POSTs one callback."""

    def __init__(self, settings: ServerSettings, ledger: Any, execute: Callable[[TaskRecord], tuple[str, Any, Any]],
                 deliver: Callable[[str, bytes, dict[str, str]], int], secret_of: Callable[[str], str],
                 envelope_bytes: Callable[[TaskRecord], bytes], on_finish: Callable[[TaskRecord], None],
                 on_callback: Callable[[str], None], on_retry: Callable[[TaskRecord], None]):
        self.settings, self.ledger, self.execute = settings, ledger, execute
        self._deliver, self.secret_of, self.on_finish = deliver, secret_of, on_finish
        self.envelope_bytes, self._count_callback = envelope_bytes, on_callback
        #: called with the record of each task put back (the metrics)
        self.on_retry = on_retry
        if settings.queue == "sqlite":
            path = str(settings.data_dir / "queue.sqlite")
            self.huey = SqliteHuey("vecsim-tasks", filename=path, results=False, fsync=True)
            self.callbacks = SqliteHuey("vecsim-callbacks", filename=path, results=False, fsync=True)
        else:
            self.huey = RedisHuey("vecsim-tasks", url=settings.queue, results=False)
            self.callbacks = RedisHuey("vecsim-callbacks", url=settings.queue, results=False)
        self._run = self.huey.task(name="vecsim.run")(self._run_task)
        self._callback = self.callbacks.task(
            name="vecsim.callback", retries=settings.callback_attempts - 1,
            retry_delay=settings.callback_backoff_s, retry_backoff=2)(self._deliver_callback)
        self._consumers: list[_QuietConsumer] = []
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    # --- accepting ---------------------------------------------------------------------------------

    def submit(self, rec: TaskRecord) -> TaskRecord | None:
        """Record the task durably, then queue it. Returns the active task already holding that
        id (nothing is queued then), or None."""
        existing = self.ledger.create(rec)
        if existing is not None:
            return existing
        self._enqueue(rec.project, rec.id)
        return None

    def _enqueue(self, project: str, task_id: str) -> None:
        self._run(project, task_id)
        self.ledger.mark_enqueued(project, task_id)

    def pending(self) -> tuple[int, float]:
        return self.ledger.pending()

    # --- running -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker threads (none with ``workers=0``), the callback threads and the sweep.
        The first sweep queues every task left queued or running by an earlier process."""
        if self.settings.workers > 0:
            self._consumers.append(_QuietConsumer(self.huey, workers=self.settings.workers, periodic=False,
                                                  worker_type="thread", initial_delay=0.05, max_delay=0.5,
                                                  check_worker_health=False))
            self._consumers.append(_QuietConsumer(self.callbacks, workers=2, periodic=False, worker_type="thread",
                                                  initial_delay=0.1, max_delay=1.0, check_worker_health=False))
            self.recover()
        for consumer in self._consumers:
            consumer.start()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="vecsim-sweep", daemon=True)
        self._sweeper.start()

    def recover(self) -> int:
        """At start-up with the SQLite queue (one process): queue again every active task (a
        duplicate message is harmless). With Redis (shared), leave it to the periodic sweep."""
        if self.settings.queue != "sqlite":
            return 0
        self.ledger.release_running()  # their worker was this process's predecessor: dead
        active = self.ledger.active()
        for project, task_id in active:
            self._enqueue(project, task_id)
        if active:
            log.info("recovered %d unfinished task(s) from the last run", len(active))
        return len(active)

    def sweep(self) -> int:
        stale = self.ledger.stale(self.settings.requeue_after_s)
        for project, task_id in stale:
            self._enqueue(project, task_id)
        if stale:
            log.warning("queued %d stalled task(s) again", len(stale))
        self.ledger.purge(self.settings.result_ttl_s)
        return len(stale)

    def _sweep_loop(self) -> None:
        while not self._stop.wait(SWEEP_INTERVAL_S):
            if self.settings.workers == 0:
                continue
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - logged; the next sweep tries again
                log.exception("task sweep failed")

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop_taking(self) -> None:
        """The workers finish the task they run and take no other."""
        self._stop.set()
        for consumer in self._consumers:
            consumer.stop_flag.set()

    def stop(self, timeout: float = 30.0) -> bool:
        """Take no new message; wait up to ``timeout`` seconds in all for the running tasks.
        Returns whether every worker finished in time."""
        deadline = time.monotonic() + timeout
        self.stop_taking()
        finished = True
        for consumer in self._consumers:
            consumer.shutdown_timeout = max(0.0, deadline - time.monotonic())
            consumer.stop(graceful=True)
            finished = finished and not any(t.is_alive() for _, t in consumer.worker_threads)
        self._consumers.clear()
        if not finished:
            log.warning("task workers still running after %.0f s; their tasks run again at the next start", timeout)
        return finished

    def retry_delay(self, rec: TaskRecord) -> float:
        """How long a task put back for the ``rec.retries``-th time waits before its next try."""
        s = self.settings
        return min(s.store_retry_max_s, s.store_retry_backoff_s * 2 ** min(rec.retries, 30))

    def _run_task(self, project: str, task_id: str) -> None:
        rec = self.ledger.claim(project, task_id, self.settings.task_lease_s)
        if rec is None:  # finished already, or running under another worker's live lease
            return
        renew = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(rec, renew), daemon=True)
        heartbeat.start()
        try:
            status, result, error = self.execute(rec)
        finally:
            renew.set()
        if status == FAILED and self._stop.is_set():
            # the service closed the index under it: not the task's fault; the next start runs it
            log.warning("task %s of project %s stopped by the shutdown; it runs again at the next start",
                        task_id, project)
            return
        if status == RETRY:
            self._put_back(rec, error)
            return
        done = self.ledger.finish(rec, status, result, error)
        if done is None:
            log.warning("task %s of project %s was taken over by another worker; its result is theirs", task_id, project)
            return
        self.on_finish(done)
        if done.callback_url:
            self._callback(project, task_id)

    def _put_back(self, rec: TaskRecord, error: Any) -> None:
        back = self.ledger.retry(rec)
        if back is None:
            log.warning("task %s of project %s was taken over by another worker", rec.id, rec.project)
            return
        delay = self.retry_delay(rec)
        log.info("task %s of project %s: %s; try %d in %.1f s", rec.id, rec.project,
                 (error or {}).get("message", "the store cannot be reached"), back.retries + 1, delay)
        if not self._stop.is_set():  # else the next start queues it (recover)
            self._run.schedule(args=(rec.project, rec.id), delay=delay)
            self.ledger.mark_enqueued(rec.project, rec.id)
        self.on_retry(back)

    def _heartbeat(self, rec: TaskRecord, done: threading.Event) -> None:
        interval = self.settings.task_lease_s / 3
        while not done.wait(interval):
            if not self.ledger.renew(rec, self.settings.task_lease_s):
                return

    # --- callbacks ---------------------------------------------------------------------------------

    def _deliver_callback(self, project: str, task_id: str) -> None:
        rec = self.ledger.get(project, task_id)
        if rec is None or rec.status in ACTIVE or not rec.callback_url:
            return
        body = self.envelope_bytes(rec)
        signature = hmac.new(self.secret_of(project).encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: f"sha256={signature}",
                   "X-Vecsim-Task": task_id, "User-Agent": "vecsim-callback"}
        try:
            status = self._deliver(rec.callback_url, body, headers)
        except Exception as exc:  # noqa: BLE001 - retried by huey with backoff
            log.warning("callback of task %s to its callback_url failed: %s", task_id, type(exc).__name__)
            self._count_callback("error")
            raise CallbackFailed(str(exc)) from None
        if not 200 <= status < 300:
            self._count_callback(f"http_{status // 100}xx")
            raise CallbackFailed(f"callback_url answered HTTP {status}")
        self._count_callback("delivered")


__all__ = ["TaskQueue", "SIGNATURE_HEADER"]
