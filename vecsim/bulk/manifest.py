"""Read an ingest manifest: one row per asset to add, streamed (a manifest may have millions of rows).

Formats (chosen by the file name, or ``format=``):

- **CSV** (``.csv``): UTF-8 (a BOM is allowed), a header naming the columns ``source`` (required),
  ``task_id`` and ``metadata`` (optional; ``metadata`` is JSON text, e.g. ``"{""listing"": 42}"``).
  Line numbers are those of the file, header = line 1; a record whose quoted cell spans several
  lines has the number of its first line.
- **JSON lines** (``.jsonl``, ``.ndjson``): one JSON object per line with the same keys;
  ``metadata`` is an object. Blank lines are skipped; line 1 is the file's first line.
- **Parquet** (``.parquet``, ``.pq``; needs ``pyarrow``): the same columns, all strings
  (``metadata`` as JSON text); "line" is the row number, from 1.

No other columns (keys) are allowed: a misspelt ``task_id`` column would otherwise be dropped
silently, and a rerun would then add every asset again under new ids.

An empty ``task_id`` (empty cell, ``null``, ``""``) means none: ``add`` makes one. An empty
``metadata`` means ``{}``. ``source`` is an ``http(s)://`` URL (passed through), or a path;
a relative path is relative to the manifest's folder. A folder becomes one row per image or
video file under it (recursively, sorted: :func:`vecsim.media.inputs.files_under`), each with the
folder row's line number and metadata.

A bad row never stops reading: it is a :class:`BadRow` in the same stream, with a stable ``code``
(:data:`BAD_ROW_CODES`). A problem with the manifest as a whole (no such file, an unknown format,
a header without ``source``) is a :class:`ManifestError`, raised by :class:`Manifest` before any row.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import InvalidRequestError, MissingDependencyError
from ..media.inputs import MEDIA_EXTENSIONS, files_under, is_url
from ..validate import check_metadata, check_task_id, short_repr

#: The columns (keys) a manifest may have.
COLUMNS = ("source", "task_id", "metadata")
#: Manifest formats, by file name ending.
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
#: Parquet rows read at a time.
PARQUET_BATCH_ROWS = 4096

#: Every ``BadRow.code``, and what it means.
BAD_ROW_CODES = {
    "missing_source": "the row has no source (empty cell, null, or no such key)",
    "invalid_source": "the source is not a string (JSON lines), or holds a NUL character",
    "unsupported_source": "the source is a URL of a scheme other than http(s)",
    "not_found": "the source path does not exist",
    "not_readable": "the source path cannot be read (permission denied, name too long, ...)",
    "empty_folder": "the source is a folder with no image or video file under it",
    "task_id_on_folder": "a task_id on a folder row (a folder is many assets; one task_id cannot name them all)",
    "invalid_task_id": "the task_id is not one vecsim.validate.check_task_id accepts",
    "invalid_metadata": "the metadata is not JSON, or not what vecsim.validate.check_metadata accepts",
    "duplicate_task_id": "the task_id was already given by an earlier good row of the manifest (the later row fails)",
    "invalid_row": "the row is not a record: a CSV row with more cells than the header, a JSON line that is "
                   "not an object, or has a key other than source / task_id / metadata",
    "invalid_json": "a JSON line that is not JSON",
    "invalid_encoding": "the row is not valid UTF-8",
}

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


class ManifestError(InvalidRequestError):
    """The manifest as a whole cannot be read: no such file, unknown format, a header or Parquet
    schema without ``source`` or with a column vecsim does not know."""


class ManifestRow(NamedTuple):
    """One asset to add. ``source`` is an absolute path or an http(s) URL; ``metadata`` is checked
    (:func:`vecsim.validate.check_metadata`), ``task_id`` too (``None``: one is generated)."""

    line: int
    source: str
    task_id: str | None
    metadata: dict[str, Any]


class BadRow(NamedTuple):
    """A row that cannot be added: ``code`` is one of :data:`BAD_ROW_CODES`, ``message`` says why."""

    line: int
    source: str
    code: str
    message: str


def detect_format(path: str | os.PathLike) -> str:
    """``"csv"``, ``"jsonl"`` or ``"parquet"`` from the file name (:data:`FORMATS`)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ManifestError(
            f"{os.fspath(path)}: cannot tell the manifest format from the name (use one of "
            f"{', '.join(sorted(FORMATS))}, or pass format='csv' / 'jsonl' / 'parquet')"
        )
    return FORMATS[suffix]


class Manifest:
    """An ingest manifest. Constructing it checks the file, its format and its header (a
    :class:`ManifestError` otherwise); iterating it streams :class:`ManifestRow` and
    :class:`BadRow` items in file order, reading the file anew each time (it can be counted first).

    Duplicate task_ids are found by remembering every task_id seen in one pass: memory grows with
    the number of rows that have one (about 100 bytes each), nothing else does."""

    def __init__(self, path: str | os.PathLike, format: str | None = None):
        self.path = Path(os.path.abspath(os.fspath(path)))
        self.format = format or detect_format(self.path)
        if self.format not in ("csv", "jsonl", "parquet"):
            raise ManifestError(f"unknown manifest format {self.format!r} (csv, jsonl or parquet)")
        if not self.path.is_file():
            raise ManifestError(f"{self.path}: no such manifest file")
        self.folder = self.path.parent
        self.columns = self._columns()

    def __iter__(self) -> Iterator[ManifestRow | BadRow]:
        records = {"csv": self._csv_records, "jsonl": self._jsonl_records, "parquet": self._parquet_records}
        taken: dict[str, int] = {}  # task_id -> line of the good row that gave it
        for record in records[self.format]():
            if isinstance(record, BadRow):
                yield record
            else:
                yield from self._rows(*record, taken)

    def count_records(self) -> int:
        """How many records the file holds (each gives one row, or a folder's files), without
        checking them: Parquet's footer, or a plain pass over the text. For a progress bar's total."""
        if self.format == "parquet":
            parquet = _pyarrow_parquet().ParquetFile(self.path)
            try:
                return parquet.metadata.num_rows
            finally:
                parquet.close()
        if self.format == "jsonl":
            with open(self.path, "rb") as f:
                return sum(1 for raw in f if raw.strip() and raw.strip() != b"\xef\xbb\xbf")
        n = 0
        with self._open_text() as f:
            reader = csv.reader(f)
            next(reader)
            while True:
                try:
                    n += bool(next(reader))
                except StopIteration:
                    return n
                except csv.Error:
                    n += 1

    # --- the formats: each yields (line, source, task_id, metadata, metadata_is_text) or a BadRow ---

    def _columns(self) -> tuple[str, ...]:
        if self.format == "jsonl":
            return COLUMNS
        if self.format == "parquet":
            return _parquet_columns(self.path)
        with self._open_text() as f:
            header = next(csv.reader(f), None)
        if not header:
            raise ManifestError(f"{self.path}: empty CSV file (the first line must be a header with a source column)")
        return _check_columns(self.path, [name.strip() for name in header])

    def _open_text(self) -> io.TextIOWrapper:
        # surrogateescape: a row that is not UTF-8 becomes a bad row, not the end of the reading
        return open(self.path, encoding="utf-8-sig", errors="surrogateescape", newline="")

    def _csv_records(self) -> Iterator[tuple | BadRow]:
        width = len(self.columns)
        with self._open_text() as f:
            reader = csv.reader(f)
            next(reader)  # the header, checked by _columns
            while True:
                line = reader.line_num + 1
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:  # e.g. a cell over csv.field_size_limit()
                    yield BadRow(line, "", "invalid_row", f"not a CSV record: {exc}")
                    continue
                if not cells:
                    continue  # a blank line
                at = self.columns.index("source")
                source = _printable(cells[at]) if len(cells) > at else ""
                if any(_has_surrogates(cell) for cell in cells):
                    yield BadRow(line, source, "invalid_encoding", "the row is not valid UTF-8")
                    continue
                if len(cells) > width:
                    yield BadRow(line, source, "invalid_row",
                                 f"{len(cells)} cells for a header of {width} columns (quote a cell that holds "
                                 "commas, e.g. the metadata JSON, in double quotes, doubling the quotes inside)")
                    continue
                row = dict(zip(self.columns, cells))
                yield line, row.get("source", ""), row.get("task_id", ""), row.get("metadata", ""), True

    def _jsonl_records(self) -> Iterator[tuple | BadRow]:
        with open(self.path, "rb") as f:
            for line, raw in enumerate(f, start=1):
                if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield BadRow(line, "", "invalid_encoding", f"the line is not valid UTF-8 ({exc.reason} at byte "
                                                               f"{exc.start})")
                    continue
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                except ValueError as exc:
                    yield BadRow(line, "", "invalid_json", f"not JSON: {exc}")
                    continue
                if not isinstance(obj, dict):
                    yield BadRow(line, "", "invalid_row", f"a JSON {type(obj).__name__}, not an object")
                    continue
                source = obj.get("source")
                unknown = sorted(set(obj) - set(COLUMNS))
                if unknown:
                    yield BadRow(line, source if isinstance(source, str) else "", "invalid_row",
                                 f"unknown key(s) {', '.join(map(repr, unknown))} (keys: {', '.join(COLUMNS)}; "
                                 "put anything else in metadata)")
                    continue
                yield line, source, obj.get("task_id"), obj.get("metadata"), False

    def _parquet_records(self) -> Iterator[tuple | BadRow]:
        pq = _pyarrow_parquet()
        import pyarrow as pa

        line = 0
        parquet = pq.ParquetFile(self.path)
        batches = parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=list(self.columns))
        try:
            while True:
                try:
                    batch = next(batches, None)
                except (OSError, pa.ArrowException) as exc:  # a damaged file: no later row can be found
                    raise ManifestError(f"{self.path}: cannot read the Parquet rows after row {line}: {exc}") from None
                if batch is None:
                    return
                columns = {name: batch.column(name).to_pylist() for name in self.columns}
                for i in range(batch.num_rows):
                    line += 1
                    get = {name: values[i] for name, values in columns.items()}.get
                    yield line, get("source"), get("task_id"), get("metadata"), True
        finally:
            parquet.close()

    # --- one record -> rows ---------------------------------------------------------------------

    def _rows(self, line: int, source: Any, task_id: Any, metadata: Any, metadata_is_text: bool,
              taken: dict[str, int]) -> Iterator[ManifestRow | BadRow]:
        if source is None or source == "":
            yield BadRow(line, "", "missing_source", "the row has no source")
            return
        if not isinstance(source, str):
            yield BadRow(line, short_repr(source), "invalid_source",
                         f"the source is a {type(source).__name__}, not a string (a path or an http(s) URL)")
            return
        if "\x00" in source:  # no path can hold it (the OS refuses it), no URL either
            yield BadRow(line, source.replace("\x00", "\\x00"), "invalid_source", "the source holds a NUL character")
            return
        if task_id == "":
            task_id = None
        if task_id is not None:
            try:
                check_task_id(task_id)
            except InvalidRequestError as exc:
                yield BadRow(line, source, "invalid_task_id", str(exc))
                return
        try:
            metadata = _metadata(metadata, metadata_is_text)
        except InvalidRequestError as exc:
            yield BadRow(line, source, "invalid_metadata", str(exc))
            return
        if is_url(source):
            targets = [source]
        elif _SCHEME.match(source):
            yield BadRow(line, source, "unsupported_source", "only http:// and https:// URLs can be fetched")
            return
        else:
            try:
                targets = self._paths(line, source, task_id)
            except _Bad as bad:
                yield bad.row
                return
        if task_id is not None:
            first = taken.get(task_id)
            if first is not None:
                yield BadRow(line, source, "duplicate_task_id",
                             f"task_id {task_id!r} is already given on line {first} of the manifest")
                return
            taken[task_id] = line
        for n, target in enumerate(targets):  # each file of a folder gets its own copy of the metadata
            yield ManifestRow(line, target, task_id, metadata if n == 0 else copy.deepcopy(metadata))

    def _paths(self, line: int, source: str, task_id: str | None) -> list[str]:
        path = self.folder / source  # an absolute source stays itself
        try:
            if not path.exists():
                raise _Bad(BadRow(line, source, "not_found", f"no such file or folder: {path}"))
            if not path.is_dir():
                return [str(path)]
            if task_id is not None:
                raise _Bad(BadRow(line, source, "task_id_on_folder",
                                  f"{path} is a folder, which holds many assets: one task_id cannot name them all "
                                  "(list its files one per row to give them task_ids)"))
            files = files_under(path, MEDIA_EXTENSIONS)
        except OSError as exc:
            raise _Bad(BadRow(line, source, "not_readable", f"{path}: {exc.strerror or exc}")) from None
        if not files:
            raise _Bad(BadRow(line, source, "empty_folder",
                              f"no image or video file under {path} (extensions: "
                              f"{' '.join(sorted(MEDIA_EXTENSIONS))})"))
        return [str(p) for p in files]


def read_manifest(path: str | os.PathLike, format: str | None = None) -> Iterator[ManifestRow | BadRow]:
    """Stream the rows of a manifest: ``iter(Manifest(path, format))``."""
    return iter(Manifest(path, format))


class _Bad(Exception):
    def __init__(self, row: BadRow):
        self.row = row


def _metadata(value: Any, is_text: bool) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if is_text:
        if not isinstance(value, str):
            raise InvalidRequestError(f"metadata must be JSON text, got a {type(value).__name__}")
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InvalidRequestError(f"metadata is not JSON: {exc}") from None
    return check_metadata(value)


def _check_columns(path: Path, names: list[str]) -> tuple[str, ...]:
    if "source" not in names:
        raise ManifestError(f"{path}: no source column (columns: {', '.join(map(repr, names))}; "
                            f"a manifest has {', '.join(COLUMNS)})")
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        raise ManifestError(f"{path}: unknown column(s) {', '.join(map(repr, unknown))} (a manifest has "
                            f"{', '.join(COLUMNS)}; put anything else in metadata)")
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise ManifestError(f"{path}: column(s) {', '.join(map(repr, doubled))} given twice")
    return tuple(names)


def _pyarrow_parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError(
            f"a Parquet manifest needs pyarrow ({exc}): pip install pyarrow (or 'vecsim[ray]'), or write the manifest as CSV "
            "or JSON lines"
        ) from exc
    return pq


def _parquet_columns(path: Path) -> tuple[str, ...]:
    pq = _pyarrow_parquet()
    import pyarrow as pa

    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise ManifestError(f"{path}: not a Parquet file: {exc}") from None
    names = _check_columns(path, list(schema.names))
    for name in names:
        kind = schema.field(name).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
            raise ManifestError(f"{path}: column {name!r} is {kind}; every column of a manifest is a string "
                                "(metadata as JSON text)")
    return names


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _printable(text: str) -> str:
    """Text read with surrogateescape, its undecodable bytes shown as ``\\xNN``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
