"""Bulk ingest: ``add_many`` commits assets in groups and builds the index once, still all or
nothing per asset, and queries see each group as soon as it is committed."""

from __future__ import annotations

import threading

import pytest

import vecsim.index as index_module
from vecsim import CustomIndex, edits
from vecsim.adapters import default_index, open_store
from vecsim.descriptors import load_descriptor
from vecsim.store import CollectionSpec

pytest.importorskip("qdrant_edge")


class Spy:
    """A store that counts the writes it passes on (and can refuse one record)."""

    def __init__(self, store, refuse: str | None = None):
        self._store, self.refuse = store, refuse
        self.calls: list[tuple[str, int]] = []
        self.cut_next_insert = False  # the next insert writes its first row only, then fails

    def insert_frames(self, rows):
        if self.cut_next_insert and len(rows) > 1:
            self.cut_next_insert = False
            self._store.insert_frames(rows[:1])
            raise RuntimeError("the connection dropped half-way through the insert")
        self._store.insert_frames(rows)

    def __getattr__(self, name):
        return getattr(self._store, name)

    def commit_assets(self, records):
        self.calls.append(("commit_assets", len(records)))
        if any(r.task_id == self.refuse for r in records):
            raise RuntimeError("the group write failed")
        self._store.commit_assets(records)

    def commit_asset(self, record):
        self.calls.append(("commit_asset", 1))
        if record.task_id == self.refuse:
            raise RuntimeError(f"cannot commit {record.task_id}")
        self._store.commit_asset(record)

    def build_index(self):
        self.calls.append(("build_index", 0))
        self._store.build_index()


def _spied(tmp_path, refuse=None, uri: str | None = None, collection: str = "vecsim") -> tuple[CustomIndex, Spy]:
    uri = uri or str(tmp_path / "bulk")
    desc = load_descriptor(None)
    spec = CollectionSpec(desc.name, desc.version, desc.dim, default_index(uri))
    spy = Spy(open_store(uri, collection, spec), refuse)
    return CustomIndex(store=spy), spy  # type: ignore[arg-type]


def test_add_many_commits_in_groups_and_builds_once(tmp_path, photos, monkeypatch):
    monkeypatch.setattr(index_module, "COMMIT_GROUP_ASSETS", 2)
    index, spy = _spied(tmp_path)
    with index:
        names = sorted(photos)[:5]
        result = index.add_many([photos[n] for n in names], metadata=[{"n": n} for n in names])
        assert not result.failed and [r.stored_frames for r in result.added] == [1] * 5
        assert spy.calls == [("commit_assets", 2), ("commit_assets", 2), ("commit_assets", 1), ("build_index", 0)]
        assert index.count() == 5
        for r, n in zip(result.added, names):  # results in input order, each queryable
            assert index.get(r.task_id).metadata == {"n": n}
            assert index.query(edits.center_crop(0.6)(photos[n])).output[0].task_id == r.task_id


def test_a_failed_group_write_fails_only_the_bad_asset(tmp_path, photos, monkeypatch):
    monkeypatch.setattr(index_module, "COMMIT_GROUP_ASSETS", 10)
    ids = iter(["a", "b", "c"])
    monkeypatch.setattr(index_module, "new_task_id", lambda: next(ids))
    index, spy = _spied(tmp_path, refuse="b")
    with index:
        names = sorted(photos)[:3]
        result = index.add_many([photos[n] for n in names])
        assert [r.task_id for r in result.added] == ["a", "c"]
        assert len(result.failed) == 1 and "cannot commit b" in result.failed[0].message
        assert spy.calls == [("commit_assets", 3), ("commit_asset", 1), ("commit_asset", 1), ("commit_asset", 1),
                             ("build_index", 0)]
        assert index.count() == 2
        assert index.store.count() == (2, 2)  # the refused asset's frame row was deleted


def test_queries_during_a_bulk_load_see_every_committed_group(tmp_path, photos, monkeypatch):
    monkeypatch.setattr(index_module, "COMMIT_GROUP_ASSETS", 1)
    index, spy = _spied(tmp_path)
    names = sorted(photos)[:4]
    seen: list[int] = []
    committed = threading.Event()
    real = spy.commit_assets

    def commit_then_look(records):  # another thread queries after each group is committed
        real(records)
        t = threading.Thread(target=lambda: seen.append(index.count()))
        t.start()
        t.join()
        committed.set()

    spy.commit_assets = commit_then_look
    with index:
        index.add_many([photos[n] for n in names])
    assert committed.is_set() and seen == [1, 2, 3, 4]


def test_a_failed_index_build_after_a_bulk_load_keeps_every_asset(tmp_path, photos, caplog):
    from vecsim.errors import StoreError

    index, spy = _spied(tmp_path)

    def broken():
        raise StoreError("the build ran out of disk")

    spy.build_index = broken
    with index, caplog.at_level("WARNING", logger="vecsim.index"):
        result = index.add_many([photos["coffee"], photos["rocket"]])
        assert len(result.added) == 2 and not result.failed and index.count() == 2
        assert "ran out of disk" in caplog.text and "searches stay right" in caplog.text


def test_an_ingest_group_that_fails_to_commit_fails_only_the_bad_asset(tmp_path, photos):
    """``vecsim ingest`` commits through the same group commit as ``add_many``: one insert and one
    commit for the group, then each asset alone where that fails."""
    import json

    from vecsim import ingest
    from vecsim.bulk import derived_task_id, read_failures

    names = sorted(photos)[:3]
    for n in names:
        photos[n].convert("RGB").save(tmp_path / f"{n}.jpg", quality=90)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"source": f"{n}.jpg"}) + "\n" for n in names))
    bad = derived_task_id(str(tmp_path / f"{names[1]}.jpg"))
    index, spy = _spied(tmp_path, refuse=bad)
    with index:
        result = ingest(manifest, index, failures=tmp_path / "failures.jsonl")
        assert (result.added, result.failed, result.frames) == (2, 1, 2)
        assert spy.calls == [("commit_assets", 3), ("commit_asset", 1), ("commit_asset", 1), ("commit_asset", 1),
                             ("build_index", 0)]
        [failure] = read_failures(tmp_path / "failures.jsonl")
        assert failure["source"].endswith(f"{names[1]}.jpg") and f"cannot commit {bad}" in failure["message"]
        assert index.count() == 2 and index.store.count() == (2, 2)  # the refused asset's row is deleted


@pytest.mark.parametrize("engine", ["milvus-lite", "milvus"])
def test_an_ingest_group_insert_cut_half_way_leaves_no_duplicate_row(tmp_path, photos, engine, request):
    """A group's insert that fails part-way (some rows stored) is retried asset by asset: the
    rows it left are swept first, so no frame is stored twice (Milvus keeps both copies of a
    primary key inserted twice)."""
    import json

    from vecsim import ingest

    names = sorted(photos)[:3]
    for n in names:
        photos[n].convert("RGB").save(tmp_path / f"{n}.jpg", quality=90)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"source": f"{n}.jpg"}) + "\n" for n in names))
    uri = f"milvus-lite:{tmp_path / 'cut.db'}" if engine == "milvus-lite" else request.getfixturevalue("milvus_server_uri")[0]
    index, spy = _spied(tmp_path, uri=uri, collection=f"cut_insert_{engine.replace('-', '_')}")
    spy.cut_next_insert = True
    with index:
        result = ingest(manifest, index, failures=tmp_path / "failures.jsonl")
        assert (result.added, result.failed, result.frames) == (3, 0, 3) and not spy.cut_next_insert
        assert index.count() == 3 and index.store.count() == (3, 3)
