"""Task records: the durable state of every async task (``queued`` -> ``running`` ->
``completed`` / ``failed``), its parameters, attempts and result.

The queue (:mod:`vecsim.server.tasks`, huey) carries only ``(project, task id)`` messages; what a
task is and whether it already ran lives here, written before the 202 answer goes out. A worker
*claims* a record before running it (an atomic compare-and-set: ``queued``, or ``running`` with an
expired lease, to ``running`` with a new lease and ``attempts + 1``) and may finish it only under
that claim. So a message delivered twice (a recovery re-queued it while the original was still in
the queue) runs once, a task whose worker was killed is taken over when its lease runs out, and
results are written once. A task that could not reach the vector store is put back
(:meth:`SqliteLedger.retry`: ``queued`` again, ``retries + 1``, under the same claim) rather than
failed, and runs again later.

Two implementations of one interface: :class:`SqliteLedger` (a file in the data folder: one
service process) and :class:`RedisLedger` (shared by several replicas, atomic through Lua).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .sqlite_db import Database

QUEUED, RUNNING, COMPLETED, FAILED = "queued", "running", "completed", "failed"
SCHEMA = """
create table if not exists tasks (
    project text not null, id text not null, status text not null, finished real,
    enqueued real not null, lease_until real not null, record text not null,
    primary key (project, id));
create index if not exists tasks_status on tasks (status, enqueued);
"""
ACTIVE = (QUEUED, RUNNING)
#: What running a task may answer instead of a final status: put it back, run it again later
#: (:meth:`SqliteLedger.retry`); never a stored status.
RETRY = "retry"


@dataclass(frozen=True)
class TaskRecord:
    project: str
    id: str
    kind: str  # "add", "query" or "remove"
    params: dict[str, Any] = field(default_factory=dict)
    status: str = QUEUED
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    attempts: int = 0
    lease_until: float = 0.0
    enqueued: float = 0.0  # the last time a queue message was sent for it
    callback_url: str | None = None
    result: Any = None
    error: dict[str, str] | None = None  # {"code": ..., "message": ...}
    retries: int = 0  # times it was put back because the vector store could not be reached

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str | bytes) -> TaskRecord:
        return cls(**json.loads(raw))


class SqliteLedger:
    """Task records in ``<data_dir>/tasks.sqlite`` (WAL, one transaction per change)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db = Database(self.path, SCHEMA, synchronous="full")  # an accepted task survives a power cut
        self._tx = self._db.tx

    def _put(self, db: sqlite3.Connection, rec: TaskRecord) -> None:
        db.execute("insert or replace into tasks values (?, ?, ?, ?, ?, ?, ?)",
                   (rec.project, rec.id, rec.status, rec.finished, rec.enqueued, rec.lease_until, rec.to_json()))

    def _row(self, db: sqlite3.Connection, project: str, task_id: str) -> TaskRecord | None:
        row = db.execute("select record from tasks where project = ? and id = ?", (project, task_id)).fetchone()
        return TaskRecord.from_json(row[0]) if row else None

    def create(self, rec: TaskRecord) -> TaskRecord | None:
        """Write a new record; where an active one (queued or running) has that id, write nothing
        and return it. A finished record of the same id is replaced (its id was reused)."""
        with self._tx() as db:
            old = self._row(db, rec.project, rec.id)
            if old is not None and old.status in ACTIVE:
                return old
            self._put(db, rec)
        return None

    def get(self, project: str, task_id: str) -> TaskRecord | None:
        return self._row(self._db.conn(), project, task_id)

    def claim(self, project: str, task_id: str, lease_s: float) -> TaskRecord | None:
        now = time.time()
        with self._tx() as db:
            rec = self._row(db, project, task_id)
            if rec is None or not (rec.status == QUEUED or (rec.status == RUNNING and rec.lease_until < now)):
                return None
            rec = replace(rec, status=RUNNING, attempts=rec.attempts + 1, lease_until=now + lease_s,
                          started=rec.started or now)
            self._put(db, rec)
        return rec

    def _under_claim(self, rec: TaskRecord, change: Callable[[TaskRecord], TaskRecord]) -> TaskRecord | None:
        """Write ``change(current record)`` where the task still runs under ``rec``'s claim (same
        attempt); None where the claim was lost (another worker took the task over after this
        one's lease ran out)."""
        with self._tx() as db:
            cur = self._row(db, rec.project, rec.id)
            if cur is None or cur.status != RUNNING or cur.attempts != rec.attempts:
                return None
            new = change(cur)
            self._put(db, new)
        return new

    def renew(self, rec: TaskRecord, lease_s: float) -> bool:
        return self._under_claim(rec, lambda cur: replace(cur, lease_until=time.time() + lease_s)) is not None

    def finish(self, rec: TaskRecord, status: str, result: Any = None, error: dict | None = None) -> TaskRecord | None:
        """Finish the task under ``rec``'s claim; None where the claim was lost."""
        return self._under_claim(rec, lambda cur: replace(cur, status=status, result=result, error=error,
                                                          finished=time.time(), lease_until=0.0))

    def save_params(self, rec: TaskRecord) -> TaskRecord | None:
        """Write ``rec.params`` under ``rec``'s claim (a running task noting a step it has done,
        so that a later attempt knows it); None where the claim was lost."""
        return self._under_claim(rec, lambda cur: replace(cur, params=rec.params))

    def retry(self, rec: TaskRecord) -> TaskRecord | None:
        """Put the task back (``queued``, ``retries + 1``) under ``rec``'s claim, to run again later;
        None where the claim was lost."""
        return self._under_claim(rec, lambda cur: replace(cur, status=QUEUED, lease_until=0.0, retries=cur.retries + 1,
                                                          enqueued=time.time()))

    def mark_enqueued(self, project: str, task_id: str) -> None:
        with self._tx() as db:
            rec = self._row(db, project, task_id)
            if rec is not None and rec.status in ACTIVE:
                self._put(db, replace(rec, enqueued=time.time()))

    def stale(self, requeue_after_s: float, limit: int = 1000) -> list[tuple[str, str]]:
        """Active tasks to queue again: queued with no message sent for ``requeue_after_s``, or
        running with an expired lease."""
        now = time.time()
        rows = self._db.conn().execute(
            "select project, id from tasks where (status = ? and enqueued < ?) or (status = ? and lease_until < ?) "
            "limit ?", (QUEUED, now - requeue_after_s, RUNNING, now, limit)).fetchall()
        return [(p, i) for p, i in rows]

    def release_running(self) -> int:
        """Make every running task claimable now (its lease expired): at the start of the one
        process that uses this ledger, a task still marked running was its dead predecessor's."""
        with self._tx() as db:
            rows = db.execute("select record from tasks where status = ?", (RUNNING,)).fetchall()
            for (raw,) in rows:
                self._put(db, replace(TaskRecord.from_json(raw), lease_until=0.0))
        return len(rows)

    def active(self) -> list[tuple[str, str]]:
        return [(p, i) for p, i in self._db.conn().execute(
            "select project, id from tasks where status in (?, ?) order by enqueued", ACTIVE)]

    def pending(self) -> tuple[int, float]:
        """(tasks queued or running, age in seconds of the oldest of them)."""
        n, oldest = self._db.conn().execute("select count(*), min(enqueued) from tasks where status in (?, ?)",
                                       ACTIVE).fetchone()
        return int(n), (time.time() - oldest if oldest else 0.0)

    def purge(self, ttl_s: float) -> int:
        with self._tx() as db:
            return db.execute("delete from tasks where finished is not null and finished < ?",
                              (time.time() - ttl_s,)).rowcount

    def close(self) -> None:
        self._db.close()


# --- Redis -------------------------------------------------------------------------------------
# One hash per task: the record as JSON (``rec``) plus the fields a claim changes, kept apart so
# that the scripts never decode the JSON (Lua's cjson would turn an empty object into a list).
# KEYS[1] = the task's hash, KEYS[2] = the sorted set of active tasks (score: last enqueue time).

_CREATE = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'queued' or status == 'running' then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'rec', ARGV[1], 'status', 'queued', 'attempts', 0, 'lease_until', 0, 'started', '')
redis.call('ZADD', KEYS[2], ARGV[2], KEYS[1])
return 1
"""

_CLAIM = """
local h = redis.call('HMGET', KEYS[1], 'status', 'lease_until', 'attempts', 'started')
local now = tonumber(ARGV[1])
if h[1] == 'queued' or (h[1] == 'running' and tonumber(h[2]) < now) then
  local started = h[4]
  if started == '' or started == false then started = ARGV[1] end
  redis.call('HSET', KEYS[1], 'status', 'running', 'attempts', tonumber(h[3]) + 1,
             'lease_until', now + tonumber(ARGV[2]), 'started', started)
  return 1
end
return 0
"""
# The scripts that change a running task first check that it still runs under the caller's claim
# (ARGV[1] = the claim's attempt); else they change nothing and answer 0.
_UNDER_CLAIM = """
local h = redis.call('HMGET', KEYS[1], 'status', 'attempts')
if h[1] ~= 'running' or tonumber(h[2]) ~= tonumber(ARGV[1]) then return 0 end
"""
# ARGV = attempts, lease_until (renew) | attempts, record json, ttl (finish) | attempts, record json,
# enqueue time (retry)
_RENEW = _UNDER_CLAIM + """
redis.call('HSET', KEYS[1], 'lease_until', ARGV[2])
return 1
"""
_FINISH = _UNDER_CLAIM + """
redis.call('HSET', KEYS[1], 'rec', ARGV[2], 'status', ARGV[4], 'lease_until', 0)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[2], KEYS[1])
return 1
"""

# ARGV = attempts, record json (save_params)
_SAVE = _UNDER_CLAIM + """
redis.call('HSET', KEYS[1], 'rec', ARGV[2])
return 1
"""

_RETRY = _UNDER_CLAIM + """
redis.call('HSET', KEYS[1], 'rec', ARGV[2], 'status', 'queued', 'lease_until', 0)
redis.call('ZADD', KEYS[2], ARGV[3], KEYS[1])
return 1
"""


class RedisLedger:
    """Task records in Redis, shared by every replica: one hash per task and a sorted set of the
    active ones; every change is one Lua script, atomic on the server. Finished records expire
    after ``ttl_s`` on their own."""

    def __init__(self, url: str, ttl_s: float, prefix: str = "vecsim"):
        import redis

        self.client = redis.Redis.from_url(url)
        self.ttl_s = ttl_s
        self.prefix = prefix
        self._active = f"{prefix}:active"
        self._scripts = {name: self.client.register_script(src) for name, src in
                         (("create", _CREATE), ("claim", _CLAIM), ("renew", _RENEW), ("finish", _FINISH),
                                             ("retry", _RETRY), ("save", _SAVE))}

    def _key(self, project: str, task_id: str) -> str:
        return f"{self.prefix}:task:{len(project)}:{project}:{task_id}"

    def _run(self, name: str, project: str, task_id: str, *args: Any) -> int:
        return int(self._scripts[name](keys=[self._key(project, task_id), self._active], args=list(args)))

    def _read(self, key: str) -> TaskRecord | None:
        h = self.client.hgetall(key)
        if not h or b"rec" not in h:
            return None
        d = json.loads(h[b"rec"])
        d["status"] = h[b"status"].decode()
        d["attempts"] = int(h[b"attempts"])
        d["lease_until"] = float(h[b"lease_until"])
        started = h.get(b"started", b"").decode()
        if started:
            d["started"] = float(started)
        return TaskRecord(**d)

    def create(self, rec: TaskRecord) -> TaskRecord | None:
        if self._run("create", rec.project, rec.id, rec.to_json(), rec.enqueued):
            return None
        return self.get(rec.project, rec.id)

    def get(self, project: str, task_id: str) -> TaskRecord | None:
        return self._read(self._key(project, task_id))

    def claim(self, project: str, task_id: str, lease_s: float) -> TaskRecord | None:
        if not self._run("claim", project, task_id, repr(time.time()), lease_s):
            return None
        return self.get(project, task_id)

    def renew(self, rec: TaskRecord, lease_s: float) -> bool:
        return bool(self._run("renew", rec.project, rec.id, rec.attempts, repr(time.time() + lease_s)))

    def _params(self, rec: TaskRecord) -> dict[str, Any]:
        """The params stored for ``rec``'s task: a step saved under this claim (save_params) is
        kept when the record is written again from the claim's older copy."""
        cur = self.get(rec.project, rec.id)
        return cur.params if cur is not None else rec.params

    def finish(self, rec: TaskRecord, status: str, result: Any = None, error: dict | None = None) -> TaskRecord | None:
        done = replace(rec, params=self._params(rec), status=status, result=result, error=error, finished=time.time(), lease_until=0.0)
        if not self._run("finish", rec.project, rec.id, rec.attempts, done.to_json(), max(1, int(self.ttl_s)), status):
            return None
        return done

    def save_params(self, rec: TaskRecord) -> TaskRecord | None:
        if not self._run("save", rec.project, rec.id, rec.attempts, rec.to_json()):
            return None
        return self.get(rec.project, rec.id)

    def retry(self, rec: TaskRecord) -> TaskRecord | None:
        now = time.time()
        back = replace(rec, params=self._params(rec), status=QUEUED, lease_until=0.0, retries=rec.retries + 1,
                       enqueued=now)
        if not self._run("retry", rec.project, rec.id, rec.attempts, back.to_json(), repr(now)):
            return None
        return back

    def mark_enqueued(self, project: str, task_id: str) -> None:
        self.client.zadd(self._active, {self._key(project, task_id): time.time()}, xx=True)

    def _active_records(self) -> list[tuple[float, TaskRecord]]:
        out = []
        for key, score in self.client.zrange(self._active, 0, -1, withscores=True):
            rec = self._read(key.decode())
            if rec is not None:
                out.append((score, rec))
        return out

    def stale(self, requeue_after_s: float, limit: int = 1000) -> list[tuple[str, str]]:
        now = time.time()
        return [(r.project, r.id) for enqueued, r in self._active_records()
                if (r.status == QUEUED and enqueued < now - requeue_after_s)
                or (r.status == RUNNING and r.lease_until < now)][:limit]

    def active(self) -> list[tuple[str, str]]:
        return [(r.project, r.id) for _, r in self._active_records()]

    def pending(self) -> tuple[int, float]:
        n = int(self.client.zcard(self._active))
        first = self.client.zrange(self._active, 0, 0, withscores=True)
        return n, (time.time() - first[0][1] if first else 0.0)

    def purge(self, ttl_s: float) -> int:
        return 0  # finished records expire on their own

    def close(self) -> None:
        self.client.close()


def open_ledger(queue: str, data_dir: Path, ttl_s: float):
    if queue == "sqlite":
        return SqliteLedger(data_dir / "tasks.sqlite")
    return RedisLedger(queue, ttl_s)
