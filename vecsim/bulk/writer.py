"""The writing half of an ingest: commit embedded assets to an index, many at a time, each whole
or not at all, each task_id once.

The steps are ``add``'s (``CustomIndex._stage_frames``, ``commit_assets``, ``_committed``,
``_abandon``); what differs is the batching: the frame rows of a group of assets go to the store
in one insert (the adapter splits it into requests under the engine's size limit), then their
records in one commit. Until a record is committed its rows are invisible, so a writer killed
anywhere leaves each asset either committed or invisible (``vacuum`` deletes the leftovers; the
next write of the same task_id sweeps them too).

Before it writes, the writer reads the records the group's task_ids have *now*: an asset a
killed and retried worker committed already is ``skipped`` (same digest), never written twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import TaskExistsError
from ..index import CustomIndex, _Staged
from ..store import FrameRow
from .work import Embedded, Outcome, failed, skipped


class _Rows:
    """Takes the frame rows ``_RowWriter`` writes, per asset, instead of the store."""

    def __init__(self) -> None:
        self.rows: list[FrameRow] = []

    def insert_frames(self, rows: list[FrameRow]) -> None:
        self.rows += rows


class Committer:
    """Writes groups of :class:`~.work.Embedded` assets to ``index``. ``replace``: re-index a
    task_id the index holds with other content (else that row fails with ``task_exists``)."""

    def __init__(self, index: CustomIndex, replace: bool = False):
        self.index, self.replace = index, replace

    def write(self, items: Sequence[Embedded]) -> list[Outcome]:
        store = self.index._store
        outcomes: list[Outcome] = []
        try:
            records = store.assets([e.task.task_id for e in items])
        except Exception as exc:  # noqa: BLE001 - the store is down: every row of the group fails
            return [failed(e.task, exc) for e in items]
        staged: list[tuple[Embedded, _Staged, list[FrameRow]]] = []
        for e in items:
            existing = records.get(e.task.task_id)
            if existing is not None and (existing.digest == e.digest or (not existing.digest and not self.replace)):
                outcomes.append(skipped(e.task, "unchanged" if existing.digest else
                                        "in the index already, without a content digest (--replace re-indexes it)"))
                continue
            if existing is not None and not self.replace:
                outcomes.append(failed(e.task, TaskExistsError(
                    f"task_id {e.task.task_id!r} holds other content (pass --replace / replace=True to re-index it)")))
                continue
            rows = _Rows()
            try:
                st = self.index._stage_frames(e.task.task_id, e.frames, lambda e=e: e.facts, e.task.metadata,
                                              existing, sweep=True, digest=e.digest, rows_to=rows)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - reported per row
                outcomes.append(failed(e.task, exc))
                continue
            staged.append((e, st, rows.rows))
        if staged:
            outcomes += self._commit(staged)
        return outcomes

    def _commit(self, staged: list[tuple[Embedded, _Staged, list[FrameRow]]]) -> list[Outcome]:
        """All the rows in one insert and all the records in one commit (``add_many``'s group
        commit, :meth:`CustomIndex._commit_staged`); an asset that fails fails only itself."""
        done, bad = self.index._commit_staged([st for _, st, _ in staged], [rows for _, _, rows in staged])
        out = [failed(staged[i][0].task, exc) for i, exc in bad]
        for i, result in done:
            task = staged[i][0].task
            out.append(Outcome(task.line, task.source, task.task_id, "replaced" if result.replaced else "added",
                               result.stored_frames, result.frames))
        return out
