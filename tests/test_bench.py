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
    md = report.to_markdown()
    assert "right asset first" in md and "combined" in md
