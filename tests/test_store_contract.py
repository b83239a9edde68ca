"""Contract tests of the :class:`~vecsim.store.VectorStore` protocol itself, on every backend of the
conformance table (``tests/backends.py``), through ``vecsim.adapters.open_store``: 8-d vectors
under a fake spec, no descriptor, so each backend runs in seconds. The collections are made as this
vecsim makes them (with projects; the stores scoped to the default project unless a test says
otherwise); the project tests also run the protocol on one made without (by vecsim < 0.4). Then the
adapters' shared pieces (options, the error boundary) and the Milvus Lite defects."""

from __future__ import annotations

import json
import os
import stat
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from vecsim.adapters import MilvusOptions, QdrantEdgeOptions, QdrantOptions, open_store
from vecsim.adapters._common import asset_key, engine_errors, frame_key, point_id
from vecsim.errors import IndexConfigError, InvalidRequestError, StoreError, StoreUnavailableError, VecsimError
from vecsim.index_config import FlatIndex
from vecsim.store import MAX_LOCAL_BYTES, AssetRecord, CollectionSpec, FrameRow, ReadOnlyStore

from .backends import BACKENDS, backend_uri

DIM = 8
#: A collection as this vecsim creates it: with projects.
SPEC = CollectionSpec("contract-desc", "1", DIM, FlatIndex(), projects=True)
#: One as vecsim < 0.4 created it: no project field, keys as they were.
OLD_SPEC = CollectionSpec("contract-desc", "1", DIM, FlatIndex())
PDQ = "0" * 64


@pytest.fixture(scope="module", params=list(BACKENDS))
def backend_module(request, tmp_path_factory):
    """(URI, legacy options) of one backend for the whole module; collections differ per test."""
    uri, options, cleanup = backend_uri(request, request.param, tmp_path_factory.mktemp(request.param))
    if uri.startswith("http"):  # the contract reads its own (and a reopened store's) writes at once
        options = {**options, "consistency": "Strong"}
    yield request.param, uri, options
    cleanup()


@pytest.fixture
def store(backend_module):
    _, uri, options = backend_module
    s = open_store(uri, f"c_{uuid.uuid4().hex[:10]}", SPEC, **options)
    yield s
    s.close()


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def rows(task_id: str, generation: str, vectors, start: int = 0) -> list[FrameRow]:
    return [FrameRow(task_id, generation, start + i, float(start + i), float(start + i + 1), unit(v), PDQ)
            for i, v in enumerate(vectors)]


def record(task_id: str, generation: str, frames: int, **metadata) -> AssetRecord:
    return AssetRecord(task_id, generation, "video", f"{task_id}.mp4", float(frames), frames, dict(metadata))


def basis(i: int, noise: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i] = 1.0
    if noise:
        v += (rng or np.random.default_rng(i)).normal(scale=noise, size=DIM).astype(np.float32)
    return unit(v)


# --- the protocol ------------------------------------------------------------------------------


def test_frames_are_invisible_until_the_commit(store):
    store.insert_frames(rows("a", "g1", [basis(0), basis(1)]))
    hits = store.search(basis(0)[None], limit=5)[0]
    assert [(h.task_id, h.generation, h.frame) for h in hits] == [("a", "g1", 0)]  # any generation
    assert store.assets(["a"]) == {}
    assert store.count() == (0, 2)
    store.commit_asset(record("a", "g1", 2, n=1))
    assert store.assets(["a", "missing"]) == {"a": record("a", "g1", 2, n=1)}
    assert store.count() == (1, 2)


def test_commit_overwrites_the_record(store):
    store.insert_frames(rows("a", "g1", [basis(0)]))
    store.commit_asset(record("a", "g1", 1, v=1))
    store.insert_frames(rows("a", "g2", [basis(1), basis(2)]))
    store.commit_asset(record("a", "g2", 2, v=2, nested={"list": [1, "ü"]}))
    assert store.assets(["a"])["a"] == record("a", "g2", 2, v=2, nested={"list": [1, "ü"]})
    assert store.count() == (1, 3)


def test_delete_asset_returns_the_record_then_none(store):
    store.insert_frames(rows("a", "g1", [basis(0)]))
    store.commit_asset(record("a", "g1", 1))
    assert store.delete_asset("a") == record("a", "g1", 1)
    assert store.delete_asset("a") is None
    assert store.assets(["a"]) == {}
    assert store.count() == (0, 1)  # the frames stay until delete_frames


def test_delete_frames_counts_and_keeps_a_generation(store):
    store.insert_frames(rows("a", "g1", [basis(0), basis(1), basis(2)]))
    store.insert_frames(rows("a", "g2", [basis(3), basis(4)]))
    store.insert_frames(rows("b", "g1", [basis(5)]))
    assert store.delete_frames("a", keep_generation="g2") == 3
    assert [f.frame for f in store.frames("a", "g2")] == [0, 1]
    assert store.delete_frames("a") == 2
    assert store.delete_frames("a") == 0
    assert store.count() == (0, 1)


def test_commit_assets_commits_each_record_whole(store):
    store.insert_frames(rows("a", "g1", [basis(0), basis(1)]) + rows("b", "g1", [basis(2)]))
    store.insert_frames(rows("c", "g1", [basis(3)]))  # its record is not written: c stays invisible
    store.commit_assets([record("a", "g1", 2, n=1), record("b", "g1", 1, n=2)])
    assert store.assets(["a", "b", "c"]) == {"a": record("a", "g1", 2, n=1), "b": record("b", "g1", 1, n=2)}
    assert store.count() == (2, 4)
    hits = store.search(np.stack([basis(0), basis(2), basis(3)]), limit=1)  # right after, no build_index
    assert [[h.task_id for h in q] for q in hits] == [["a"], ["b"], ["c"]]  # frames: any generation
    store.commit_assets([])
    assert store.count() == (2, 4)

    store.insert_frames(rows("a", "g2", [basis(4)]))
    store.commit_assets([record("a", "g2", 1), record("c", "g1", 1), record("d", "g9", 0)])  # overwrite + new
    assert store.assets(["a", "b", "c", "d"]) == {
        "a": record("a", "g2", 1), "b": record("b", "g1", 1, n=2), "c": record("c", "g1", 1), "d": record("d", "g9", 0)}
    many = [record(f"m{i:04d}", "g1", 0, i=i) for i in range(1500)]  # more than one engine request's worth
    store.commit_assets(many)
    assert store.count() == (1504, 5)
    got = store.assets([r.task_id for r in many[::100]])
    assert got == {r.task_id: r for r in many[::100]}
    committed, present = store.generations()
    assert len(committed) == 1504 and committed["a"] == "g2" and committed["m1499"] == "g1"
    assert present == {("a", "g1"): 2, ("a", "g2"): 1, ("b", "g1"): 1, ("c", "g1"): 1}


def test_search_groups_by_asset_and_one_asset_cannot_crowd_out_the_others(store):
    rng = np.random.default_rng(0)
    q = basis(0)
    crowd = [unit(q + rng.normal(scale=0.01, size=DIM)) for _ in range(60)]  # near-identical frames
    store.insert_frames(rows("crowd", "g1", crowd))
    store.insert_frames(rows("b", "g1", [unit(q + 0.5 * basis(1)), basis(7)]))
    store.insert_frames(rows("c", "g1", [unit(q + 0.8 * basis(2))]))
    store.insert_frames(rows("far", "g1", [basis(5)]))
    for task_id, n in (("crowd", 60), ("b", 2), ("c", 1), ("far", 1)):
        store.commit_asset(record(task_id, "g1", n))
    store.build_index()

    [hits] = store.search(q[None], limit=3, per_asset=2)
    by_asset: dict[str, list] = {}
    for h in hits:
        by_asset.setdefault(h.task_id, []).append(h)
    assert list(by_asset) == ["crowd", "b", "c"]  # best asset first
    assert len(by_asset["crowd"]) == 2 and len(by_asset["b"]) == 2 and len(by_asset["c"]) == 1
    for group in by_asset.values():
        scores = [h.raw_score for h in group]
        assert scores == sorted(scores, reverse=True)
    best = max(crowd, key=lambda v: float(v @ q))
    assert by_asset["crowd"][0].raw_score == pytest.approx(float(best @ q), abs=1e-4)
    assert by_asset["b"][1].frame == 1 and by_asset["b"][1].timestamp == 1.0 and by_asset["b"][1].pdq == PDQ

    [one] = store.search(q[None], limit=2, per_asset=1)
    assert [h.task_id for h in one] == ["crowd", "b"]
    assert store.search(np.zeros((0, DIM), dtype=np.float32), limit=3) == []
    assert len(store.search(np.stack([q, basis(5)]), limit=1)) == 2


def test_frames_come_in_frame_order(store):
    frame_rows = rows("a", "g1", [basis(i % DIM) for i in range(12)])
    store.insert_frames(frame_rows[::-1][:6])
    store.insert_frames(frame_rows[::-1][6:])
    store.insert_frames(rows("a", "g0", [basis(0)]))  # another generation
    frames = store.frames("a", "g1")
    assert [f.frame for f in frames] == list(range(12))
    assert [(f.timestamp, f.span_end, f.pdq) for f in frames[:2]] == [(0.0, 1.0, PDQ), (1.0, 2.0, PDQ)]
    assert store.frames("a", "missing") == []


def test_generations_scan(store):
    store.insert_frames(rows("a", "g1", [basis(0), basis(1)]))
    store.insert_frames(rows("a", "g2", [basis(2)]))
    store.insert_frames(rows("b", "g1", [basis(3)]))
    store.commit_asset(record("a", "g2", 1))
    store.commit_asset(record("c", "g9", 0))  # a record with no frames
    committed, present = store.generations()
    assert committed == {"a": "g2", "c": "g9"}
    assert present == {("a", "g1"): 2, ("a", "g2"): 1, ("b", "g1"): 1}


#: task_ids whose order and escaping a page must get right: cases, unicode (ü sorts after z, 写
#: after ü: code point order), a quote, an apostrophe, a backslash, a space and a slash.
LIST_IDS = ["b", "a", "Z", "写真", "ünï", 'q"uote', "o'k", "back\\slash", "a b/c"]


def test_list_assets_pages_through_every_record_in_task_id_order(store):
    for t in LIST_IDS:
        store.insert_frames(rows(t, "g1", [basis(len(t) % DIM)]))
    store.commit_assets([record(t, "g1", 1, name=t) for t in LIST_IDS])
    store.insert_frames(rows("c-pending", "g1", [basis(0), basis(1)]))  # an add in progress: no record yet
    want = sorted(LIST_IDS)
    pages, after = [], None
    for _ in range(len(want)):  # bounded: at most one page per record
        page = store.list_assets(3, after)
        pages.append([r.task_id for r in page])
        if len(page) < 3:
            break
        after = page[-1].task_id
    assert pages == [want[0:3], want[3:6], want[6:9], []]
    assert store.list_assets(100) == [record(t, "g1", 1, name=t) for t in want]  # whole records
    for i, t in enumerate(want):  # every task_id as the key to start after, quotes and backslash included
        assert [r.task_id for r in store.list_assets(2, after=t)] == want[i + 1 : i + 3]
    assert store.list_assets(5, after="\U0010ffff") == [] and store.list_assets(0) == []
    assert [r.task_id for r in store.list_assets(3, after="")] == want[:3]


def test_list_assets_sees_commits_and_removals_and_only_its_project(store):
    other = store.for_project("other")
    other.commit_assets([record(t, "g1", 0) for t in ("a", "m", "z")])
    store.commit_assets([record(t, "g1", 0) for t in ("b", "c", "d")])
    assert [r.task_id for r in store.list_assets(10)] == ["b", "c", "d"]
    assert [r.task_id for r in other.list_assets(10, after="a")] == ["m", "z"]
    store.generations()  # a full scan: on a Milvus server it also seals the records written so far
    assert store.delete_asset("c") is not None
    store.commit_asset(record("a", "g2", 0))  # committed between two pages (and unsealed): on the page it sorts into
    assert [r.task_id for r in store.list_assets(2)] == ["a", "b"]
    assert [r.task_id for r in store.list_assets(2, after="b")] == ["d"]
    assert ReadOnlyStore(store).list_assets(1, after="a") == [record("b", "g1", 0)]
    assert store.for_project("empty").list_assets(10) == []


def test_reopen_returns_the_stored_spec(backend_module):
    _, uri, options = backend_module
    name = f"r_{uuid.uuid4().hex[:10]}"
    first = open_store(uri, name, SPEC, **options)
    first.insert_frames(rows("a", "g1", [basis(0)]))
    first.commit_asset(record("a", "g1", 1))
    first.close()
    other = CollectionSpec("other-desc", "2", DIM * 2, FlatIndex())
    again = open_store(uri, name, other, **options)  # the stored spec wins; the core compares it
    try:
        assert again.spec == SPEC
        assert again.count() == (1, 1)
        assert (again.engine, again.collection) == (BACKENDS_ENGINE[backend_module[0]], name)
        assert again.engine_version
    finally:
        again.close()


# --- projects ----------------------------------------------------------------------------------


def _stored_keys(store) -> tuple[set[str], set[str]]:
    """The engine's own ids of every frame row and every asset record of the collection (all
    projects): Milvus primary keys, Qdrant point ids."""
    if store.engine in ("milvus", "milvus-lite"):
        client = store._client

        def pks(name: str, field: str) -> set[str]:
            return {r[field] for r in client.query(name, filter=f'{field} != ""', output_fields=[field], limit=16384,
                                                   consistency_level="Strong")}

        return pks(store.collection, "pk"), pks(store.assets_collection, "pk" if store.spec.projects else "task_id")
    if store.engine == "qdrant-edge":
        from qdrant_edge import ScrollRequest

        def shard_ids(shard) -> set[str]:
            points, _ = shard.scroll(ScrollRequest(limit=10_000, with_payload=False, with_vector=False))
            return {str(p.id) for p in points}

        return shard_ids(store._shard("_frames")), shard_ids(store._shard("_assets"))

    def ids(name: str) -> set[str]:
        points, _ = store._client.scroll(name, limit=10_000, with_payload=False, with_vectors=False)
        return {str(p.id) for p in points}

    return ids(store.collection), ids(store.assets_collection)


def _engine_ids(store, keys: list[str]) -> set[str]:
    """What the engine stores for these keys: the keys (Milvus) or their UUID5 (Qdrant)."""
    return set(keys) if store.engine.startswith("milvus") else {point_id(k) for k in keys}


def test_the_key_functions():
    assert asset_key("t") == "t" and frame_key("t", "g", 3) == "t#g#3"  # a collection without projects
    assert asset_key("t", "") == "/t" and frame_key("t", "g", 3, "") == "/t#g#3"  # the default project
    assert asset_key("a/b", "acme") == "acme/a/b" and frame_key("t#1", "g", 0, "acme") == "acme/t#1#g#0"
    assert point_id(asset_key("t", "")) != point_id(asset_key("t"))


def test_keys_hold_the_project(backend_module):
    _, uri, options = backend_module
    with open_store(uri, f"k_{uuid.uuid4().hex[:10]}", SPEC, project="acme", **options) as store:
        assert store.project == "acme"
        for s in (store, store.for_project("")):
            s.insert_frames(rows("t", "g", [basis(0), basis(1)]))
            s.commit_asset(record("t", "g", 2))
        frames, assets = _stored_keys(store)
        assert frames == _engine_ids(store, ["acme/t#g#0", "acme/t#g#1", "/t#g#0", "/t#g#1"])
        assert assets == _engine_ids(store, ["acme/t", "/t"])


def test_projects_on_one_collection_are_isolated(store):
    assert store.project == "" and store.spec.projects
    a, b = store.for_project("a"), store.for_project("b")
    a.insert_frames(rows("t", "g1", [basis(0), basis(1)]))
    b.insert_frames(rows("t", "g1", [basis(2)]))  # the same task_id, generation and frame numbers
    b.insert_frames(rows("u", "g1", [basis(3)]))
    a.commit_asset(record("t", "g1", 2, who="a"))
    b.commit_assets([record("t", "g1", 1, who="b"), record("u", "g1", 1)])
    assert a.assets(["t", "u"]) == {"t": record("t", "g1", 2, who="a")}
    assert b.assets(["t", "u"]) == {"t": record("t", "g1", 1, who="b"), "u": record("u", "g1", 1)}
    assert store.assets(["t", "u"]) == {} and store.count() == (0, 0) and store.generations() == ({}, {})
    assert (a.count(), b.count()) == ((1, 2), (2, 2))
    assert [f.frame for f in a.frames("t", "g1")] == [0, 1] and [f.frame for f in b.frames("t", "g1")] == [0]
    assert a.generations() == ({"t": "g1"}, {("t", "g1"): 2})
    assert b.generations() == ({"t": "g1", "u": "g1"}, {("t", "g1"): 1, ("u", "g1"): 1})
    [hits] = a.search(basis(2)[None], limit=5, per_asset=5)  # B's exact match is not A's
    assert [(h.task_id, h.frame) for h in hits] in ([("t", 0), ("t", 1)], [("t", 1), ("t", 0)])
    assert all(h.raw_score < 0.5 for h in hits)
    assert [(h.task_id, h.frame) for h in b.search(basis(2)[None], limit=1)[0]] == [("t", 0)]
    assert store.search(basis(2)[None], limit=5) == [[]]

    assert b.delete_asset("t") == record("t", "g1", 1, who="b") and b.delete_asset("t") is None
    assert a.assets(["t"]) == {"t": record("t", "g1", 2, who="a")}
    assert a.delete_asset("u") is None and a.delete_frames("u") == 0  # u is B's
    assert b.delete_frames("t") == 1
    assert (a.count(), b.count()) == ((1, 2), (1, 1))
    assert a.delete_frames("t", keep_generation="g1") == 0 and a.delete_frames("t") == 2
    assert (a.count(), b.count()) == ((1, 0), (1, 1)) and b.assets(["u"]) == {"u": record("u", "g1", 1)}


def test_another_projects_rows_never_crowd_a_search(store):
    rng = np.random.default_rng(11)
    q = basis(0)
    noisy = store.for_project("noisy")
    crowd = [unit(q + rng.normal(scale=0.01, size=DIM)) for _ in range(60)]
    for i in range(0, 60, 2):  # 30 assets of near copies of the query, two frames each
        noisy.insert_frames(rows(f"n{i}", "g1", crowd[i : i + 2]))
    noisy.commit_assets([record(f"n{i}", "g1", 2) for i in range(0, 60, 2)])
    quiet = store.for_project("quiet")
    quiet.insert_frames(rows("mine", "g1", [unit(q + 0.9 * basis(1)), basis(5)]))
    quiet.insert_frames(rows("other", "g1", [unit(q + 2.0 * basis(2))]))
    quiet.commit_assets([record("mine", "g1", 2), record("other", "g1", 1)])
    store.build_index()
    [hits] = quiet.search(q[None], limit=1)
    assert [h.task_id for h in hits] == ["mine"]
    [hits] = quiet.search(q[None], limit=3, per_asset=2)  # all of quiet's, grouped, best asset first
    assert [(h.task_id, h.frame) for h in hits] == [("mine", 0), ("mine", 1), ("other", 0)]
    [hits] = noisy.search(q[None], limit=3, per_asset=2)
    assert len({h.task_id for h in hits}) == 3 and all(h.task_id.startswith("n") for h in hits)
    assert all(sum(h.task_id == t for h in hits) <= 2 for t in {h.task_id for h in hits})  # groups may stop early


def test_local_features_are_read_per_project(local_store):
    a, b = local_store.for_project("a"), local_store.for_project("b")
    a.insert_frames(with_local(rows("t", "g1", [basis(0), basis(1)]), [b"a0", b"a1"]))
    b.insert_frames(with_local(rows("t", "g1", [basis(0)]), [b"b0"]))
    keys = [("t", "g1", 0), ("t", "g1", 1)]
    assert a.local_features(keys) == {("t", "g1", 0): b"a0", ("t", "g1", 1): b"a1"}
    assert b.local_features(keys) == {("t", "g1", 0): b"b0"}
    assert local_store.local_features(keys) == {}


def test_a_view_shares_the_connection_and_does_not_close_it(backend_module):
    _, uri, options = backend_module
    s = open_store(uri, f"v_{uuid.uuid4().hex[:10]}", SPEC, project="a", **options)
    v = s.for_project("b")
    assert (v.project, s.project) == ("b", "a")
    assert (v.uri, v.collection, v.engine, v.engine_version, v.spec) == (s.uri, s.collection, s.engine,
                                                                       s.engine_version, s.spec)
    v.insert_frames(rows("t", "g1", [basis(0)]))
    v.commit_asset(record("t", "g1", 1))
    v.close()
    v.close()
    assert v.count() == (1, 1) and s.count() == (0, 0)  # closing a view closes nothing
    again = v.for_project("a")  # a view of a view: still the owner's connection
    assert again.project == "a" and again.count() == (0, 0)
    ro = ReadOnlyStore(s).for_project("b")
    assert isinstance(ro, ReadOnlyStore) and ro.project == "b" and ro.count() == (1, 1)
    assert not hasattr(ro, "insert_frames") and "project 'b'" in repr(ro)
    s.close()
    for view in (v, again):
        with pytest.raises(StoreError, match="closed"):
            view.count()
        with pytest.raises(StoreError, match="closed"):
            view.search(basis(0)[None], limit=1)


def test_an_old_collection_keeps_its_keys_and_only_the_default_project(backend_module):
    _, uri, options = backend_module
    name = f"o_{uuid.uuid4().hex[:10]}"
    old = open_store(uri, name, OLD_SPEC, **options)  # as vecsim < 0.4 made it
    try:
        assert not old.spec.projects and old.project == ""
        old.insert_frames(rows("t", "g", [basis(0), basis(1)]))
        old.commit_asset(record("t", "g", 2))
        frames, assets = _stored_keys(old)
        assert frames == _engine_ids(old, ["t#g#0", "t#g#1"]) and assets == _engine_ids(old, ["t"])
        assert old.for_project("").count() == (1, 2)
        with pytest.raises(IndexConfigError, match=r"vecsim < 0\.4, without project isolation.*not 'a'"):
            old.for_project("a")
        with pytest.raises(IndexConfigError):
            ReadOnlyStore(old).for_project("a")
    finally:
        old.close()
    with pytest.raises(IndexConfigError, match="holds only the default project"):
        open_store(uri, name, SPEC, project="a", **options)
    with open_store(uri, name, SPEC, **options) as again:  # the stored spec wins; the refusal closed its store
        assert again.spec == OLD_SPEC and again.count() == (1, 2)
        assert again.assets(["t"]) == {"t": record("t", "g", 2)}
        assert again.list_assets(5) == [record("t", "g", 2)] and again.list_assets(5, after="t") == []
        assert [h.task_id for h in again.search(basis(1)[None], limit=1)[0]] == ["t"]
        assert again.delete_frames("t", keep_generation="g") == 0 and again.generations() == ({"t": "g"},
                                                                                                {("t", "g"): 2})


def test_a_bad_project_name_opens_nothing(backend_module):
    _, uri, options = backend_module
    name = f"n_{uuid.uuid4().hex[:10]}"
    for bad in ("a/b", "-x", "x" * 65, None):
        with pytest.raises(InvalidRequestError, match="invalid project"):
            open_store(uri, name, SPEC, project=bad, **options)
    with open_store(uri, name, OLD_SPEC, **options) as s:  # the refusals created nothing: this creates it
        assert s.spec == OLD_SPEC
        with pytest.raises(InvalidRequestError, match="invalid project"):
            s.for_project("a b")


def test_the_project_field_per_engine(backend_module):
    """Milvus: a ``project`` field on both collections, the frames' partition key on a server only
    (Milvus Lite never prunes by one; a server loses upserted rows from key-filtered reads: see
    adapters/milvus.py); Qdrant server and Edge: a keyword index with ``is_tenant``."""
    _, uri, options = backend_module
    with open_store(uri, f"f_{uuid.uuid4().hex[:10]}", SPEC, **options) as s:
        if s.engine.startswith("milvus"):
            frames = {f["name"]: f for f in s._client.describe_collection(s.collection)["fields"]}
            assets = {f["name"]: f for f in s._client.describe_collection(s.assets_collection)["fields"]}
            assert frames["project"]["params"]["max_length"] == 64 and assets["project"]["params"]["max_length"] == 64
            assert bool(frames["project"].get("is_partition_key")) is (s.engine == "milvus")
            assert not assets["project"].get("is_partition_key") and assets["pk"]["is_primary"]
        elif s.engine == "qdrant-edge":
            for shard in (s._frames, s._assets):
                assert shard.info().payload_schema["project"].params.is_tenant is True
        elif s.engine == "qdrant":
            for name in (s.collection, s.assets_collection):
                assert s._client.get_collection(name).payload_schema["project"].params.is_tenant is True


# --- local features ----------------------------------------------------------------------------

LOCAL_SPEC = CollectionSpec("contract-desc", "1", DIM, FlatIndex(), local_features="test-v1", projects=True)


def blob(seed: int, n: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8).tobytes()


def with_local(frame_rows: list[FrameRow], blobs: list[bytes]) -> list[FrameRow]:
    for r, b in zip(frame_rows, blobs):
        r.local = b
    return frame_rows


@pytest.fixture
def local_store(backend_module):
    _, uri, options = backend_module
    s = open_store(uri, f"l_{uuid.uuid4().hex[:10]}", LOCAL_SPEC, **options)
    yield s
    s.close()


def test_the_spec_keeps_local_features_and_old_json_still_loads():
    assert CollectionSpec.from_json(LOCAL_SPEC.to_json()) == LOCAL_SPEC
    assert CollectionSpec.from_json(SPEC.to_json()) == SPEC and SPEC.local_features == ""
    assert CollectionSpec.from_json(OLD_SPEC.to_json()) == OLD_SPEC and not OLD_SPEC.projects
    assert "local_features" not in SPEC.to_json()  # a spec without them reads as before
    assert json.loads(SPEC.to_json())["projects"] is True and json.loads(LOCAL_SPEC.to_json())["projects"] is True
    old = '{"descriptor_name": "d", "descriptor_version": "1", "dim": 8, "index": {"type": "FLAT"}, "schema_version": 2}'
    assert CollectionSpec.from_json(old).local_features == "" and CollectionSpec.from_json(old).projects is False
    assert OLD_SPEC.to_json() == (  # what vecsim 0.3 wrote, byte for byte: no "projects" key
        '{"descriptor_name": "contract-desc", "descriptor_version": "1", "dim": 8, "index": '
        + json.dumps(FlatIndex().model_dump(mode="json"), sort_keys=True) + ', "schema_version": 2}')
    assert FrameRow("a", "g", 0, 0.0, 1.0, basis(0), PDQ).local == b""


def test_local_features_are_stored_and_read_back_by_key(backend_module, local_store):
    every_byte = bytes(range(256)) * 3  # all byte values, NUL and non-UTF-8 included
    full = blob(1, MAX_LOCAL_BYTES)  # the largest a row may carry
    a = with_local(rows("a", "g1", [basis(0), basis(1), basis(2), basis(3)]), [every_byte, b"", full, b"\x00"])
    b = with_local(rows("b", "g1", [basis(4)]), [blob(2, 100)])
    local_store.insert_frames(a)
    local_store.insert_frames(b)
    local_store.commit_assets([record("a", "g1", 4), record("b", "g1", 1)])
    assert local_store.spec.local_features == "test-v1"

    want = {("a", "g1", 0): every_byte, ("a", "g1", 2): full, ("a", "g1", 3): b"\x00", ("b", "g1", 0): blob(2, 100)}
    asked = [("a", "g1", 0), ("a", "g1", 1), ("a", "g1", 2), ("a", "g1", 3), ("b", "g1", 0),
             ("a", "g2", 0), ("a", "g1", 9), ("missing", "g1", 0)]  # an empty blob, absent rows
    got = local_store.local_features(asked)
    assert got == want and all(type(v) is bytes for v in got.values())
    assert local_store.local_features([("a", "g1", 2)]) == {("a", "g1", 2): full}  # only what is asked
    assert local_store.local_features([("a", "g1", 0), ("a", "g1", 0)]) == {("a", "g1", 0): every_byte}
    assert local_store.local_features([]) == {}
    assert ReadOnlyStore(local_store).local_features(asked) == want

    # searches, frames and scans are as without them
    [hits] = local_store.search(basis(2)[None], limit=2)
    assert [(h.task_id, h.frame, h.pdq) for h in hits] == [("a", 2, PDQ), ("b", 0, PDQ)]
    assert hits[0].raw_score == pytest.approx(1.0, abs=1e-5)
    assert [f.frame for f in local_store.frames("a", "g1")] == [0, 1, 2, 3]
    assert local_store.generations() == ({"a": "g1", "b": "g1"}, {("a", "g1"): 4, ("b", "g1"): 1})
    assert local_store.count() == (2, 5)

    # a new generation's rows have their own blobs; deleted rows have none
    local_store.insert_frames(with_local(rows("a", "g2", [basis(5)]), [b"new"]))
    assert local_store.delete_frames("a", keep_generation="g2") == 4
    assert local_store.local_features(asked + [("a", "g2", 0)]) == {("a", "g2", 0): b"new", ("b", "g1", 0): blob(2, 100)}

    # after close + reopen
    _, uri, options = backend_module
    name = local_store.collection
    local_store.close()
    with open_store(uri, name, SPEC, **options) as again:  # the stored spec wins
        assert again.spec == LOCAL_SPEC
        assert again.local_features([("b", "g1", 0), ("a", "g2", 0), ("a", "g1", 0)]) == {
            ("b", "g1", 0): blob(2, 100), ("a", "g2", 0): b"new"}


def test_search_hits_do_not_depend_on_local_features(backend_module):
    """The same rows, with blobs in a collection that stores them and without: the same hits."""
    _, uri, options = backend_module
    rng = np.random.default_rng(3)
    vectors = [unit(rng.normal(size=DIM)) for _ in range(12)]
    queries = np.stack(vectors[::3])
    results = []
    for spec in (SPEC, LOCAL_SPEC):  # one store at a time (the qdrant-client local mode takes one)
        with open_store(uri, f"s_{uuid.uuid4().hex[:10]}", spec, **options) as s:
            for t in range(3):
                s.insert_frames(with_local(rows(f"t{t}", "g1", vectors[4 * t : 4 * t + 4]),
                                           [blob(10 * t + i, 4000 * i) for i in range(4)]))
                s.commit_asset(record(f"t{t}", "g1", 4))
            results.append((s.search(queries, limit=3, per_asset=2), s.frames("t1", "g1"), s.generations()))
    assert results[0] == results[1]
    assert [len(q) for q in results[0][0]] == [6, 6, 6, 6]


class _Spy:
    """Stands in for an engine client (or shard): records what every call returns."""

    def __init__(self, real, returned: list):
        self._real, self._returned = real, returned

    def __getattr__(self, name):
        attr = getattr(self._real, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            result = attr(*args, **kwargs)
            self._returned.append(result)
            return _Spy(result, self._returned) if hasattr(result, "next") else result  # an iterator's batches

        return call


def _holds(obj, marker: str, depth: int = 0) -> bool:
    """Whether an engine's reply holds ``marker`` anywhere (dicts, lists, pydantic models, points)."""
    if depth > 10 or obj is None or isinstance(obj, (int, float, bool)):
        return False
    if isinstance(obj, str):
        return marker in obj
    if isinstance(obj, dict):
        return any(_holds(v, marker, depth + 1) for v in obj.values())
    if hasattr(obj, "model_dump"):
        return _holds(obj.model_dump(), marker, depth + 1)
    found = [getattr(obj, a) for a in ("payload", "hits", "groups", "points", "entity") if hasattr(obj, a)]
    if found:
        return any(_holds(v, marker, depth + 1) for v in found)
    try:
        items = list(obj)
    except TypeError:
        return marker in repr(obj)
    return any(_holds(v, marker, depth + 1) for v in items)


def test_searches_frames_and_scans_do_not_fetch_local_features(local_store):
    import base64

    big = blob(7, MAX_LOCAL_BYTES)
    marker = base64.b64encode(big[:48]).decode()  # the start of the stored base64
    local_store.insert_frames(with_local(rows("a", "g1", [basis(0), basis(1)]), [big, big]))
    local_store.commit_asset(record("a", "g1", 2))
    returned: list = []
    names = [n for n in ("_conn", "_frames", "_assets") if getattr(local_store, n, None) is not None]
    real = {n: getattr(local_store, n) for n in names}
    for n in names:
        setattr(local_store, n, _Spy(real[n], returned))
    try:
        local_store.search(np.stack([basis(0), basis(1)]), limit=3, per_asset=2)
        local_store.search(basis(0)[None], limit=1)
        assert [f.frame for f in local_store.frames("a", "g1")] == [0, 1]
        local_store.generations()
        local_store.assets(["a"])
        local_store.count()
        assert returned and not any(_holds(r, marker) for r in returned)
        assert local_store.local_features([("a", "g1", 1)]) == {("a", "g1", 1): big}
        assert any(_holds(r, marker) for r in returned)  # the spy sees a fetched blob
    finally:
        for n in names:
            setattr(local_store, n, real[n])


def test_a_collection_without_local_features_ignores_them(store):
    assert store.spec.local_features == ""
    store.insert_frames(with_local(rows("a", "g1", [basis(0), basis(1)]), [b"abc", blob(4, MAX_LOCAL_BYTES)]))
    store.commit_asset(record("a", "g1", 2))
    assert store.local_features([("a", "g1", 0), ("a", "g1", 1), ("x", "g", 0)]) == {}
    assert store.local_features([]) == {}
    assert [h.task_id for h in store.search(basis(1)[None], limit=1)[0]] == ["a"]


def test_reopening_with_other_local_features_keeps_the_stored_ones(backend_module):
    _, uri, options = backend_module
    with_name, without_name = f"w_{uuid.uuid4().hex[:10]}", f"o_{uuid.uuid4().hex[:10]}"
    with open_store(uri, with_name, LOCAL_SPEC, **options) as s:
        s.insert_frames(with_local(rows("a", "g1", [basis(0)]), [b"kept"]))
    with open_store(uri, without_name, SPEC, **options) as s:
        s.insert_frames(with_local(rows("a", "g1", [basis(0)]), [b"dropped"]))
    other = CollectionSpec("contract-desc", "1", DIM, FlatIndex(), local_features="orb-v9")
    for i, create_spec in enumerate((SPEC, other), start=1):
        with open_store(uri, with_name, create_spec, **options) as s:
            assert s.spec == LOCAL_SPEC and s.spec.local_features == "test-v1"
            assert ReadOnlyStore(s).spec.local_features == "test-v1"
            assert s.local_features([("a", "g1", 0)]) == {("a", "g1", 0): b"kept"}
            s.insert_frames(with_local(rows("a", "g1", [basis(i)], start=i), [b"more %d" % i]))
            assert s.local_features([("a", "g1", i)]) == {("a", "g1", i): b"more %d" % i}
    for i, create_spec in enumerate((LOCAL_SPEC, other), start=1):
        with open_store(uri, without_name, create_spec, **options) as s:
            assert s.spec == SPEC and s.spec.local_features == ""
            s.insert_frames(with_local(rows("a", "g1", [basis(i)], start=i), [b"ignored"]))  # no such field
            assert s.local_features([("a", "g1", 0), ("a", "g1", i)]) == {}
            assert s.count() == (0, 1 + i)


@pytest.mark.parametrize("spec", [LOCAL_SPEC, SPEC], ids=["with-local", "without"])
def test_a_too_large_blob_is_refused_before_anything_is_written(backend_module, spec):
    _, uri, options = backend_module
    with open_store(uri, f"b_{uuid.uuid4().hex[:10]}", spec, **options) as s:
        ok = with_local(rows("a", "g1", [basis(0), basis(1)]), [b"fine", b"also fine"])
        too_big = with_local(rows("a", "g1", [basis(2)], start=2), [blob(5, MAX_LOCAL_BYTES + 1)])
        with pytest.raises(InvalidRequestError, match=str(MAX_LOCAL_BYTES)):
            s.insert_frames(ok + too_big)
        with pytest.raises(InvalidRequestError):
            s.insert_frames([FrameRow("a", "g1", 0, 0.0, 1.0, basis(0), PDQ, local="not bytes")])  # type: ignore[arg-type]
        assert s.count() == (0, 0)
        assert s.local_features([("a", "g1", 0), ("a", "g1", 2)]) == {}
        assert s.generations() == ({}, {})


BACKENDS_ENGINE = {"milvus-lite": "milvus-lite", "qdrant-local": "qdrant-local", "qdrant-edge": "qdrant-edge",
                   "milvus-server": "milvus", "milvus-docker": "milvus", "qdrant-docker": "qdrant"}


@pytest.mark.parametrize("view", [False, True], ids=["store", "view"])
def test_a_closed_store_raises_store_error(backend_module, view):
    _, uri, options = backend_module
    owner = open_store(uri, f"x_{uuid.uuid4().hex[:10]}", SPEC, **options)
    s = owner.for_project("p") if view else owner  # a view of a closed store is closed too
    owner.close()
    s.close()  # idempotent
    calls = [
        lambda: s.insert_frames(rows("a", "g1", [basis(0)])),
        lambda: s.commit_asset(record("a", "g1", 1)),
        lambda: s.commit_assets([record("a", "g1", 1)]),
        lambda: s.commit_assets([]),
        lambda: s.delete_asset("a"),
        lambda: s.delete_frames("a"),
        lambda: s.search(basis(0)[None], limit=1),
        lambda: s.assets(["a"]),
        lambda: s.frames("a", "g1"),
        lambda: s.local_features([("a", "g1", 0)]),
        s.generations,
        s.count,
        s.build_index,
    ]
    for call in calls:
        with pytest.raises(StoreError, match="closed"):
            call()


def test_metadata_the_engine_cannot_take_is_a_store_error_or_stored(store):
    """Deep nesting and integers beyond 64 bits: the core refuses them first; an adapter given them
    anyway raises a StoreError (never a bare RecursionError / OverflowError / engine error)."""
    deep: dict = {}
    node = deep
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    for metadata in ({"deep": deep}, {"big": 2**70}, {"neg": -(2**80)}):
        try:
            store.commit_asset(AssetRecord("m", "g1", "image", "m.jpg", 0.0, 0, metadata))
        except StoreError:
            pass


def test_build_index_is_callable(store):
    store.build_index()
    store.insert_frames(rows("a", "g1", [basis(0)]))
    store.commit_asset(record("a", "g1", 1))
    store.build_index()
    assert store.count() == (1, 1)


# --- options -----------------------------------------------------------------------------------


def test_open_store_refuses_options_of_another_engine(tmp_path):
    with pytest.raises(IndexConfigError, match=r"'api_key' is not an option of milvus-lite"):
        open_store(f"milvus-lite:{tmp_path / 'x.db'}", "c", SPEC, api_key="k")
    with pytest.raises(IndexConfigError, match=r"'api_key' is not an option of qdrant-edge"):  # the default
        open_store(str(tmp_path / "x.db"), "c", SPEC, api_key="k")
    with pytest.raises(IndexConfigError, match=r"'consistency' is not an option of qdrant-edge"):
        open_store(f"qdrant-edge:{tmp_path / 'e'}", "c", SPEC, consistency="Strong")
    with pytest.raises(IndexConfigError, match="takes QdrantEdgeOptions, not MilvusOptions"):
        open_store(f"qdrant-edge:{tmp_path / 'e'}", "c", SPEC, MilvusOptions())
    with pytest.raises(IndexConfigError, match="not both"):
        open_store(str(tmp_path / "x.db"), "c", SPEC, MilvusOptions(), token="t")
    with pytest.raises(IndexConfigError, match="consistency must be one of"):
        MilvusOptions(consistency="Sometimes")
    assert not list(tmp_path.iterdir())  # nothing was created


def test_legacy_keywords_build_the_options_object(tmp_path):
    from vecsim.adapters.options import options_from_kwargs

    assert options_from_kwargs("qdrant", "qdrant://h:6333", {"token": "t"}) == QdrantOptions(api_key="t")
    assert options_from_kwargs("qdrant", "u", {"api_key": "k", "token": "t"}) == QdrantOptions(api_key="k")
    assert options_from_kwargs("milvus", "u", {"token": "a:b", "consistency": "Strong"}) == MilvusOptions(
        token="a:b", consistency="Strong")
    assert options_from_kwargs("qdrant-edge", "u", {"auto_optimize": None}) == QdrantEdgeOptions(auto_optimize=None)
    pytest.importorskip("qdrant_edge")
    with open_store(f"qdrant-edge:{tmp_path / 'e'}", "c", SPEC, auto_optimize=5) as s:
        assert s.options == QdrantEdgeOptions(auto_optimize=5) and s.auto_optimize == 5
    with open_store(f"qdrant-edge:{tmp_path / 'e'}", "c", SPEC, QdrantEdgeOptions(auto_optimize=None)) as s:
        assert s.auto_optimize is None


def test_custom_index_takes_an_options_object(tmp_path):
    from vecsim import CustomIndex

    with pytest.raises(IndexConfigError, match="'prefer_grpc' is not an option of milvus-lite"):
        CustomIndex(f"milvus-lite:{tmp_path / 'x.db'}", prefer_grpc=True)
    with pytest.raises(IndexConfigError, match="takes MilvusOptions"):
        CustomIndex(f"milvus-lite:{tmp_path / 'x.db'}", store_options=QdrantOptions())
    with pytest.raises(IndexConfigError, match="takes QdrantEdgeOptions"):  # a plain path: the embedded default
        CustomIndex(str(tmp_path / "x.db"), store_options=QdrantOptions())


# --- the error boundary ------------------------------------------------------------------------


class _FakeStore:
    collection = "c"
    uri = "x.db"


def test_engine_errors_maps_engine_exceptions_and_passes_vecsim_errors():
    cause = RuntimeError("engine said no")
    with pytest.raises(StoreError, match=r"search in collection 'c' at x.db failed: RuntimeError: engine said no") as e:
        with engine_errors("search", _FakeStore()):
            raise cause
    assert e.value.__cause__ is cause and type(e.value) is StoreError
    with pytest.raises(StoreUnavailableError) as e:
        with engine_errors("count", _FakeStore()):
            raise ConnectionRefusedError("refused")
    assert isinstance(e.value, StoreError)
    own = IndexConfigError("mine")
    with pytest.raises(IndexConfigError) as e:
        with engine_errors("open", _FakeStore()):
            raise own
    assert e.value is own
    for exc in (RecursionError("deep"), OverflowError("int too big"), OSError(5, "I/O")):
        with pytest.raises(StoreError):
            with engine_errors("commit", _FakeStore()):
                raise exc


def test_engine_errors_maps_pymilvus_exceptions():
    from pymilvus.exceptions import MilvusException, MilvusUnavailableException

    with pytest.raises(StoreError) as e:
        with engine_errors("insert", _FakeStore()):
            raise MilvusException(code=1, message="bad")
    assert isinstance(e.value, VecsimError) and isinstance(e.value.__cause__, MilvusException)
    with pytest.raises(StoreUnavailableError):
        with engine_errors("insert", _FakeStore()):
            raise MilvusUnavailableException(message="down")
    # what pymilvus 3 raises against a Milvus 2.3.5 server that was killed (2: cannot connect),
    # restarted and still loading (101: collection not loaded), or failed past the retries' deadline
    import grpc

    for exc in (MilvusException(code=2, message="Fail connecting to server"),
                MilvusException(code=101, message="failed to query: collection not loaded"),
                MilvusException(grpc.StatusCode.UNAVAILABLE, "[query] Retry timeout: 5s")):
        with pytest.raises(StoreUnavailableError):
            with engine_errors("query", _FakeStore()):
                raise exc
    with pytest.raises(StoreError) as e:  # a refusal stays a refusal
        with engine_errors("query", _FakeStore()):
            raise MilvusException(code=1100, message="invalid parameter")
    assert type(e.value) is StoreError


def test_milvus_server_requests_carry_the_timeout():
    """MilvusOptions(timeout=T): every request to a server gets ``timeout=T`` (pymilvus's client
    level timeout is only the connection's); loading a collection waits at least LOAD_TIMEOUT_S."""
    from vecsim.adapters.milvus import LOAD_TIMEOUT_S, _Deadlines

    class Client:
        def __init__(self):
            self.calls = []

        def __getattr__(self, name):
            return lambda *a, **kw: self.calls.append((name, kw.get("timeout")))

    inner = Client()
    client = _Deadlines(inner, 3.0)
    client.search("c", data=[[0.0]], limit=1)
    client.query("c", filter="", timeout=9)  # the caller's own wins
    client.load_collection("c")
    client.create_collection("c")
    client.create_schema()
    assert inner.calls == [("search", 3.0), ("query", 9), ("load_collection", LOAD_TIMEOUT_S),
                           ("create_collection", LOAD_TIMEOUT_S), ("create_schema", None)]
    with pytest.raises(IndexConfigError):
        MilvusOptions(timeout=0)


# --- Milvus Lite -------------------------------------------------------------------------------


def _listening_tcp_inodes() -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/self/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                inodes.add(fields[9])
    return inodes


def _own_socket_inodes() -> set[str]:
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[len("socket:["):-1])
    return out


@pytest.mark.skipif(not Path("/proc/self/net/tcp").exists(), reason="needs Linux /proc")
def test_milvus_lite_listens_on_a_private_unix_socket_not_a_tcp_port(tmp_path):
    from vecsim.adapters.milvus_lite import lite_address

    before = _listening_tcp_inodes() & _own_socket_inodes()
    path = str(tmp_path / "x.db")
    with open_store(f"milvus-lite:{path}", "c", SPEC) as s:
        s.insert_frames(rows("a", "g1", [basis(0)]))
        address = lite_address(path)
        assert address is not None and address.startswith("unix:")
        sock = Path(address[len("unix:"):])
        assert stat.S_ISSOCK(sock.stat().st_mode)
        assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700  # only this user reaches the socket
        assert sock.parent.stat().st_uid == os.getuid()
        # no TCP port of this process listens for it
        assert _listening_tcp_inodes() & _own_socket_inodes() <= before
    assert lite_address(path) is None and not sock.exists() and not sock.parent.exists()


def test_two_stores_on_one_lite_file_share_their_writes(tmp_path):
    uri = f"milvus-lite:{tmp_path / 'x.db'}"
    a = open_store(uri, "c", SPEC)
    b = open_store(uri, "c", SPEC)
    try:
        for i in range(4):
            for name, s in (("a", a), ("b", b)):
                s.insert_frames(rows(f"{name}{i}", "g1", [basis(i), basis(i + 1)]))
                s.commit_asset(record(f"{name}{i}", "g1", 2))
            assert a.count() == b.count() == (2 * (i + 1), 4 * (i + 1))
        assert set(b.assets([f"a{i}" for i in range(4)])) == {f"a{i}" for i in range(4)}
        assert b.delete_asset("a0") == record("a0", "g1", 2) and a.assets(["a0"]) == {}
        a.close()  # the other store keeps working on the shared server
        assert b.count() == (7, 16)
    finally:
        a.close()
        b.close()
    with open_store(uri, "c", SPEC) as again:  # everything was written, and the file is free again
        assert again.count() == (7, 16)


def test_stores_opened_from_two_threads_at_once_on_one_lite_file(tmp_path):
    uri = f"milvus-lite:{tmp_path / 'x.db'}"
    open_store(uri, "c", SPEC).close()
    stores, errors = [], []
    barrier = threading.Barrier(3)

    def opener() -> None:
        barrier.wait()
        try:
            stores.append(open_store(uri, "c", SPEC))
        except Exception as exc:  # before the fix: "Open local milvus failed" for one of them
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == [] and len(stores) == 3
        stores[0].insert_frames(rows("a", "g1", [basis(0)]))
        stores[0].commit_asset(record("a", "g1", 1))
        assert all(s.count() == (1, 1) for s in stores)
    finally:
        for s in stores:
            s.close()
