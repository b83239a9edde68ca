"""Video custom search end to end on every backend with the real model: edited copies of a 60 s
video found with the right timestamps and segments; image <-> video; remove; all-or-nothing adds."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vecsim import CustomIndex, MediaTooLargeError
from vecsim.errors import CorruptMediaError, UnsupportedMediaError
from vecsim.sample_media import generated_distractor, sample_photo
from vecsim.video_edits import (
    VideoEdit, apply_edit, insert_into, read_frames, slideshow, standard_video_edits, still, write_video,
)

from .backends import INDEXES, open_index

SIZE, FPS = (320, 240), 10
A_PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
            "stereo_motorcycle", "camera", "coins"]
EXCERPT = (20.0, 30.0)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    photos = {n: sample_photo(n) for n in A_PHOTOS + ["clock", "brick", "gravel"]}
    out = {
        "A": write_video(d / "A.mp4", slideshow([photos[n] for n in A_PHOTOS], 6, FPS, SIZE, seed=3), FPS),
        "B": write_video(d / "B.mkv", slideshow([generated_distractor(20 + i, SIZE) for i in range(3)],
                                                10, FPS, SIZE, seed=9), FPS),
        "host": write_video(d / "host.mp4", slideshow([generated_distractor(i, SIZE) for i in range(4)], 10, FPS,
                                                      SIZE, seed=5), FPS),
    }
    for e in standard_video_edits(EXCERPT):
        out[e.name] = apply_edit(out["A"], d / f"{e.name}.mp4", e)
    out["inserted"] = insert_into(out["host"], out["excerpt"], d / "inserted.mp4", at=15.0)
    # two unrelated videos that share an identical 3 s intro card
    intro = list(still(generated_distractor(99, SIZE), 3, FPS, SIZE))
    out["D"] = write_video(d / "D.mp4", intro + list(slideshow([photos["brick"]], 12, FPS, SIZE, seed=1)), FPS)
    out["E"] = write_video(d / "E.mp4", intro + list(slideshow([photos["gravel"]], 12, FPS, SIZE, seed=2)), FPS)
    # a video that shows the photo "clock" (an indexed image) still for 5 s in its middle
    out["with_clock"] = write_video(
        d / "with_clock.mp4",
        list(slideshow([photos["gravel"]], 6, FPS, SIZE, seed=7)) + list(still(photos["clock"], 5, FPS, SIZE))
        + list(slideshow([photos["gravel"]], 6, FPS, SIZE, seed=8)), FPS)
    out["frame_35"] = next(im for t, im in read_frames(out["A"]) if t >= 35.0)
    out["clock"] = photos["clock"]
    return out


@pytest.fixture(scope="module", params=INDEXES)
def index(request, tmp_path_factory, media):
    idx, cleanup = open_index(request, request.param, tmp_path_factory.mktemp("vidx"))
    request.addfinalizer(cleanup)
    for tid in ("A", "B", "D"):
        res = idx.add(media[tid], metadata={"title": tid}, task_id=tid)
        assert res.media_type == "video" and res.frames == res.stored_frames
    idx.add(media["clock"], task_id="clock-photo", metadata={"kind": "image"})
    idx.add(sample_photo("moon"), task_id="moon-photo")
    yield idx
    idx.close()


def test_ingest_one_row_per_second(index):
    a = index.get("A")
    assert a.media_type == "video" and a.metadata == {"title": "A"} and 59.9 <= a.duration <= 60.1
    assert [f.timestamp for f in a.frames] == pytest.approx(list(range(60)), abs=0.11)
    assert index.info().assets == 5


@pytest.mark.parametrize("edit", ["excerpt", "reencode_small", "crop", "text_overlay", "mirror"])
def test_edited_excerpt_found_with_timestamps_and_segment(index, media, edit):
    res = index.query(media[edit])
    assert res.media_type == "video" and res.query_frames == 10
    top = res.output[0]
    assert top.task_id == "A" and top.metadata == {"title": "A"}
    assert len({m.query_timestamp for m in top.matches}) == len(top.matches)  # once per query second
    good = [m for m in top.matches if abs(m.matching_timestamp - (EXCERPT[0] + m.query_timestamp)) <= 1.0]
    assert len(good) >= 8, [(m.query_timestamp, m.matching_timestamp) for m in top.matches]
    assert top.matched_ratio >= 0.8
    seg = top.segments[0]
    assert abs(seg.query_start - 0) <= 2 and abs(seg.query_end - 10) <= 2
    assert abs(seg.match_start - 20) <= 2 and abs(seg.match_end - 30) <= 2
    assert top.longest_segment_seconds >= 8


def test_sped_up_copy(index, media):
    top = index.query(media["speed_1.25"]).output[0]
    assert top.task_id == "A"
    seg = top.segments[0]
    # 10 s of source played at 1.25x: 8 s of query covering source 20..30
    assert abs(seg.query_start - 0) <= 2 and abs(seg.query_end - 8) <= 2
    assert abs(seg.match_start - 20) <= 2 and abs(seg.match_end - 30) <= 2


def test_excerpt_inside_an_unrelated_video(index, media):
    res = index.query(media["inserted"])
    top = res.output[0]
    assert top.task_id == "A" and res.query_frames == 50
    seg = top.segments[0]
    assert abs(seg.query_start - 15) <= 2 and abs(seg.query_end - 25) <= 2
    assert abs(seg.match_start - 20) <= 2 and abs(seg.match_end - 30) <= 2
    assert 0.15 <= top.matched_ratio <= 0.3


def test_shared_intro_is_not_a_long_segment(index, media):
    res = index.query(media["E"], threshold=0.5)
    for asset in res.output:
        if asset.task_id == "D":
            assert asset.longest_segment_seconds <= 4.5
            assert all(m.query_timestamp <= 4 for m in asset.matches)


def test_image_in_video(index, media):
    res = index.query(media["frame_35"])
    top = res.output[0]
    assert res.media_type == "image" and top.task_id == "A"
    assert top.matches[0].query_timestamp == 0 and abs(top.matches[0].matching_timestamp - 35) <= 1


def test_video_in_image(index, media):
    res = index.query(media["with_clock"])
    top = res.output[0]
    assert top.task_id == "clock-photo" and top.media_type == "image"
    assert {round(m.query_timestamp) for m in top.matches} >= {7, 8, 9, 10}
    assert all(6 <= m.query_timestamp <= 11.2 and m.matching_timestamp == 0 for m in top.matches)
    assert abs(top.segments[0].query_start - 6) <= 2 and abs(top.segments[0].query_end - 11) <= 2


def test_remove_video(tmp_path, media):
    with CustomIndex(str(tmp_path / "r.db")) as idx:
        idx.add(media["B"], task_id="B")
        assets, rows = idx.info().assets, idx.info().frames
        assert (assets, rows) == (1, 30)
        assert idx.remove("B").removed_frames == 30
        assert idx.info().frames == 0 and idx.query(media["B"]).output == []


def test_bad_videos_write_nothing(tmp_path, media):
    with CustomIndex(str(tmp_path / "bad.db"), max_duration=30) as idx:
        idx.add(media["B"], task_id="B")  # exactly 30 s: allowed
        before = idx.info()
        with pytest.raises(MediaTooLargeError):
            idx.add(media["A"])
        data = media["A"].read_bytes()
        (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
        with pytest.raises(CorruptMediaError):
            idx.add(tmp_path / "cut.mp4")
        with pytest.raises(UnsupportedMediaError):
            idx.add(b"\x00" * 4096)
        after = idx.info()
        assert (after.assets, after.frames) == (before.assets, before.frames)


class _FailingStore:
    """Wraps a real store; the n-th frame write raises, like a connection lost mid-add."""

    def __init__(self, store, fail_at):
        self._store, self._fail_at, self._calls = store, fail_at, 0

    def insert_frames(self, rows):
        self._calls += 1
        if self._calls == self._fail_at:
            raise ConnectionError("store went away")
        self._store.insert_frames(rows)

    def __getattr__(self, name):
        return getattr(self._store, name)


def test_failure_half_way_leaves_nothing(tmp_path, media, monkeypatch):
    import vecsim.index

    monkeypatch.setattr(vecsim.index, "WRITE_BATCH", 8)  # A's 60 rows go in 8 writes; the 3rd fails
    with CustomIndex(str(tmp_path / "f.db"), batch_size=4) as idx:
        idx.add(media["B"], task_id="B")
        real = idx._store
        idx._store = _FailingStore(real, fail_at=3)
        with pytest.raises(ConnectionError):
            idx.add(media["A"], task_id="A")
        idx._store = _FailingStore(real, fail_at=3)
        with pytest.raises(ConnectionError):  # a replace that fails keeps the old asset intact
            idx.add(media["A"], task_id="B", replace=True)
        idx._store = real
        info = idx.info()
        assert (info.assets, info.frames) == (1, 30)
        assert idx.query(media["excerpt"]).output == [] or idx.query(media["excerpt"]).output[0].task_id != "A"
        assert idx.query(media["B"]).output[0].task_id == "B"


def test_replace_switches_atomically(tmp_path, media):
    with CustomIndex(str(tmp_path / "x.db")) as idx:
        idx.add(media["B"], task_id="X", metadata={"v": 1})
        res = idx.add(media["A"], task_id="X", metadata={"v": 2}, replace=True)
        assert res.replaced and idx.info().frames == 60
        top = idx.query(media["excerpt"]).output[0]
        assert top.task_id == "X" and top.metadata == {"v": 2}


KILL_SCRIPT = """
import os, signal, sys
from vecsim import CustomIndex
idx = CustomIndex(sys.argv[1], batch_size=8)
real = idx._store.insert_frames
def insert_then_die(rows):
    real(rows)
    os.kill(os.getpid(), signal.SIGKILL)   # killed after the first frames reached the store
idx._store.insert_frames = insert_then_die
idx.add(sys.argv[2], task_id="half")
"""


def test_killed_mid_add_shows_no_half_asset(tmp_path, media):
    db = str(tmp_path / "k.db")
    with CustomIndex(db) as idx:
        idx.add(media["B"], task_id="B")
    p = subprocess.run([sys.executable, "-c", KILL_SCRIPT, db, str(media["A"])], capture_output=True)
    assert p.returncode == -9
    with CustomIndex(db) as idx:
        info = idx.info()
        assert info.assets == 1 and info.frames > 30  # the orphaned rows exist ...
        assert all(a.task_id != "half" for a in idx.query(media["excerpt"], threshold=0).output)  # ... unseen
        vac = idx.vacuum()  # the leftovers are found and deleted; committed assets are untouched
        assert vac.orphaned_generations == 1 and vac.removed_frames == info.frames - 30
        assert idx.info().frames == 30 and idx.vacuum().removed_frames == 0
        assert idx.query(media["B"]).output[0].task_id == "B"


def test_same_task_id_again_cleans_leftovers(tmp_path, media):
    db = str(tmp_path / "k2.db")
    p = subprocess.run([sys.executable, "-c", KILL_SCRIPT, db, str(media["A"])], capture_output=True)
    assert p.returncode == -9
    with CustomIndex(db) as idx:
        assert idx.info().assets == 0 and idx.info().frames > 0
        idx.add(media["A"], task_id="half")  # the same id again: leftovers are cleaned up
        assert idx.info().frames == 60 and idx.query(media["excerpt"]).output[0].task_id == "half"


def test_still_stretches_are_merged_and_timestamps_stay_right(tmp_path, media):
    frames = list(slideshow([sample_photo("astronaut")], 5, FPS, SIZE, seed=1))
    frames += list(still(sample_photo("coffee"), 20, FPS, SIZE))
    frames += list(slideshow([sample_photo("rocket")], 5, FPS, SIZE, seed=2))
    path = write_video(tmp_path / "still.mp4", frames, FPS)
    with CustomIndex(str(tmp_path / "d.db"), dedupe_distance=8) as idx:
        res = idx.add(path, task_id="S")
        assert res.frames == 30 and res.stored_frames <= 12
        spans = [(f.timestamp, f.span_end) for f in idx.get("S").frames]
        assert any(end - start >= 15 for start, end in spans)
        # an excerpt of 10..20 s of the still stretch plus the rocket part after it
        clip = apply_edit(path, tmp_path / "clip.mp4", VideoEdit("x", 17, 30))
        top = idx.query(clip).output[0]
        assert top.task_id == "S"
        for m in top.matches:
            assert abs(m.matching_timestamp - (17 + m.query_timestamp)) <= 1.5, m


def test_image_asset_segments_are_runs_of_query_seconds(index, media):
    top = index.query(media["with_clock"]).output[0]
    assert top.task_id == "clock-photo" and len(top.segments) == 1
    seg = top.segments[0]
    assert seg.match_start == seg.match_end == 0 and seg.query_end - seg.query_start >= 4


def test_video_query_segments_end_where_the_copy_ends(tmp_path):
    """A video query's duration is read after its frames (it was read before: 0, so query_end got
    no extension while match_end did). Both ends cover their last frame's second."""
    photos = [sample_photo(n) for n in ("astronaut", "chelsea", "coffee", "rocket", "camera")]
    clip = write_video(tmp_path / "clip.mp4", slideshow(photos, 2, FPS, SIZE, seed=4), FPS)  # 10 s
    excerpt = apply_edit(clip, tmp_path / "excerpt.mp4", VideoEdit("excerpt", 3.0, 8.0))  # seconds 3..7
    with CustomIndex(str(tmp_path / "q.db")) as idx:
        idx.add(clip, task_id="clip")
        full = idx.query(clip)
        assert full.duration == pytest.approx(10, abs=0.11)
        seg = full.output[0].segments[0]
        assert full.output[0].task_id == "clip"
        assert (seg.query_start, seg.match_start) == (0, 0)
        assert abs(seg.query_end - 10) <= 1.01 and abs(seg.match_end - 10) <= 1.01
        assert seg.query_end - seg.query_start == pytest.approx(seg.match_end - seg.match_start, abs=0.11)
        part = idx.query(excerpt)
        assert part.duration == pytest.approx(5, abs=0.11)
        seg = part.output[0].segments[0]
        got = (seg.query_start, seg.query_end, seg.match_start, seg.match_end)
        assert got == pytest.approx((0, 5, 3, 8), abs=0.11), got  # was 0-4 -> 3-8
