"""The benchmarks' own arithmetic, and the video benchmark end to end on a tiny set."""

from __future__ import annotations


from vecsim.bench_video import _overlap, run_video_bench
from vecsim.sample_media import sample_photo
from vecsim.video_edits import slideshow, write_video


def test_overlap_merges_and_clips():
    assert _overlap([], (0, 10)) == (0, 0)
    assert _overlap([(0, 4), (2, 6), (8, 9)], (5, 20)) == (7, 2)  # union 0..6 + 8..9; overlap 5..6 + 8..9
    assert _overlap([(3, 5)], (0, 0)) == (2, 0)


def test_video_bench_end_to_end(tmp_path):
    d = tmp_path / "refs"
    d.mkdir()
    names = ["astronaut", "coffee", "rocket", "camera", "coins", "chelsea"]
    write_video(d / "one.mp4", slideshow([sample_photo(n) for n in names[:3]], 5, 10, (320, 240), seed=1), 10)
    write_video(d / "two.mkv", slideshow([sample_photo(n) for n in names[3:]], 5, 10, (320, 240), seed=2), 10)
    (d / "skip_me.mp4").write_bytes((d / "one.mp4").read_bytes())
    report = run_video_bench(d, exclude=["skip_*"])
    assert report.references == 2 and report.queries == 14
    assert set(report.top1) == {"excerpt", "reencode_small", "crop", "text_overlay", "mirror", "speed_1.25", "inserted"}
    assert report.top1_mean >= 0.85
    assert 0 < report.segment["precision"] <= 1 and 0 < report.segment["recall"] <= 1
    assert report.segment["recall_query"] >= 0.6
    # VSC2022 segment AP, overall and per edit (on this data: 0.90 overall, 0.92 plain excerpt,
    # 0.65 inserted in an unrelated video)
    assert set(report.segment_ap_per_edit) == set(report.top1)
    assert all(0 <= v <= 1 for v in report.segment_ap_per_edit.values())
    assert 0.5 < report.segment_ap <= 1 and report.segment_ap_per_edit["excerpt"] > 0.5
    md = report.to_markdown()
    assert "right asset first" in md and "combined" in md and "segment AP" in md


def test_index_bench_on_a_tiny_cached_corpus(tmp_path):
    from vecsim.bench_corpus import load_or_build_corpus
    from vecsim.bench_index import run_index_bench, vector_bytes
    from vecsim.descriptors import load_descriptor
    from vecsim.index_config import parse_index_config

    refs, dis = tmp_path / "refs", tmp_path / "dis"
    refs.mkdir(), dis.mkdir()
    for n in ["astronaut", "coffee", "rocket"]:
        sample_photo(n).save(refs / f"{n}.png")
    for n in ["moon", "page"]:
        sample_photo(n).convert("RGB").save(dis / f"{n}.png")
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "v.mp4", slideshow([sample_photo("camera")], 3, 10, (320, 240), seed=3), 10)
    descriptor = load_descriptor()
    corpus = load_or_build_corpus(descriptor, refs, dis, videos, tmp_path / "cache", target_vectors=40)
    assert corpus.vectors_indexed >= 40 and len(corpus.query_edit) == 3 * 14
    assert len(set(corpus.frame_group.tolist())) == 3  # the video and the two distractor images
    again = load_or_build_corpus(descriptor, refs, dis, videos, tmp_path / "cache", target_vectors=40)
    assert (again.query_vectors == corpus.query_vectors).all()  # read back from the cache

    report = run_index_bench(corpus, refs, uri=str(tmp_path / "b.db"), index=parse_index_config("HNSW"),
                             e2e_queries=3, search_samples=5)
    assert report.vectors == corpus.vectors_indexed and report.assets == 3 + 2 + 3
    assert report.recall_at_1["identity"] == 1.0 and 0.8 <= report.recall_at_1_mean <= 1.0
    assert report.search_ms_p50 > 0 and report.query_ms_p95 >= report.query_ms_p50
    assert (report.code_bytes_per_vector, report.graph_bytes_per_vector) == (5120, 128)
    assert vector_bytes(parse_index_config("IVF_PQ", {"m": 64}), 1280) == (64, 0)
    assert vector_bytes(parse_index_config("HNSW_SQ8"), 1280) == (1280, 128)
