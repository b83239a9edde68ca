"""Make videos and edited copies of videos with PyAV: for the tests, the benchmark and the demo.

Everything works frame by frame (decode, edit, encode), so long videos stream through.
Times are in seconds; an edit description maps output time to source time, which is what a
benchmark needs to know the true matching ranges.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from . import edits

CODEC_BY_SUFFIX = {
    ".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9",
    ".avi": "mpeg4", ".ts": "mpeg2video", ".mpg": "mpeg2video",
}


def write_video(
    path: str | Path,
    frames: Iterable[Image.Image],
    fps: float,
    *,
    codec: str | None = None,
    size: tuple[int, int] | None = None,
    bit_rate: int | None = None,
    rotation: int | None = None,
    start_seconds: float = 0.0,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode RGB frames at a constant rate. ``size`` defaults to the first frame's (made even);
    ``rotation`` writes display-rotation metadata; ``start_seconds`` shifts every timestamp."""
    import av

    path = Path(path)
    codec = codec or CODEC_BY_SUFFIX.get(path.suffix.lower(), "libx264")
    rate = _rate(fps)
    with av.open(str(path), "w") as out:
        stream = None
        for i, im in enumerate(frames):
            if stream is None:
                w, h = size or im.size
                stream = out.add_stream(codec, rate=rate)
                stream.width, stream.height = w - w % 2, h - h % 2
                stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
                if bit_rate:
                    stream.bit_rate = bit_rate
                if options:
                    stream.options = options
                if rotation:
                    stream.set_display_rotation(rotation)
                stream.codec_context.time_base = 1 / rate
                offset = round(start_seconds * rate)
            frame = av.VideoFrame.from_image(im.convert("RGB").resize((stream.width, stream.height)))
            frame.pts = offset + i
            for packet in stream.encode(frame):
                out.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                out.mux(packet)
    return path


def _rate(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)


def read_frames(path: str | Path) -> Iterator[tuple[float, Image.Image]]:
    """Every frame of a video's first video stream with its time (s) from the stream's start."""
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        start = None
        for frame in c.decode(stream):
            if frame.time is None:
                continue
            start = frame.time if start is None else start
            yield float(frame.time - start), frame.to_image()


def video_fps(path: str | Path) -> float:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return float(s.average_rate or s.guessed_rate or 25)


# --- synthetic footage from real photos ----------------------------------------------------------


def pan(photo: Image.Image, seconds: float, fps: float, size: tuple[int, int], *, seed: int = 0
             ) -> Iterator[Image.Image]:
    """A camera pan across the photo (a window at one zoom, moving corner to corner), so every
    second shows a different part of it."""
    rng = np.random.default_rng(seed)
    w, h = photo.size
    aspect = size[0] / size[1]
    z0 = z1 = rng.uniform(0.5, 0.6)
    corners = rng.permutation([(0.0, 0.0), (1.0, 1.0), (0.0, 1.0), (1.0, 0.0)])
    (x0, y0), (x1, y1) = corners[0], corners[1]
    n = max(1, round(seconds * fps))
    for i in range(n):
        a = i / max(1, n - 1)
        z = z0 + (z1 - z0) * a
        cw = min(w, h * aspect) * z
        ch = cw / aspect
        cx = (x0 + (x1 - x0) * a) * (w - cw)
        cy = (y0 + (y1 - y0) * a) * (h - ch)
        yield photo.resize(size, Image.Resampling.BILINEAR, box=(cx, cy, cx + cw, cy + ch))


def slideshow(photos: list[Image.Image], seconds_each: float, fps: float, size: tuple[int, int], *, seed: int = 0
              ) -> Iterator[Image.Image]:
    for i, photo in enumerate(photos):
        yield from pan(photo, seconds_each, fps, size, seed=seed + i)


def still(photo: Image.Image, seconds: float, fps: float, size: tuple[int, int]) -> Iterator[Image.Image]:
    frame = photo.resize(size, Image.Resampling.BILINEAR)
    for _ in range(max(1, round(seconds * fps))):
        yield frame


# --- edited copies -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoEdit:
    """An edit of a source video: the excerpt ``[start, end)`` played at ``speed``, each frame
    through ``frame_edit``, re-encoded at ``size`` / ``bit_rate``."""

    name: str
    start: float = 0.0
    end: float | None = None
    speed: float = 1.0
    frame_edit: Callable[[Image.Image], Image.Image] | None = None
    size: tuple[int, int] | None = None
    bit_rate: int | None = None


def standard_video_edits(excerpt: tuple[float, float], seed: int = 0) -> list[VideoEdit]:
    """The edited copies of issue 3, all of the excerpt ``[start, end)``."""
    s, e = excerpt
    return [
        VideoEdit("excerpt", s, e),
        VideoEdit("reencode_small", s, e, size=(240, 136), bit_rate=150_000),
        VideoEdit("crop", s, e, frame_edit=edits.center_crop(0.5)),
        VideoEdit("text_overlay", s, e, frame_edit=edits.text_overlay("COPY  @uploader")),
        VideoEdit("mirror", s, e, frame_edit=edits.hflip),
        VideoEdit("speed_1.25", s, e, speed=1.25),
    ]


def apply_edit(src: str | Path, dst: str | Path, edit: VideoEdit, *, fps: float | None = None) -> Path:
    """Write ``edit`` of ``src`` to ``dst`` at the source frame rate (or ``fps``)."""
    fps = fps or video_fps(src)
    return write_video(dst, _edited_frames(src, edit, fps), fps, size=edit.size, bit_rate=edit.bit_rate)


def _edited_frames(src: str | Path, edit: VideoEdit, fps: float) -> Iterator[Image.Image]:
    """Output frame k shows the first source frame at or after ``start + k / fps * speed``."""
    k = 0
    for t, im in read_frames(src):
        if edit.end is not None and t >= edit.end:
            break
        while edit.start + k / fps * edit.speed <= t + 1e-6:
            yield edit.frame_edit(im) if edit.frame_edit else im
            k += 1


def insert_into(host: str | Path, clip: str | Path, dst: str | Path, at: float, *, size: tuple[int, int] | None = None
                ) -> Path:
    """``host`` with ``clip`` spliced in at ``at`` seconds (host resumes after it), at the host's rate."""
    fps = video_fps(host)
    size = size or next(read_frames(host))[1].size

    def frames() -> Iterator[Image.Image]:
        host_frames = list(im for _, im in read_frames(host))
        split = min(len(host_frames), math.floor(at * fps))
        yield from host_frames[:split]
        clip_fps = video_fps(clip)
        yield from _edited_frames(clip, VideoEdit("insert"), fps) if abs(clip_fps - fps) > 1e-3 else (
            im for _, im in read_frames(clip))
        yield from host_frames[split:]

    return write_video(dst, frames(), fps, size=size)
