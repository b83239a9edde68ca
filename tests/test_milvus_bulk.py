"""Milvus Lite at scale (issue 12): bulk commits without a flush per write, one engine search per
query batch with the grouping done here, and the crowding case that grouping must still survive.
Small collections (a few thousand rows): what is checked is the engine calls and the results."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from vecsim.adapters import milvus as milvus_adapter
from vecsim.adapters import open_store
from vecsim.adapters.milvus_lite import _servers
from vecsim.errors import StoreError
from vecsim.index_config import FlatIndex, HnswIndex
from vecsim.store import AssetRecord, CollectionSpec, FrameRow

DIM = 32
PDQ = "0" * 64


def spec(index=None) -> CollectionSpec:
    return CollectionSpec("bulk-desc", "1", DIM, index or FlatIndex())


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def frame_rows(task_id: str, vectors, generation: str = "g1") -> list[FrameRow]:
    return [FrameRow(task_id, generation, i, float(i), float(i + 1), v, PDQ) for i, v in enumerate(vectors)]


def record(task_id: str, frames: int, generation: str = "g1") -> AssetRecord:
    return AssetRecord(task_id, generation, "video", f"{task_id}.mp4", float(frames), frames, {"id": task_id})


def corpus(n_assets: int, frames: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = unit(rng.normal(size=(n_assets, DIM)))
    return {f"t{a:04d}": unit(centers[a] + rng.normal(scale=0.15, size=(frames, DIM))) for a in range(n_assets)}


def exact(data: dict[str, np.ndarray], q: np.ndarray, limit: int, per_asset: int) -> list[tuple[str, list[int]]]:
    """The ``limit`` best assets, best first, each with its ``per_asset`` best frames (numpy)."""
    best = sorted(data, key=lambda t: -float((data[t] @ q).max()))[:limit]
    return [(t, [int(i) for i in np.argsort(-(data[t] @ q), kind="stable")[:per_asset]]) for t in best]


def check(hits, data: dict[str, np.ndarray], q: np.ndarray, limit: int, per_asset: int) -> dict[str, list[int]]:
    """``hits`` are right: the assets of exact search in its order, each with a prefix of its best
    frames (its best frame at least: an asset's frames ranked below every row fetched may be
    missing) and the right scores; returns the frames per asset."""
    got: dict[str, list[int]] = {}
    for h in hits:
        got.setdefault(h.task_id, []).append(h.frame)
        assert h.raw_score == pytest.approx(float(data[h.task_id][h.frame] @ q), abs=1e-4)
    want = exact(data, q, limit, per_asset)
    assert list(got) == [t for t, _ in want]
    for t, frames in want:
        assert 1 <= len(got[t]) and got[t] == frames[: len(got[t])]
    return got


class Spy:
    """Counts the calls of some methods of the (shared) Lite client, passing them through."""

    def __init__(self, monkeypatch, client, names):
        self.calls: list[tuple[str, str]] = []
        for name in names:
            real = getattr(client, name)

            def spy(collection, *args, _name=name, _real=real, **kwargs):
                self.calls.append((_name, collection))
                return _real(collection, *args, **kwargs)

            monkeypatch.setattr(client, name, spy)

    def of(self, name: str) -> list[str]:
        return [c for n, c in self.calls if n == name]


@pytest.fixture
def lite(tmp_path):
    with open_store(f"milvus-lite:{tmp_path / 'bulk.db'}", "c", spec()) as s:
        yield s


def bulk_load(store, data: dict[str, np.ndarray], per_batch: int = 50) -> None:
    ids = list(data)
    for i in range(0, len(ids), per_batch):
        chunk = ids[i : i + per_batch]
        store.insert_frames([r for t in chunk for r in frame_rows(t, data[t])])
        store.commit_assets([record(t, len(data[t])) for t in chunk])


def test_bulk_load_flushes_once_per_commit_not_per_write(lite, monkeypatch):
    spy = Spy(monkeypatch, lite._client, ["flush", "upsert"])
    data = corpus(30)
    for t in list(data)[:20]:
        lite.insert_frames(frame_rows(t, data[t]))
    assert spy.of("flush") == []  # before: a flush per insert_frames (55-87 ms each on Lite)
    lite.commit_assets([record(t, 10) for t in list(data)[:20]])
    assert spy.of("flush") == ["c", "c_assets"]  # the frames first, then the records, once each
    assert spy.of("upsert") == ["c_assets"]  # all the records in one request
    assert lite.count() == (20, 200)


def test_frames_in_the_memtable_are_searched_once_and_commit_makes_them_visible(lite):
    data = corpus(40)
    bulk_load(lite, dict(list(data.items())[:30]))
    rest = dict(list(data.items())[30:])
    lite.insert_frames([r for t in rest for r in frame_rows(t, rest[t])])  # not flushed, not committed
    q = unit(rest["t0035"][3] + 0.01)
    for _ in range(2):  # unflushed rows are found, each frame once
        hits = lite.search(q[None], limit=5, per_asset=3)[0]
        assert check(hits, data, q, 5, 3)["t0035"] == exact(data, q, 1, 3)[0][1]
        assert len(set(map(repr, hits))) == len(hits)
    assert lite.assets(list(rest)) == {}  # frames without their records: invisible to the core
    lite.insert_frames(frame_rows("t0035", rest["t0035"]))  # the same rows again (a retried write)
    assert lite.count() == (30, 400)
    again = lite.search(q[None], limit=5, per_asset=3)[0]
    assert again == hits
    lite.commit_assets([record(t, 10) for t in rest])  # a query right after sees them: no build_index
    assert set(lite.assets(list(rest))) == set(rest)
    assert lite.search(q[None], limit=5, per_asset=3)[0] == hits
    assert lite.count() == (40, 400)


def test_records_not_committed_stay_invisible_when_a_commit_fails_part_way(lite, monkeypatch):
    monkeypatch.setattr(milvus_adapter, "ASSET_BATCH", 4)
    data = corpus(10, frames=2)
    lite.insert_frames([r for t in data for r in frame_rows(t, data[t])])
    real = lite._client.upsert
    sent = []

    def failing(collection, rows, **kwargs):
        if sent:
            raise RuntimeError("connection lost")
        sent.append([r["task_id"] for r in rows])
        return real(collection, rows, **kwargs)

    monkeypatch.setattr(lite._client, "upsert", failing)
    with pytest.raises(StoreError, match="commit of 10 assets"):
        lite.commit_assets([record(t, 2) for t in data])
    monkeypatch.undo()
    assert sent == [list(data)[:4]]
    assert lite.assets(list(data)) == {t: record(t, 2) for t in list(data)[:4]}  # whole records, or none
    assert lite.count() == (4, 20)


def test_asset_requests_stay_under_the_size_limit(monkeypatch):
    monkeypatch.setattr(milvus_adapter, "REQUEST_BYTES", 10_000)
    rows = [milvus_adapter._asset_row(AssetRecord(f"a{i}", "g", "image", "s", 0.0, 0, {"x": "y" * 3000}))
            for i in range(10)]
    batches = list(milvus_adapter._request_batches(rows))
    assert [len(b) for b in batches] == [3, 3, 3, 1] and [r for b in batches for r in b] == rows
    big = [milvus_adapter._asset_row(AssetRecord("big", "g", "image", "s", 0.0, 0, {"x": "y" * 50_000}))]
    assert list(milvus_adapter._request_batches(big)) == [big]  # one oversized record goes alone


def test_one_engine_search_per_query_batch_grouped_like_exact_search(lite, monkeypatch):
    data = corpus(300)
    bulk_load(lite, data)
    spy = Spy(monkeypatch, lite._client, ["search", "query"])
    rng = np.random.default_rng(5)
    qs = unit(np.stack([data[f"t{a:04d}"][a % 10] for a in rng.integers(0, 300, 20)]) + rng.normal(
        scale=0.05, size=(20, DIM)))
    got = lite.search(qs, limit=10, per_asset=5)
    assert spy.calls == [("search", "c")]  # before: a group_by search, a group_size=1 search, a count
    for q, hits in zip(qs, got):
        assert check(hits, data, q, 10, 5)
    one = lite.search(qs[:1], limit=3, per_asset=1)[0]
    assert [(h.task_id, h.frame) for h in one] == [(t, f[0]) for t, f in exact(data, qs[0], 3, 1)]


def test_one_asset_with_many_near_identical_frames_cannot_crowd_out_the_others(lite, monkeypatch):
    rng = np.random.default_rng(1)
    q = unit(rng.normal(size=DIM))
    data = corpus(60, seed=2)
    data["crowd"] = unit(q + rng.normal(scale=0.02, size=(400, DIM)))  # 400 frames closest to q
    data["near"] = unit(np.stack([q + rng.normal(scale=0.3, size=DIM), rng.normal(size=DIM), rng.normal(size=DIM)]))
    data["image"] = unit(q + rng.normal(scale=0.35, size=(1, DIM)))  # one frame
    bulk_load(lite, data, per_batch=20)
    spy = Spy(monkeypatch, lite._client, ["search"])
    for limit, per_asset in ((5, 2), (8, 3), (3, 5)):
        hits = lite.search(q[None], limit=limit, per_asset=per_asset)[0]
        got = check(hits, data, q, limit, per_asset)  # the crowd first, then the others in order
        assert len(got) == limit and next(iter(got)) == "crowd" and len(got["crowd"]) == per_asset
    assert len(spy.calls) > 3  # the crowded fetches needed their follow-up searches
    # a batch with a crowded and an ordinary query: the follow-up only for the crowded one
    spy.calls.clear()
    other = unit(data["t0007"][2] + 0.01)
    both = lite.search(np.stack([q, other]), limit=5, per_asset=2)
    assert check(both[0], data, q, 5, 2) and check(both[1], data, other, 5, 2)
    assert len(spy.calls) == 2


def test_build_index_indexes_every_segment_of_a_bulk_load(tmp_path):
    pytest.importorskip("faiss")
    data = corpus(200)
    uri = f"milvus-lite:{tmp_path / 'hnsw.db'}"
    with open_store(uri, "c", spec(HnswIndex(M=8, efConstruction=40))) as s:
        bulk_load(s, data, per_batch=20)  # 10 flushes: segments that Lite compacts and indexes in the background
        s.insert_frames(frame_rows("late", data["t0001"]))  # still in the memtable
        s.build_index()
        col = _servers[str(tmp_path / "hnsw.db")].db.get_collection("c")
        segments = col._segments_snapshot()
        assert segments and all("vector" in seg.indexes for seg in segments)  # the first query pays no build
        assert col._memtable.size() == 0
        q = unit(data["t0042"][4] + 0.01)
        hits = s.search(q[None], limit=5, per_asset=2)[0]
        assert [(h.task_id, h.frame) for h in hits[:2]] == [("t0042", f) for f in exact(data, q, 1, 2)[0][1]]
        assert s.count() == (200, 2010)


def test_writers_on_threads_commit_one_file_without_losing_a_write(tmp_path):
    """Lite's flush swaps its memtable out before taking its lock: two commits at once used to
    fail with "current_seq is monotonic" after writing their rows. Writes to a file are now sent
    one at a time (milvus_lite.LITE_WRITES), so six threads each committing assets all succeed."""
    data = corpus(48, frames=3)
    ids = list(data)
    errors: list[BaseException] = []
    uri = f"milvus-lite:{tmp_path / 'threads.db'}"
    with open_store(uri, "c", spec()) as a, open_store(uri, "c", spec()) as b:

        def write(k: int) -> None:
            store = (a, b)[k % 2]
            for t in ids[k::6]:
                try:
                    store.insert_frames(frame_rows(t, data[t]))
                    store.commit_assets([record(t, 3)])
                except BaseException as exc:  # noqa: BLE001 - every failure is the test's result
                    errors.append(exc)

        threads = [threading.Thread(target=write, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors
        assert a.count() == b.count() == (48, 144)
