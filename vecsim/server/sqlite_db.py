"""The service's small SQLite databases (keys, task records): one connection per thread, WAL,
and ``with db.tx() as conn:`` for one ``begin immediate`` ... ``commit`` transaction."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Database:
    def __init__(self, path: str | Path, schema: str, *, synchronous: str = "normal"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._synchronous = synchronous
        self._local = threading.local()
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("pragma journal_mode=wal")
            db.executescript(schema)
        finally:
            db.close()

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (autocommit outside :meth:`tx`)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute(f"pragma synchronous={self._synchronous}")
        return db

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        db = self.conn()
        db.execute("begin immediate")
        try:
            yield db
        except BaseException:
            db.execute("rollback")
            raise
        db.execute("commit")

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
