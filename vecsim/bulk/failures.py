"""The failures file of an ingest: one JSON object per line for every row that was not added.

Each line holds ``line`` (the manifest line), ``source``, ``code`` (a stable error code, e.g. a
:data:`vecsim.bulk.manifest.BAD_ROW_CODES` key), ``message`` and ``time`` (UTC, ISO 8601).

The file is append-only: a rerun of the same manifest adds its own lines after those of the
earlier run. Each record is one ``write`` to a file opened with ``O_APPEND``, so a record is on
disk (in the operating system's hands) as soon as :meth:`FailuresFile.write` returns, and a crash
leaves at most its last line cut short; the next open starts on a fresh line, and
:func:`read_failures` skips a cut line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .manifest import BadRow

#: The keys of every record, in this order.
FIELDS = ("line", "source", "code", "message", "time")


class FailuresFile:
    """Appends failure records to ``path`` (created if missing, with its folder). A context
    manager; :meth:`close` is safe to call twice."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.written = 0
        if _ends_mid_line(self.path):  # an earlier run died half-way through a record
            os.write(self._fd, b"\n")

    def write(self, line: int, source: str, code: str, message: str) -> dict[str, Any]:
        """Append one record; returns it."""
        if self._fd is None:
            raise ValueError(f"{self.path}: the failures file is closed")
        record = {"line": line, "source": source, "code": code, "message": message,
                  "time": datetime.now(UTC).isoformat(timespec="milliseconds")}
        data = _encode(record)
        written = os.write(self._fd, data)
        while written < len(data):  # a short write (a full disk gives an OSError instead)
            written += os.write(self._fd, data[written:])
        self.written += 1
        return record

    def write_bad_row(self, row: BadRow) -> dict[str, Any]:
        """Append a :class:`~vecsim.bulk.manifest.BadRow`."""
        return self.write(row.line, row.source, row.code, row.message)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FailuresFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_failures(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """The records of a failures file, in order, streamed; a line cut short by a crash is skipped."""
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                return  # the cut last line of a run that died while writing it
            try:
                record = json.loads(raw)
            except ValueError:
                continue  # a cut line that a later run's first record completed with its newline
            if isinstance(record, dict) and set(FIELDS) <= set(record):
                yield record


def _encode(record: dict[str, Any]) -> bytes:
    text = json.dumps(record, ensure_ascii=False)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a path that is not valid UTF-8 (surrogate escapes): escape it
        data = json.dumps(record, ensure_ascii=True).encode("ascii")
    return data + b"\n"


def _ends_mid_line(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return False
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"
