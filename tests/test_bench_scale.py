"""``vecsim bench scale``: the synthetic rows, and the benchmark end to end on two small sizes
(Qdrant Edge and Milvus Lite through the function, Qdrant Edge HNSW through the CLI)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from vecsim.bench.scale import (
    ASSET_COSINE,
    FRAME_COSINE,
    QUERY_COSINE,
    Corpus,
    ScaleBenchReport,
    faiss_module,
    make_queries,
    parse_rows,
    run_scale_bench,
    task_id,
)
from vecsim.errors import InvalidRequestError, MissingDependencyError
from vecsim.index_config import parse_index_config

ROWS = [500, 1500]


@pytest.mark.parametrize("bad", ["", "0,10", "10,5", "10,10", "-5", "a,b", "10,,20", "1.5"])
def test_rows_must_be_increasing_positive_integers(bad):
    with pytest.raises(InvalidRequestError, match="--rows must be increasing positive integers"):
        parse_rows(bad)
    assert parse_rows("10000, 100_000,1000000") == [10_000, 100_000, 1_000_000]
    assert parse_rows([5, 7]) == [5, 7]


def test_missing_faiss_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'vecsim\[bench\]'"):
        faiss_module()


def _unit(rng, n, dim=256):
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_synthetic_rows_are_clustered_seeded_and_chunked():
    centres = _unit(np.random.default_rng(1), 6)
    corpus = Corpus(centres, 95, frames_per_asset=10, seed=3)
    rows, records = corpus.chunk(45)  # 4 whole assets and one of 5 frames
    assert [r.frames for r in records] == [10, 10, 10, 10, 5] and len(rows) == 45
    assert [r.frame for r in rows[:12]] == [*range(10), 0, 1] and rows[12].timestamp == 2.0 and rows[12].span_end == 3.0
    assert rows[10].task_id == records[1].task_id == task_id(1) and records[1].media_type == "video"
    assert all(len(r.pdq) == 64 and r.vector.dtype == np.float32 for r in rows)
    corpus.chunk(50)
    assert (corpus.rows, corpus.assets) == (95, 10)
    v = corpus.vectors[:95]
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    # frames of one asset: both at 0.85-0.95 from the asset vector; of two assets: far apart
    lo, hi = FRAME_COSINE
    same = v[1:10] @ v[0]
    assert same.min() > 2 * lo * lo - 1 and same.max() < 1
    other = v[10:] @ v[0]
    assert other.max() < same.min()
    # every frame is near a centre, about as far as asset and frame cosines make it
    near = (v @ centres.T).max(axis=1)
    assert near.min() > ASSET_COSINE[0] * lo - 0.2 and near.max() < ASSET_COSINE[1] * hi + 0.2
    again = Corpus(centres, 95, frames_per_asset=10, seed=3)
    again.chunk(45)
    again.chunk(50)
    assert np.array_equal(again.vectors[:95], v) and np.array_equal(again.pdq[:95], corpus.pdq[:95])
    queries = make_queries(corpus, 20, seed=0, turns=2)
    assert queries.vectors.shape == (20, 256) and len(queries.turns) == 2 and len(queries.hashes) == 20
    best = queries.vectors @ v.T
    assert np.allclose(best.max(axis=1), QUERY_COSINE, atol=0.05)  # the frame it copies is its nearest
    assert all(corpus.asset_of[i] == a for i, a in zip(best.argmax(axis=1), queries.asset))
    assert all(len(h.hashes) == 8 and h.quality >= 50 for h in queries.hashes)


def _check(report: ScaleBenchReport, engine: str, exact: bool = True) -> None:
    assert report.engine == engine and report.engine_version and report.queries == 10
    fpa = report.frames_per_asset
    assert [s.rows for s in report.steps] == ROWS and [s.assets for s in report.steps] == [500 // fpa, 1500 // fpa]
    assert report.centres == 32 and report.dim == 256 and report.machine["cpus"] >= 1
    for s in report.steps:
        assert s.load_s > 0 and s.load_rows_per_s > 0 and s.build_s >= 0 and s.reopen_s > 0
        assert 0 < s.search_ms_p50 <= s.search_ms_p95 and 0 < s.query_ms_p50 <= s.query_ms_p95
        assert 0 < s.faiss_flat_ms_p50 and 0 < s.faiss_hnsw_ms_p50 and s.faiss_hnsw_build_s > 0
        for r in (s.recall_at_10, s.right_asset_top10, s.right_asset_first, s.faiss_hnsw_recall_at_10):
            assert 0 <= r <= 1
        if exact:
            assert s.recall_at_10 >= 0.9
        assert s.right_asset_top10 >= 0.9 and s.right_asset_first >= 0.9
        assert s.rss_mb > 0 and s.disk_bytes > 0 and s.disk_bytes_per_row > 0
    md = report.to_markdown()
    assert "| rows |" in md and "faiss flat ms p50" in md and "faiss HNSW ms p50 (build s)" in md
    assert f"| 500 | {500 // fpa} |" in md and f"| 1,500 | {1500 // fpa} |" in md


def test_scale_bench_qdrant_edge(tmp_path):
    from vecsim.bench.report import write_report

    report = run_scale_bench(uri=f"qdrant-edge:{tmp_path / 'edge'}", rows=ROWS, index=parse_index_config("FLAT"),
                             queries=10)
    _check(report, "qdrant-edge")
    md, js = write_report(report, tmp_path / "out", "scale-bench")
    data = json.loads(js.read_text())
    assert md.read_text().strip() == report.to_markdown()
    assert [s["rows"] for s in data["steps"]] == ROWS and data["index"]["type"] == "FLAT"
    assert ScaleBenchReport(**{**data, "steps": []}).engine == "qdrant-edge"
    # the collection is left in place, and a second run refuses it
    with pytest.raises(InvalidRequestError, match="not empty"):
        run_scale_bench(uri=f"qdrant-edge:{tmp_path / 'edge'}", rows=[10], index=parse_index_config("FLAT"), queries=1)


def test_scale_bench_milvus_lite(tmp_path):
    report = run_scale_bench(uri=f"milvus-lite:{tmp_path / 'scale.db'}", rows=ROWS, index=parse_index_config("FLAT"), queries=10,
                             frames_per_asset=25, collection="scale_lite")
    assert report.collection == "scale_lite" and report.frames_per_asset == 25
    _check(report, "milvus-lite")


def test_scale_bench_cli(tmp_path):
    from typer.testing import CliRunner

    from vecsim.cli import app

    out = tmp_path / "out"
    args = ["bench", "scale", "--index", f"qdrant-edge:{tmp_path / 'edge'}", "--rows", "500,1500", "--queries", "10",
            "--index-type", "HNSW", "--index-param", "M=16", "--out", str(out), "--seed", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "scale-bench.json").read_text())
    assert data["index"]["type"] == "HNSW" and data["index"]["M"] == 16 and data["seed"] == 1
    assert data["collection"] == "bench_scale"
    assert (out / "scale-bench.md").read_text() in result.stdout + "\n"
    _check(ScaleBenchReport(**{**data, "steps": [_step(s) for s in data["steps"]]}), "qdrant-edge", exact=False)

    bad = CliRunner().invoke(app, ["bench", "scale", "--index", f"qdrant-edge:{tmp_path / 'x'}", "--rows", "1000,500"])
    assert bad.exit_code != 0 and isinstance(bad.exception, InvalidRequestError)
    assert "--rows must be increasing positive integers" in str(bad.exception)
    assert not (tmp_path / "x").exists()  # refused before anything was opened


def _step(d):
    from vecsim.bench.scale import ScaleStep

    return ScaleStep(**d)
