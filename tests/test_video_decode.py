"""Video decoding with PyAV: containers and codecs, sampling by presentation time, rotation,
damaged and bad inputs. Every clip is made here from real photos."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from vecsim.errors import CorruptMediaError, EmptyMediaError, MediaTooLargeError, UnsupportedMediaError
from vecsim.media import open_media
from vecsim.video_edits import pan, write_video

SIZE = (160, 120)


@pytest.fixture(scope="module")
def shot(photos):
    return list(pan(photos["coffee"], 5, 10, SIZE, seed=1))  # 5 s at 10 fps


def timestamps(media, **kw):
    stream = open_media(media, **kw)
    assert stream.media_type == "video"
    return [f.timestamp for f in stream.read_all()], stream


@pytest.mark.parametrize("suffix,codec", [(".mp4", "libx264"), (".mov", "libx264"), (".mkv", "libx264"),
                                          (".webm", "libvpx-vp9"), (".avi", "mpeg4"), (".ts", "mpeg2video"),
                                          (".mpg", "mpeg2video"), (".avi", "mjpeg")])
def test_containers_and_codecs_sample_one_frame_per_second(tmp_path, shot, suffix, codec):
    path = write_video(tmp_path / f"clip{suffix}", shot, 10, codec=codec)
    ts, stream = timestamps(path)
    assert ts == pytest.approx([0, 1, 2, 3, 4], abs=0.11)
    assert stream.codec in (codec.removeprefix("lib").replace("vpx-vp9", "vp9").replace("x264", "h264"), codec)
    assert 4.5 <= stream.duration <= 5.2
    im = open_media(path).read_all()[2].image
    assert im.mode == "RGB" and im.size == SIZE


def test_sampling_rate_is_configurable(tmp_path, shot):
    ts, _ = timestamps(write_video(tmp_path / "c.mp4", shot, 10), fps=2)
    assert ts == pytest.approx([0.5 * i for i in range(10)], abs=0.01)


def test_ntsc_rate_timestamps(tmp_path, shot):
    ts, _ = timestamps(write_video(tmp_path / "ntsc.mp4", shot * 3, 30000 / 1001))
    # the first frame at or after each second, each 1001/30000 s long
    assert ts == pytest.approx([0, 1.001, 2.002, 3.003, 4.004], abs=0.04)


def _write_vfr(path, frames, times):
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=1000)
        s.width, s.height, s.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        for im, t in zip(frames, times):
            f = av.VideoFrame.from_image(im)
            f.pts = round(t * 1000)
            f.time_base = Fraction(1, 1000)
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


def test_variable_frame_rate(tmp_path, shot):
    times = [0, 0.05, 0.3, 0.31, 1.4, 2.0, 2.05, 3.9, 4.5]
    path = tmp_path / "vfr.mkv"
    _write_vfr(path, shot[: len(times)], times)
    ts, _ = timestamps(path)
    assert ts == pytest.approx([0, 1.4, 2.0, 3.9, 4.5], abs=0.002)


def test_non_zero_start_time_counts_from_the_start(tmp_path, shot):
    path = write_video(tmp_path / "late.ts", shot, 10, start_seconds=7.5)
    with av.open(str(path)) as c:
        assert c.streams.video[0].start_time * c.streams.video[0].time_base >= 7
    ts, _ = timestamps(path)
    assert ts == pytest.approx([0, 1, 2, 3, 4], abs=0.11)


def test_rotation_metadata_is_applied(tmp_path):
    frame = Image.new("RGB", SIZE, (0, 0, 0))
    frame.paste((255, 255, 255), (0, 0, 20, SIZE[1]))  # white band on the left
    path = write_video(tmp_path / "rot.mp4", [frame] * 20, 10, rotation=90)
    im = open_media(path).read_all()[0].image
    assert im.size == (SIZE[1], SIZE[0])  # portrait after turning
    arr = np.asarray(im.convert("L"), dtype=float)
    # 90 degrees counter-clockwise: the left band ends up at the bottom
    assert arr[-10:].mean() > 200 and arr[:10].mean() < 60


def test_animated_webp_is_a_video(shot):
    buf = io.BytesIO()
    shot[0].save(buf, format="WEBP", save_all=True, append_images=shot[1:25], duration=100, loop=0)
    ts, stream = timestamps(buf.getvalue())
    assert ts == pytest.approx([0, 1, 2], abs=0.01) and stream.duration == pytest.approx(2.5)


def test_large_video_scaled_in_ffmpeg(tmp_path, photos):
    frames = list(pan(photos["astronaut"], 1, 5, (1280, 720)))
    im = open_media(write_video(tmp_path / "hd.mp4", frames, 5)).read_all()[0].image
    assert im.size == (512, 288)


# --- bad input ---------------------------------------------------------------------------------


def test_audio_only_is_refused(tmp_path):
    path = tmp_path / "song.m4a"
    with av.open(str(path), "w") as out:
        s = out.add_stream("aac", rate=44100)
        t = np.arange(44100) / 44100
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        for i in range(0, 44100, 1024):
            f = av.AudioFrame.from_ndarray(samples[:, i : i + 1024].copy(), format="fltp", layout="mono")
            f.sample_rate, f.pts = 44100, i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    with pytest.raises(UnsupportedMediaError, match="no video stream \\(audio only\\)") as err:
        open_media(path)
    assert err.value.source == str(path)


def test_truncated_mp4_without_index_is_corrupt(tmp_path, shot):
    data = write_video(tmp_path / "full.mp4", shot, 10).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptMediaError, match="truncated or corrupt video") as err:
        open_media(tmp_path / "cut.mp4").read_all()
    assert err.value.source == str(tmp_path / "cut.mp4")


def test_truncated_stream_keeps_the_frames_before_the_damage(tmp_path, shot):
    data = write_video(tmp_path / "full.ts", shot * 4, 10).read_bytes()  # 20 s
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: len(data) // 2])
    ts, stream = timestamps(cut)
    assert 3 <= len(ts) < 20 and ts == sorted(ts)
    assert all("damaged" in w for w in stream.warnings)


def _write_faststart_mp4(path, frames, fps=10):
    """An MP4 with its index (moov) at the front, as ``-movflags +faststart`` writes it."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        for i, im in enumerate(frames):
            f = av.VideoFrame.from_image(im)
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def test_faststart_mp4_cut_short_warns_and_keeps_its_frames(tmp_path, shot):
    data = _write_faststart_mp4(tmp_path / "full.mp4", shot * 2).read_bytes()  # 10 s
    assert data.find(b"moov") < data.find(b"mdat")  # the index is at the front
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.4)])
    ts, stream = timestamps(cut)
    assert 1 <= len(ts) < 8 and stream.frame_count == len(ts) and stream.duration < 8
    assert len(stream.warnings) == 1 and "truncated?" in stream.warnings[0], stream.warnings
    assert "10.0 s" in stream.warnings[0]
    full_ts, full = timestamps(tmp_path / "full.mp4")  # the complete file: no warning
    assert len(full_ts) == 10 and full.warnings == [] and full.duration == pytest.approx(10, abs=0.11)


def test_corrupt_middle_of_an_mp4_keeps_the_frames_before(tmp_path, shot):
    data = bytearray(write_video(tmp_path / "m.mp4", shot * 2, 10).read_bytes())  # 10 s, moov at the end
    mid, n = len(data) // 2, len(data) // 5
    data[mid : mid + n] = np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes()
    (tmp_path / "m2.mp4").write_bytes(bytes(data))
    try:
        ts, stream = timestamps(tmp_path / "m2.mp4")
    except CorruptMediaError as exc:  # acceptable too: typed and named
        assert exc.source == str(tmp_path / "m2.mp4")
    else:
        assert 1 <= len(ts) and ts == sorted(ts) and stream.warnings


def test_garbage_after_a_valid_start(tmp_path, shot):
    data = bytearray(write_video(tmp_path / "g.ts", shot * 2, 10).read_bytes())
    half = len(data) // 2
    data[half:] = np.random.default_rng(0).integers(0, 256, len(data) - half, dtype=np.uint8).tobytes()
    (tmp_path / "g2.ts").write_bytes(bytes(data))
    ts, _ = timestamps(tmp_path / "g2.ts")  # must not hang; keeps what decodes
    assert len(ts) >= 2


def test_zero_length_video(tmp_path):
    path = tmp_path / "empty.mkv"  # a video track with no frames beside a short audio track
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = out.add_stream("aac", rate=44100)
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        f.sample_rate, f.pts = 44100, 0
        for p in list(a.encode(f)) + list(a.encode()):
            out.mux(p)
    with pytest.raises(EmptyMediaError, match="zero length") as err:
        open_media(path).read_all()
    assert err.value.source == str(path)


def test_too_long(tmp_path, shot):
    path = write_video(tmp_path / "long.mp4", shot, 10)
    with pytest.raises(MediaTooLargeError, match="max_duration"):
        open_media(path, max_duration=3).read_all()


def test_random_bytes_are_not_media():
    with pytest.raises(UnsupportedMediaError, match="not an image or a video"):
        open_media(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())


def test_stream_reports_its_description_once_read(tmp_path, shot):
    stream = open_media(write_video(tmp_path / "d.mp4", shot, 10))
    assert (stream.media_type, stream.codec, stream.width, stream.height) == ("video", "h264", *SIZE)
    assert stream.frame_rate == pytest.approx(10) and stream.duration is None and stream.frame_count == 0
    frames = list(stream)
    assert stream.frame_count == len(frames) == 5 and stream.duration == pytest.approx(5, abs=0.11)
    assert stream.warnings == []


def test_kept_frames_are_independent_images(tmp_path, photos):
    frames = list(pan(photos["chelsea"], 1, 2, SIZE)) + list(pan(photos["rocket"], 1, 2, SIZE))
    got = open_media(write_video(tmp_path / "two.mp4", frames, 2)).read_all()
    a, b = (np.asarray(f.image, dtype=float) for f in got)
    assert np.abs(a - b).mean() > 20  # a cat and a rocket, not the same buffer twice
