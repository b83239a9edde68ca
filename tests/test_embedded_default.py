"""The embedded default: which engine a plain local path opens, and what a new one is built with."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vecsim.adapters import default_index, engine_of, open_store
from vecsim.errors import IndexConfigError
from vecsim.index_config import FlatIndex, HnswIndex
from vecsim.store import AssetRecord, CollectionSpec, FrameRow

pytest.importorskip("qdrant_edge")

SPEC = CollectionSpec("test-desc", "1", 8, FlatIndex())


def _row(task_id: str, i: int) -> FrameRow:
    v = np.zeros(8, np.float32)
    v[i % 8] = 1.0
    return FrameRow(task_id, "g1", 0, 0.0, 1.0, v, "0" * 64)


def test_a_new_plain_path_is_qdrant_edge_with_hnsw(tmp_path):
    path = tmp_path / "vecsim.db"
    assert engine_of(str(path)) == "qdrant-edge"
    assert default_index(str(path)) == HnswIndex(M=16, efConstruction=100, ef=1024)
    assert default_index(f"milvus-lite:{path}") == FlatIndex() == default_index("http://localhost:19530")
    with open_store(str(path), "c", SPEC) as store:
        assert store.engine == "qdrant-edge" and store.uri == str(path)
        store.insert_frames([_row("a", 0)])
        store.commit_asset(AssetRecord("a", "g1", "image", "a.jpg", 0.0, 1))
    assert json.loads((path / "vecsim-index.json").read_text())["engine"] == "qdrant-edge"
    assert engine_of(str(path)) == "qdrant-edge"  # and it reopens as such
    with open_store(str(path), "c", SPEC) as store:
        assert store.count() == (1, 1)


def test_an_existing_milvus_lite_index_keeps_opening_as_milvus_lite(tmp_path):
    path = tmp_path / "old.db"
    with open_store(f"milvus-lite:{path}", "c", SPEC) as store:  # as earlier versions made it from "old.db"
        store.insert_frames([_row("a", 1)])
        store.commit_asset(AssetRecord("a", "g1", "image", "a.jpg", 0.0, 1))
    assert engine_of(str(path)) == "milvus-lite" and default_index(str(path)) == FlatIndex()
    with open_store(str(path), "c", SPEC) as store:  # the plain path finds it
        assert store.engine == "milvus-lite" and store.count() == (1, 1)
        [hits] = store.search(_row("q", 1).vector[None], limit=1)
        assert hits[0].task_id == "a"


def test_a_new_milvus_lite_index_needs_a_db_name(tmp_path):
    with pytest.raises(IndexConfigError, match=r"\.db"):
        open_store(f"milvus-lite:{tmp_path / 'lite'}", "c", SPEC)
    with pytest.raises(IndexConfigError, match="unsupported index URI"):
        engine_of("redis://localhost:6379")


def test_hnsw_ef_is_a_per_open_search_option(tmp_path):
    from vecsim.adapters import QdrantEdgeOptions

    uri = str(tmp_path / "ef")
    spec = CollectionSpec("test-desc", "1", 8, HnswIndex(M=8, efConstruction=40, ef=32))
    with open_store(uri, "c", spec) as store:
        assert store._params.hnsw_ef == 32  # the collection's own
    with open_store(uri, "c", spec, QdrantEdgeOptions(hnsw_ef=512)) as store:
        assert store._params.hnsw_ef == 512 and store.spec.index.ef == 32  # this open only
        store.insert_frames([_row("a", 2)])
        assert store.search(_row("q", 2).vector[None], limit=1)[0][0].task_id == "a"
    for bad in (0, "many", True):
        with pytest.raises(IndexConfigError, match="hnsw_ef"):
            QdrantEdgeOptions(hnsw_ef=bad)
