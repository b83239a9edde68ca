"""API keys and projects, in a SQLite file (``<data_dir>/keys.sqlite``).

A key is ``vsk_<id>_<secret>``: ``id`` (12 hex characters) names it in listings and revocations,
``secret`` (43 URL-safe characters, 256 random bits) is what authenticates. Only the SHA-256 of the
whole key is stored; the key itself is shown once, when it is created. A project exists once it
has a key; it also has a webhook secret (for callback signatures), made with its first key.
Lookups compare the hash in constant time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidRequestError
from ..validate import check_project
from .sqlite_db import Database

KEY_PREFIX = "vsk_"
_KEY = re.compile(r"^vsk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
SCHEMA = """
create table if not exists projects (
    name text primary key, webhook_secret text not null, created real not null);
create table if not exists keys (
    id text primary key, project text not null references projects(name), sha256 text not null,
    label text not null default '', created real not null, revoked real);
"""


@dataclass(frozen=True)
class KeyInfo:
    id: str
    project: str
    label: str
    created: float
    revoked: float | None


@dataclass(frozen=True)
class NewKey:
    key: str  # shown once
    info: KeyInfo


class KeyStore:
    """Projects and their keys. Thread-safe; every call is one short SQLite transaction."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db = Database(self.path, SCHEMA).tx

    def create(self, project: str, label: str = "") -> NewKey:
        project = check_project(project)
        if not project:
            raise InvalidRequestError("a key belongs to a named project (--project NAME)")
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        now = time.time()
        with self._db() as db:
            db.execute("insert or ignore into projects values (?, ?, ?)", (project, secrets.token_urlsafe(32), now))
            db.execute("insert into keys (id, project, sha256, label, created) values (?, ?, ?, ?, ?)",
                       (key_id, project, _sha256(key), label, now))
        return NewKey(key, KeyInfo(key_id, project, label, now, None))

    def list(self, project: str | None = None) -> list[KeyInfo]:
        sql, args = "select id, project, label, created, revoked from keys", ()
        if project is not None:
            sql, args = sql + " where project = ?", (project,)
        with self._db() as db:
            return [KeyInfo(*row) for row in db.execute(sql + " order by created", args)]

    def revoke(self, key_id: str) -> KeyInfo:
        with self._db() as db:
            n = db.execute("update keys set revoked = ? where id = ? and revoked is null", (time.time(), key_id)).rowcount
            row = db.execute("select id, project, label, created, revoked from keys where id = ?", (key_id,)).fetchone()
        if row is None:
            raise InvalidRequestError(f"no key with id {key_id!r} (vecsim keys list shows them)")
        if n == 0 and row[4] is None:  # pragma: no cover - a race with another revoke
            raise InvalidRequestError(f"key {key_id!r} could not be revoked")
        return KeyInfo(*row)

    def project_of(self, key: str) -> str | None:
        """The project of a valid, unrevoked key, else None. The key is never logged."""
        m = _KEY.match(key or "")
        digest = _sha256(key or "")
        with self._db() as db:
            row = db.execute("select project, sha256, revoked from keys where id = ?",
                             (m.group(1) if m else "",)).fetchone()
        stored = row[1] if row else "0" * 64
        ok = hmac.compare_digest(stored, digest)  # compared even when no row matched: same time
        return row[0] if (ok and row is not None and m is not None and row[2] is None) else None

    def projects(self) -> list[str]:
        with self._db() as db:
            return [r[0] for r in db.execute("select name from projects order by name")]

    def webhook_secret(self, project: str) -> str:
        with self._db() as db:
            row = db.execute("select webhook_secret from projects where name = ?", (project,)).fetchone()
        if row is None:
            raise InvalidRequestError(f"no project {project!r}")
        return row[0]


def _sha256(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
