"""The Qdrant Edge adapter (``qdrant-edge:PATH``) against the VectorStore protocol, on random
vectors: writes, grouping, exact results equal to a numpy brute force, HNSW recall, persistence."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("qdrant_edge")

from vecsim.adapters import QdrantEdgeOptions
from vecsim.adapters.qdrant_edge import SPEC_FILE, QdrantEdgeStore

from vecsim.errors import IndexConfigError, StoreError
from vecsim.index_config import (
    FlatIndex,
    HnswIndex,
    IvfFlatIndex,
    index_config_from_dict,
)
from vecsim.store import AssetRecord, CollectionSpec, FrameRow

DIM = 64
SPEC = CollectionSpec("test-desc", "1", DIM, FlatIndex())


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def pdq_of(rng: np.random.Generator) -> str:
    return rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex()


def rows_for(task_id: str, vectors: np.ndarray, rng: np.random.Generator, generation: str = "g1") -> list[FrameRow]:
    return [FrameRow(task_id, generation, i, float(i), float(i + 1), v, pdq_of(rng)) for i, v in enumerate(vectors)]


def record(task_id: str, frames: int, generation: str = "g1", **metadata) -> AssetRecord:
    return AssetRecord(task_id, generation, "video", f"{task_id}.mp4", float(frames), frames, metadata)


def add(store: QdrantEdgeStore, task_id: str, vectors: np.ndarray, rng: np.random.Generator,
        generation: str = "g1") -> list[FrameRow]:
    rows = rows_for(task_id, vectors, rng, generation)
    store.insert_frames(rows)
    store.commit_asset(record(task_id, len(rows), generation))
    return rows


def brute_force(query: np.ndarray, rows: list[FrameRow], limit: int, per_asset: int) -> list[tuple[str, int, float]]:
    """The reference: best ``per_asset`` frames of each of the ``limit`` best assets, by numpy."""
    scores = np.stack([r.vector for r in rows]) @ query
    by_asset: dict[str, list[tuple[float, int]]] = {}
    for r, s in zip(rows, scores):
        by_asset.setdefault(r.task_id, []).append((float(s), r.frame))
    ranked = sorted(by_asset, key=lambda t: max(by_asset[t])[0], reverse=True)[:limit]
    return [(t, f, s) for t in ranked for s, f in sorted(by_asset[t], reverse=True)[:per_asset]]


def assert_grouped(hits, want: list[tuple[str, int, float]], exact: bool) -> None:
    """``hits`` hold the assets of ``want`` in its order; each asset's frames best first, among
    its best ``per_asset`` (the search fetches the best rows over all assets once and groups
    them, so an asset's group may stop early): with exact search a prefix of its exact ranking,
    with HNSW (approximate) a subsequence of it."""
    assets = list(dict.fromkeys(t for t, _, _ in want))
    assert list(dict.fromkeys(h.task_id for h in hits)) == assets
    for t in assets:
        got = [(h.frame, h.raw_score) for h in hits if h.task_id == t]
        ranking = [(f, s) for tt, f, s in want if tt == t]
        assert got
        frames = [f for f, _ in ranking]
        if exact:
            assert got[0][0] == ranking[0][0]
            assert [f for f, _ in got] == frames[: len(got)]
            np.testing.assert_allclose([s for _, s in got], [s for _, s in ranking[: len(got)]], atol=1e-5)
        else:
            positions = [frames.index(f) for f, _ in got]
            assert positions == sorted(positions)


@pytest.fixture
def uri(tmp_path):
    return f"qdrant-edge:{tmp_path / 'edge'}"


@pytest.fixture
def store(uri):
    s = QdrantEdgeStore(uri, "c", SPEC)
    yield s
    s.close()


def test_engine_and_spec(store, uri):
    assert store.engine == "qdrant-edge" and store.engine_version.startswith("qdrant-edge-py-")
    assert store.uri == uri and store.collection == "c" and store.spec == SPEC
    assert store.count() == (0, 0)
    assert store.search(np.zeros((0, DIM), np.float32), limit=5) == []
    assert store.search(unit(np.ones((1, DIM))), limit=5) == [[]]


def test_writes_are_visible_at_once_and_assets_need_a_commit(store):
    rng = np.random.default_rng(1)
    rows = rows_for("a", unit(rng.normal(size=(3, DIM))), rng)
    store.insert_frames(rows)
    assert store.count() == (0, 3)  # frames of an add in progress count, the asset is not visible
    assert store.assets(["a"]) == {}
    hits = store.search(rows[1].vector[None], limit=1)[0]  # a search sees any generation
    assert [(h.task_id, h.frame) for h in hits] == [("a", 1)] and hits[0].raw_score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].pdq == rows[1].pdq and (hits[0].timestamp, hits[0].span_end) == (1.0, 2.0)
    rec = record("a", 3, note="ünïcödé 写真", nested={"n": 1, "x": [1.5, None, True]})
    store.commit_asset(rec)
    assert store.count() == (1, 3)
    assert store.assets(["a", "missing", "a"]) == {"a": rec}
    assert [(f.frame, f.timestamp, f.span_end, f.pdq) for f in store.frames("a", "g1")] == [
        (r.frame, r.timestamp, r.span_end, r.pdq) for r in rows]
    assert store.frames("a", "other") == []


@pytest.mark.parametrize("kind", ["FLAT", "HNSW"])
def test_grouping_many_near_identical_frames_do_not_crowd_out(uri, kind):
    index = FlatIndex() if kind == "FLAT" else HnswIndex(M=16, efConstruction=100, ef=64)
    with _hnsw_store(uri, kind.lower(), index, auto_optimize=None) as store:
        _crowd(store, optimize=kind != "FLAT")


def _crowd(store: QdrantEdgeStore, optimize: bool) -> None:
    rng = np.random.default_rng(2)
    q = unit(rng.normal(size=DIM))
    # "dup": 300 frames all nearly the query (a static video); four others somewhat close
    rows = add(store, "dup", unit(q + 0.01 * rng.normal(size=(300, DIM)) / np.sqrt(DIM)), rng)
    for i, noise in enumerate([0.3, 0.6, 0.9, 1.2]):  # noise norms: cosines ~0.96, 0.86, 0.74, 0.64
        rows += add(store, f"other{i}", unit(q + noise * rng.normal(size=(3, DIM)) / np.sqrt(DIM)), rng)
    rows += add(store, "far", unit(rng.normal(size=(5, DIM))), rng)
    rows += _random_assets(store, rng, 1000)  # enough rows for a graph
    if optimize:
        assert store.optimize() and store._frames.info().indexed_vectors_count >= len(rows)
    hits = store.search(q[None], limit=4, per_asset=3)[0]
    assets = list(dict.fromkeys(h.task_id for h in hits))
    assert assets == ["dup", "other0", "other1", "other2"]
    assert_grouped(hits, brute_force(q, rows, 4, 3), exact=not optimize)
    assert sum(h.task_id == "dup" for h in hits) == 3  # per_asset frames of the crowding asset, no more
    one = store.search(q[None], limit=6, per_asset=1)[0]
    assert [h.task_id for h in one][:5] == ["dup", "other0", "other1", "other2", "other3"] and len(one) == 6
    assert len({h.task_id for h in one}) == 6


@pytest.mark.parametrize("kind", ["FLAT", "HNSW"])
def test_grouping_in_a_project_is_not_crowded_by_another_projects_rows(uri, kind):
    """The grouped search's exclusion filter (``must_not`` the assets seen) and the project filter
    combine: another project's 399 rows, all closer to the query than anything here and under the
    same task_ids, take no place in this project's results. With HNSW this needs the per-project
    graphs (``m=0, payload_m=M``): on one global graph, the filtered search found only one row of
    this project among the other's (docs/tenancy.md)."""
    index = FlatIndex() if kind == "FLAT" else HnswIndex(M=16, efConstruction=100, ef=64)
    spec = CollectionSpec("test-desc", "1", DIM, index, projects=True)
    options = QdrantEdgeOptions(indexing_threshold_kb=10, full_scan_threshold_kb=1, auto_optimize=None)
    with QdrantEdgeStore(uri, kind.lower(), spec, options, project="p") as store:
        rng = np.random.default_rng(2)
        q = unit(rng.normal(size=DIM))
        noise = store.for_project("noise")
        for task_id in ("dup", "other0", "other1", "other2", "other3", "n1", "n2"):
            add(noise, task_id, unit(q + 0.001 * rng.normal(size=(57, DIM)) / np.sqrt(DIM)), rng, generation="ng")
        rows = add(store, "dup", unit(q + 0.01 * rng.normal(size=(300, DIM)) / np.sqrt(DIM)), rng)
        for i, noise_norm in enumerate([0.3, 0.6, 0.9, 1.2]):
            rows += add(store, f"other{i}", unit(q + noise_norm * rng.normal(size=(3, DIM)) / np.sqrt(DIM)), rng)
        rows += _random_assets(store, rng, 1000)
        if kind == "HNSW":
            assert store.optimize() and store._frames.info().indexed_vectors_count >= 2 * (len(rows) + 399)
        exact = {(r.task_id, r.frame): float(r.vector @ q) for r in rows}
        hits = store.search(q[None], limit=4, per_asset=3)[0]
        want = brute_force(q, rows, 4, 3)
        assert list(dict.fromkeys(h.task_id for h in hits)) == ["dup", "other0", "other1", "other2"]
        assert all(h.generation == "g1" and h.raw_score == pytest.approx(exact[h.task_id, h.frame], abs=1e-5)
                   for h in hits)  # this project's rows, never the closer ones of "noise"
        assert sum(h.task_id == "dup" for h in hits) == 3
        if kind == "FLAT":
            assert_grouped(hits, want, exact=True)
        one = store.search(q[None], limit=6, per_asset=1)[0]
        assert len(one) == 6 and len({h.task_id for h in one}) == 6 and all(h.generation == "g1" for h in one)
        # exact search: the 6 best assets; HNSW: the follow-up rounds that exclude the assets found
        # (a must_not filter around the query) are approximate, so only the clear leaders are checked
        first = 5 if kind == "FLAT" else 4
        assert [h.task_id for h in one][:first] == ["dup", "other0", "other1", "other2", "other3"][:first]
        assert all(g == "g1" for _, g, _, _ in store.search_pdq(pdq_of(rng), limit=100))
        assert {g for _, g, _, _ in noise.search_pdq(pdq_of(rng), limit=100)} == {"ng"}
        assert noise.count() == (7, 399) and store.count() == (205, len(rows))


def test_per_asset_returns_short_groups_for_short_assets(store):
    rng = np.random.default_rng(3)
    q = unit(rng.normal(size=DIM))
    add(store, "image", unit(q + 0.1 * rng.normal(size=(1, DIM)) / np.sqrt(DIM)), rng)
    add(store, "video", unit(q + 0.5 * rng.normal(size=(40, DIM)) / np.sqrt(DIM)), rng)
    hits = store.search(q[None], limit=5, per_asset=5)[0]
    assert [h.task_id for h in hits] == ["image"] + ["video"] * 5


@pytest.mark.parametrize("metric", ["COSINE", "IP"])
def test_flat_equals_numpy_brute_force(uri, metric):
    rng = np.random.default_rng(4)
    spec = CollectionSpec("test-desc", "1", DIM, FlatIndex(metric=metric))
    with QdrantEdgeStore(uri, "flat", spec) as store:
        rows: list[FrameRow] = []
        for a in range(150):  # assets of 1..30 frames; some frames cluster around their asset
            base = rng.normal(size=DIM)
            n = int(rng.integers(1, 31))
            rows += add(store, f"t{a:03d}", unit(base + rng.uniform(0.3, 3.0) * rng.normal(size=(n, DIM))), rng)
        queries = np.concatenate([unit(rng.normal(size=(8, DIM))),
                                  np.stack([rows[i].vector for i in rng.integers(0, len(rows), 8)])])
        for limit, per_asset in [(1, 1), (10, 1), (10, 5), (25, 3)]:
            got = store.search(queries, limit=limit, per_asset=per_asset)
            for q, hits in zip(queries, got):
                assert_grouped(hits, brute_force(q, rows, limit, per_asset), exact=True)


def test_delete_frames_keep_generation_delete_asset_and_generations(store):
    rng = np.random.default_rng(5)
    add(store, "a", unit(rng.normal(size=(4, DIM))), rng, generation="g1")
    store.insert_frames(rows_for("a", unit(rng.normal(size=(2, DIM))), rng, generation="g2"))  # an add killed half-way
    add(store, "b", unit(rng.normal(size=(3, DIM))), rng, generation="h1")
    committed, present = store.generations()
    assert committed == {"a": "g1", "b": "h1"}
    assert present == {("a", "g1"): 4, ("a", "g2"): 2, ("b", "h1"): 3}
    assert store.delete_frames("a", keep_generation="g1") == 2
    assert store.delete_frames("a", keep_generation="g1") == 0
    assert store.generations()[1] == {("a", "g1"): 4, ("b", "h1"): 3}
    assert store.count() == (2, 7)
    assert {h.generation for h in store.search(unit(rng.normal(size=(1, DIM))), limit=5, per_asset=10)[0]} == {"g1", "h1"}
    store.commit_asset(record("a", 2, generation="g2"))  # a replace: the record switches generation
    assert store.assets(["a"])["a"].generation == "g2" and store.count()[0] == 2
    store.commit_asset(record("a", 4, generation="g1"))
    rec = store.delete_asset("a")
    assert rec is not None and rec.generation == "g1" and store.delete_asset("a") is None
    assert store.assets(["a", "b"]).keys() == {"b"} and store.count() == (1, 7)
    assert store.delete_frames("a") == 4
    assert store.count() == (1, 3) and store.generations() == ({"b": "h1"}, {("b", "h1"): 3})
    assert {h.task_id for h in store.search(unit(rng.normal(size=(1, DIM))), limit=5, per_asset=5)[0]} == {"b"}


def test_reopen_keeps_frames_assets_and_spec_and_one_store_at_a_time(uri):
    rng = np.random.default_rng(6)
    spec = CollectionSpec("test-desc", "1", DIM, HnswIndex(M=8, efConstruction=50, ef=32, metric="IP"))
    store = QdrantEdgeStore(uri, "p", spec)
    rows = add(store, "a", unit(rng.normal(size=(5, DIM))), rng)
    before = store.search(rows[2].vector[None], limit=3, per_asset=2)
    twin = QdrantEdgeStore(uri, "p", spec)  # the same process shares the open shards
    add(twin, "b", unit(rng.normal(size=(2, DIM))), rng)
    assert store.count() == twin.count() == (2, 7)
    twin.close()
    assert store.count() == (2, 7)  # the other store keeps them open
    store.delete_asset("b")
    store.delete_frames("b")
    other_process = subprocess.run(
        [sys.executable, "-c", "import sys; from vecsim.adapters import open_store; from vecsim.store import *; "
         f"from vecsim.index_config import FlatIndex; open_store({uri!r}, 'p', CollectionSpec('x', '1', 8, FlatIndex()))"],
        capture_output=True, text=True, timeout=120)
    assert other_process.returncode != 0 and "open in another process" in other_process.stderr
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.count()
    other = CollectionSpec("another-desc", "9", 8, FlatIndex())
    with QdrantEdgeStore(uri, "p", other) as again:  # the stored spec wins; the core compares it
        assert again.spec == spec
        assert again.count() == (1, 5) and again.assets(["a"])["a"] == record("a", 5)
        assert again.search(rows[2].vector[None], limit=3, per_asset=2) == before
        assert [f.pdq for f in again.frames("a", "g1")] == [r.pdq for r in rows]
    with QdrantEdgeStore(uri, "q", SPEC) as second:  # two collections under one folder
        assert second.count() == (0, 0) and second.spec == SPEC


def test_open_store_dispatches_the_scheme(uri):
    from vecsim.adapters import open_store

    store = open_store(uri, "c", SPEC)
    try:
        assert isinstance(store, QdrantEdgeStore) and store.spec == SPEC
    finally:
        store.close()


def test_writes_survive_a_process_killed_before_close(uri):
    script = textwrap.dedent(f"""
        import os, numpy as np
        from vecsim.adapters.qdrant_edge import QdrantEdgeStore
        from vecsim.index_config import FlatIndex
        from vecsim.store import AssetRecord, CollectionSpec, FrameRow
        s = QdrantEdgeStore({uri!r}, "k", CollectionSpec("test-desc", "1", {DIM}, FlatIndex()))
        v = np.ones({DIM}, np.float32) / np.sqrt({DIM})
        s.insert_frames([FrameRow("a", "g", i, float(i), i + 1.0, v, "ab" * 32) for i in range(3)])
        s.commit_asset(AssetRecord("a", "g", "video", "a.mp4", 3.0, 3, {{}}))
        os._exit(0)  # no close, no flush
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    with QdrantEdgeStore(uri, "k", SPEC) as store:
        assert store.count() == (1, 3) and store.assets(["a"])["a"].frames == 3


def test_refusals_create_nothing(tmp_path, uri):
    with pytest.raises(IndexConfigError, match="Milvus index"):
        QdrantEdgeStore(uri, "c", CollectionSpec("test-desc", "1", DIM, IvfFlatIndex()))
    assert not (tmp_path / "edge" / "c").exists()
    with pytest.raises(IndexConfigError, match="collection name"):
        QdrantEdgeStore(uri, "../escape", SPEC)
    with pytest.raises(IndexConfigError, match="qdrant-edge:PATH"):
        QdrantEdgeStore("qdrant-edge:", "c", SPEC)
    try:
        pq = index_config_from_dict({"type": "HNSW_PQ", "m": 7})
    except Exception:  # this vecsim has no HNSW_PQ config
        pq = None
    if pq is not None:
        with pytest.raises(IndexConfigError, match="HNSW_PQ"):
            QdrantEdgeStore(uri, "c", CollectionSpec("test-desc", "1", DIM, pq))
        assert not (tmp_path / "edge" / "c").exists()


def test_foreign_folder_and_other_schema_version_refused(tmp_path, uri):
    (tmp_path / "edge" / "stray").mkdir(parents=True)
    with pytest.raises(StoreError, match="not a vecsim collection"):
        QdrantEdgeStore(uri, "stray", SPEC)
    QdrantEdgeStore(uri, "old", SPEC).close()
    spec_file = tmp_path / "edge" / "old" / SPEC_FILE
    data = json.loads(spec_file.read_text())
    spec_file.write_text(json.dumps({**data, "schema_version": 1}))
    with pytest.raises(StoreError, match="schema version 1"):
        QdrantEdgeStore(uri, "old", SPEC)
    spec_file.write_text(json.dumps(data))
    QdrantEdgeStore(uri, "old", SPEC).close()  # and the refusals left it closed


def _recall(store: QdrantEdgeStore, rows: list[FrameRow], sample: np.ndarray) -> float:
    hits = store.search(np.stack([rows[i].vector for i in sample]), limit=1, per_asset=1)
    return float(np.mean([bool(h) and (h[0].task_id, h[0].frame) == (rows[i].task_id, rows[i].frame)
                          for i, h in zip(sample, hits)]))


def _hnsw_store(uri: str, name: str, index, **options) -> QdrantEdgeStore:
    # small thresholds, so that 2000 64-d vectors (500 KB) get a graph and are searched through it
    return QdrantEdgeStore(uri, name, CollectionSpec("test-desc", "1", DIM, index),
                           QdrantEdgeOptions(indexing_threshold_kb=10, full_scan_threshold_kb=1, **options))


def _random_assets(store: QdrantEdgeStore, rng: np.random.Generator, n: int = 2000) -> list[FrameRow]:
    vectors = unit(rng.normal(size=(n, DIM)))
    rows: list[FrameRow] = []
    for a in range(n // 5):
        rows += add(store, f"t{a}", vectors[5 * a : 5 * a + 5], rng)
    return rows


def test_hnsw_after_optimize_finds_stored_vectors(uri):
    rng = np.random.default_rng(7)
    with _hnsw_store(uri, "h", HnswIndex(M=16, efConstruction=100, ef=64), auto_optimize=None) as store:
        rows = _random_assets(store, rng)
        sample = rng.choice(len(rows), 300, replace=False)
        assert _recall(store, rows, sample) == 1.0  # not optimized yet: brute force, exact
        assert store.optimize() is True
        assert store._frames.info().indexed_vectors_count >= len(rows)  # the graph exists
        assert _recall(store, rows, sample) >= 0.95
        # and searches go through it: with a tiny ef, some top-10 lists differ from exact ones
        from qdrant_edge import Query, QueryRequest, SearchParams

        def top10(q, params):
            return [p.id for p in store._frames.query(QueryRequest(limit=10, query=Query.Nearest(q.tolist(), using="emb"),
                                                                   params=params))]

        queries = unit(rng.normal(size=(30, DIM)))
        assert any(top10(q, SearchParams(hnsw_ef=4)) != top10(q, SearchParams(exact=True)) for q in queries)
        q = unit(rng.normal(size=(20, DIM)))  # groups still hold: limit assets, per_asset frames
        for hits in store.search(q, limit=10, per_asset=3):
            counts = {t: sum(h.task_id == t for h in hits) for t in {h.task_id for h in hits}}
            assert len(counts) == 10 and all(1 <= c <= 3 for c in counts.values())
        more = add(store, "late", unit(rng.normal(size=(3, DIM))), rng)  # unindexed rows: brute force
        assert store.search(more[1].vector[None], limit=1)[0][0].task_id == "late"


def test_auto_optimize_builds_the_graph_before_a_search(uri):
    rng = np.random.default_rng(8)
    with _hnsw_store(uri, "auto", HnswIndex(M=16, efConstruction=100, ef=64), auto_optimize=1000) as store:
        rows = _random_assets(store, rng)
        assert store._frames.info().indexed_vectors_count == 0
        assert _recall(store, rows, rng.choice(len(rows), 100, replace=False)) >= 0.95
        assert store._frames.info().indexed_vectors_count >= len(rows) and store._unoptimized == 0
    with _hnsw_store(uri, "flat", FlatIndex(), auto_optimize=1000) as store:  # FLAT never builds one
        _random_assets(store, rng, 1500)
        store.search(unit(rng.normal(size=(1, DIM))), limit=1)
        assert store._frames.info().indexed_vectors_count == 0


@pytest.mark.parametrize("config", [{"type": "HNSW_SQ8"}, {"type": "HNSW_PQ", "m": 16}])
def test_quantized_hnsw(uri, config):
    try:
        index = index_config_from_dict(config)
    except Exception:
        pytest.skip(f"this vecsim has no {config['type']} config")
    rng = np.random.default_rng(9)
    with _hnsw_store(uri, "qz", index, auto_optimize=None) as store:
        rows = _random_assets(store, rng)
        store.build_index()
        assert store._frames.info().indexed_vectors_count >= len(rows)
        assert _recall(store, rows, rng.choice(len(rows), 200, replace=False)) >= 0.9
    with QdrantEdgeStore(uri, "qz", SPEC) as again:
        assert again.spec.index == index


def test_pdq_is_a_named_vector_with_hamming_distance(store):
    rng = np.random.default_rng(10)
    rows = add(store, "a", unit(rng.normal(size=(20, DIM))), rng)
    target = rows[7].pdq
    found = store.search_pdq(target, limit=20)
    assert found[0] == ("a", "g1", 7, 0)

    def hamming(a: str, b: str) -> int:
        return (int(a, 16) ^ int(b, 16)).bit_count()

    assert [d for *_, d in found] == sorted(hamming(target, r.pdq) for r in rows)
    for task_id, generation, frame, d in found:
        assert d == hamming(target, rows[frame].pdq)
    with pytest.raises(StoreError, match="64 hex"):
        store.insert_frames([FrameRow("b", "g", 0, 0.0, 1.0, rows[0].vector, "xyz")])
