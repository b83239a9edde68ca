"""``vecsim.ingest``: add every asset of a manifest to an index, locally or on Ray; resumable.

The driver (this module) reads the manifest, gives each row its final task_id, asks the index
which of those it holds already (and with which content digest), and hands the rows to the
workers in chunks; it writes bad rows and failed rows to the failures file and keeps the counts
and the progress bar. Where the work runs is :mod:`.local` (this process) or :mod:`.on_ray`
(a Ray cluster); both call the same steps (:mod:`.work`, :mod:`.writer`), which are ``add``'s.

**Exactly once.** A row without a ``task_id`` gets one derived from its source
(:func:`derived_task_id`), so a rerun names the same asset the same way. An asset is committed
through the store's generation protocol, with the sha256 of its bytes on its record: a rerun
skips every row whose task_id the index holds with the same digest (without decoding it), and
adds the rest. ``replace=True`` re-indexes a task_id whose content changed (without it, that row
fails with ``task_exists``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidRequestError
from ..index import CustomIndex
from .failures import FailuresFile
from .manifest import BadRow, Manifest
from .work import Outcome, Task

log = logging.getLogger(__name__)

#: Rows looked up in the index (one request) and handed to the workers at a time.
CHUNK_ROWS = 64
#: Engines several processes can write to at once; the others (embedded files) are written by
#: the driver alone.
SERVER_ENGINES = ("milvus", "qdrant")


def derived_task_id(source: str) -> str:
    """The task_id of a manifest row that names none: ``src-`` and 32 hex digits of the sha256
    of its source (the absolute path or the URL), the same on every run."""
    return "src-" + hashlib.sha256(source.encode("utf-8", "surrogateescape")).hexdigest()[:32]


@dataclass
class IngestResult:
    """The counts of an ingest. ``failed`` rows are in the failures file (``failures``)."""

    added: int = 0
    replaced: int = 0
    skipped: int = 0
    failed: int = 0
    frames: int = 0  # frame rows stored by this run
    seconds: float = 0.0
    failures: str = ""
    mode: str = "local"
    workers: int = 1
    by_code: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.added + self.replaced + self.skipped + self.failed

    @property
    def assets_per_s(self) -> float:
        return (self.added + self.replaced) / self.seconds if self.seconds else 0.0

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        return (f"{self.added} added, {self.replaced} replaced, {self.skipped} skipped (unchanged), "
                f"{self.failed} failed; {self.frames} frames in {self.seconds:.1f} s "
                f"({self.assets_per_s:.1f} assets/s, {self.frames_per_s:.1f} frames/s; {self.mode}, "
                f"{self.workers} worker{'s' if self.workers != 1 else ''})"
                + (f"; failures in {self.failures}" if self.failed else ""))


class Tally:
    """The counts, the failures file and the progress bar of a running ingest."""

    def __init__(self, failures: FailuresFile, total: int, progress: bool | None, result: IngestResult):
        from tqdm import tqdm

        self.failures, self.result = failures, result
        show = progress if progress is not None else sys.stderr.isatty()
        self.bar = tqdm(total=total, desc="ingest", unit="asset", disable=not show, file=sys.stderr)
        self.started = time.monotonic()

    def one_more(self) -> None:
        self.bar.total += 1
        self.bar.refresh()

    def bad_row(self, row: BadRow) -> None:
        self.failures.write_bad_row(row)
        self._count_failed(row.code)

    def outcome(self, o: Outcome) -> None:
        r = self.result
        if o.status == "failed":
            self.failures.write(o.line, o.source, o.code, o.message)
            self._count_failed(o.code)
            return
        if o.status == "skipped":
            r.skipped += 1
        else:
            r.added += o.status == "added"
            r.replaced += o.status == "replaced"
            r.frames += o.frames
        self._tick()

    def _count_failed(self, code: str) -> None:
        self.result.failed += 1
        self.result.by_code[code] = self.result.by_code.get(code, 0) + 1
        self._tick()

    def _tick(self) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        r = self.result
        self.bar.set_postfix_str(f"{(r.added + r.replaced) / elapsed:.1f} assets/s, {r.frames / elapsed:.0f} frames/s",
                                 refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.result.seconds = time.monotonic() - self.started
        self.bar.close()


def chunks(manifest: Manifest, index: CustomIndex, tally: Tally, size: int = CHUNK_ROWS) -> Iterator[list[Task]]:
    """The manifest's good rows as :class:`Task` lists of ``size``, each task with its final
    task_id and the digest the index holds for it now; bad rows go to ``tally``."""
    derived: set[str] = set()  # a derived id given twice = the same source twice
    pending: list[Any] = []
    last_line = None
    for item in manifest:
        if item.line == last_line:
            tally.one_more()  # a folder's second file, third, ...: the total counted its row once
        last_line = item.line
        if isinstance(item, BadRow):
            tally.bad_row(item)
            continue
        task_id = item.task_id
        if task_id is None:
            task_id = derived_task_id(item.source)
            if task_id in derived:
                tally.bad_row(BadRow(item.line, item.source, "duplicate_task_id",
                                     f"{item.source} is named by an earlier row of the manifest already"))
                continue
            derived.add(task_id)
        pending.append((item, task_id))
        if len(pending) >= size:
            yield _tasks(index, pending)
            pending = []
    if pending:
        yield _tasks(index, pending)


def _tasks(index: CustomIndex, pending: list[Any]) -> list[Task]:
    records = index._store.assets([tid for _, tid in pending])
    return [Task(item.line, item.source, tid, item.metadata,
                 records[tid].digest if tid in records else None) for item, tid in pending]


def ingest(
    manifest: str | os.PathLike,
    index: str | CustomIndex | None = None,
    *,
    ray: str | None = None,
    workers: int = 1,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    replace: bool = False,
    failures: str | os.PathLike | None = None,
    manifest_format: str | None = None,
    progress: bool | None = None,
    **index_options: Any,
) -> IngestResult:
    """Add every asset of ``manifest`` (CSV, JSON lines or Parquet: ``source``, optional
    ``task_id`` and ``metadata``; see :mod:`vecsim.bulk.manifest`) to ``index`` (a URI, or an open
    :class:`CustomIndex`; ``index_options`` are CustomIndex's when it is a URI).

    Without ``ray`` it runs in this process; with ``ray`` (an address: ``"auto"`` for a running
    cluster, ``"local"`` to start one on this machine with ``workers × cpus_per_worker`` CPUs) the
    media are read in Ray tasks and decoded and embedded in ``workers`` actors (one model each,
    ``gpus_per_worker`` GPUs each). Server stores (Milvus, Qdrant) are written by the actors; an
    embedded file (Milvus Lite, Qdrant Edge) only by this process, from the vectors they return.

    Bad rows and assets that fail are written to ``failures`` (default: the manifest's path with
    ``.failures.jsonl``) and counted; nothing stops the job but a whole-manifest error
    (:class:`~vecsim.bulk.manifest.ManifestError`) or Ctrl-C. Rerun the same manifest to resume.
    """
    if workers < 1:
        raise InvalidRequestError(f"workers must be at least 1, not {workers}")
    if cpus_per_worker <= 0 or gpus_per_worker < 0:
        raise InvalidRequestError("cpus_per_worker must be > 0 and gpus_per_worker >= 0")
    if ray is None and (workers != 1 or gpus_per_worker):
        raise InvalidRequestError("workers and gpus_per_worker are for a Ray run: pass ray='local', 'auto' or an address")
    man = Manifest(manifest, manifest_format)
    failures_path = Path(failures) if failures is not None else man.path.with_name(man.path.name + ".failures.jsonl")
    owned = not isinstance(index, CustomIndex)
    idx = CustomIndex(index, **index_options) if owned else index
    try:
        total = man.count_records()  # a folder row adds its other files to the bar when it is read
        result = IngestResult(failures=str(failures_path), mode="ray" if ray else "local", workers=workers)
        with FailuresFile(failures_path) as ff:
            tally = Tally(ff, total, progress if progress is not None else idx.progress, result)
            try:
                if ray is None:
                    from .local import run_local

                    run_local(chunks(man, idx, tally), idx, tally, replace)
                else:
                    from .on_ray import run_on_ray

                    run_on_ray(chunks(man, idx, tally), idx, tally, replace, address=ray, workers=workers,
                               cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
                               driver_writes=idx._store.engine not in SERVER_ENGINES)
            finally:
                tally.close()
        if result.added or result.replaced:
            idx._store.build_index()  # once, at the end: not after each asset
        log.info("ingest of %s: %s", man.path, result.summary())
        return result
    finally:
        if owned:
            idx.close()
