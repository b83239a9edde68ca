"""``vecsim.sizing`` and ``vecsim size``: the arithmetic of the estimate, the command's output and
errors, and that docs/sizing.md's tables are what the module computes (so they cannot drift)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vecsim import sizing
from vecsim.cli import app
from vecsim.errors import InvalidRequestError

DOC = Path(__file__).resolve().parent.parent / "docs" / "sizing.md"


def test_frames_of_images_and_video():
    assert sizing.frames_for(video_hours=10) == 36_000  # 1 fps: 3 600 frames an hour
    assert sizing.frames_for(images=500, video_hours=1, fps=2.0) == 500 + 7_200
    assert sizing.frames_for(video_hours=10, keep=0.5) == 18_000  # dedupe kept half
    assert sizing.frames_for(images=7) == 7


@pytest.mark.parametrize("kwargs", [{"images": -1}, {"video_hours": -0.5}, {"video_hours": float("nan")},
                                    {"video_hours": 1, "fps": 0}, {"video_hours": 1, "keep": 0}])
def test_frames_refuses_bad_values(kwargs):
    with pytest.raises(InvalidRequestError):
        sizing.frames_for(**kwargs)


def test_memory_and_disk_grow_linearly():
    small = sizing.estimate(1_000_000, engine="qdrant", index="HNSW")
    big = sizing.estimate(10_000_000, engine="qdrant", index="HNSW")
    assert big.ram_bytes == 10 * small.ram_bytes and big.disk_bytes == 10 * small.disk_bytes
    cost = sizing.row_cost("qdrant", "HNSW")
    assert small.disk_bytes == 1_000_000 * (cost.disk + sizing.KEYPOINT_DISK_BYTES + sizing.ASSET_RECORD_BYTES)


def test_quantized_index_is_smaller_than_plain():
    for engine, plain, quantized in (("qdrant", "HNSW", "HNSW_SQ8"), ("qdrant", "HNSW", "HNSW_PQ"),
                                     ("milvus", "IVF_FLAT", "IVF_SQ8"), ("milvus", "HNSW", "HNSW_SQ8")):
        p = sizing.estimate(100_000_000, engine=engine, index=plain)
        q = sizing.estimate(100_000_000, engine=engine, index=quantized)
        assert q.ram_bytes < p.ram_bytes and q.nodes <= p.nodes, (engine, quantized)


def test_keypoints_cost_disk_and_ingest_time():
    with_kp = sizing.estimate(1_000_000, index="HNSW")
    without = sizing.estimate(1_000_000, index="HNSW", keypoints=False)
    assert with_kp.disk_bytes - without.disk_bytes == 1_000_000 * sizing.KEYPOINT_DISK_BYTES
    assert with_kp.ingest_core_hours > without.ingest_core_hours


def test_ingest_time_divides_over_workers_and_video_adds_decoding():
    one = sizing.estimate(3_600_000, workers=1, cores_per_worker=16)
    ten = sizing.estimate(3_600_000, workers=10, cores_per_worker=16)
    assert one.ingest_core_hours == pytest.approx(3_600_000 / sizing.FRAMES_PER_CORE_S / 3600, abs=0.1)
    assert ten.ingest_hours == pytest.approx(one.ingest_hours / 10, abs=0.1)
    video = sizing.estimate(3_600_000, video_hours=1000)
    assert video.ingest_core_hours == pytest.approx(
        one.ingest_core_hours + 1000 * 3600 * sizing.DECODE_CORE_S_PER_VIDEO_S / 3600, abs=0.1)


def test_nodes_follow_memory_and_search_is_extrapolated_past_a_million():
    est = sizing.estimate(1_000_000_000, engine="qdrant", index="HNSW")
    node = sizing.Node()
    assert est.shards == max(1, -(-est.ram_bytes // int(node.ram_gib * sizing.GIB * node.ram_usable)),
                             -(-est.disk_bytes // int(node.disk_gib * sizing.GIB * node.disk_usable)))
    assert est.extrapolated == (1_000_000_000 / est.shards > 1_000_000)
    assert not sizing.estimate(100_000, index="HNSW").extrapolated
    assert sizing.estimate(1_000_000, replicas=2).nodes == 2 * sizing.estimate(1_000_000).nodes
    # the measured curve: 1.60 / 3.57 / 9.18 ms at 10 k / 100 k / 1 M rows (docs/benchmark.md)
    assert sizing.search_ms("qdrant", "HNSW", 100_000) == (pytest.approx(3.57), False)


def test_unknown_or_unbuilt_index_and_engine_are_errors():
    with pytest.raises(InvalidRequestError, match="unknown index type 'BTREE'"):
        sizing.estimate(10, index="BTREE")
    with pytest.raises(InvalidRequestError, match="qdrant does not build IVF_SQ8"):
        sizing.estimate(10, engine="qdrant", index="IVF_SQ8")
    with pytest.raises(InvalidRequestError, match="unknown engine 'faiss'"):
        sizing.estimate(10, engine="faiss")
    with pytest.raises(InvalidRequestError, match="nothing to size"):
        sizing.estimate(0)
    with pytest.raises(InvalidRequestError, match="workers must be at least 1"):
        sizing.estimate(10, workers=0)


def test_doc_tables_are_what_the_module_computes():
    text = DOC.read_text()
    for engine in sizing.ENGINES:
        assert sizing.doc_table(engine) in text, f"docs/sizing.md's {engine} table is stale: regenerate it"


def test_doc_quotes_the_constants():
    text = DOC.read_text().replace(",", "").replace(" ", "")
    for value in (sizing.row_cost("qdrant", "HNSW").disk, sizing.KEYPOINT_DISK_BYTES, sizing.ASSET_RECORD_BYTES,
                  sizing.FRAMES_PER_CORE_S):
        assert re.sub(r"\.0$", "", str(value)) in text, value


runner = CliRunner()


def test_cli_prints_the_estimate():
    r = runner.invoke(app, ["size", "--video-hours", "10", "--engine", "qdrant", "--index-type", "hnsw_sq8"])
    assert r.exit_code == 0, r.output
    assert "36,000 in 60 assets" in r.output and "qdrant HNSW_SQ8" in r.output
    want = sizing.estimate(36_000, 60, "qdrant", "HNSW_SQ8", video_hours=10)
    assert f"{want.ram_bytes / 1024**3:,.1f} GiB" in r.output


def test_cli_json_and_recommended_index():
    r = runner.invoke(app, ["size", "--images", "2000000", "--engine", "milvus", "--workers", "4", "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    want = sizing.estimate(2_000_000, 2_000_000, "milvus", sizing.recommend(2_000_000, "milvus"), workers=4)
    assert got == want.to_dict()


@pytest.mark.parametrize("args, message", [
    (["size"], "nothing to size"),
    (["size", "--images", "10", "--index-type", "BTREE"], "unknown index type"),
    (["size", "--images", "10", "--engine", "milvus-lite"], "unknown engine"),
])
def test_cli_errors(args, message):
    r = runner.invoke(app, args)
    assert r.exit_code != 0 and isinstance(r.exception, InvalidRequestError) and message in str(r.exception)


def test_cli_refuses_negative_numbers():
    r = runner.invoke(app, ["size", "--images", "-5"])
    assert r.exit_code == 2 and "greater than or equal to 0" in " ".join(r.output.split())
