"""Video decoding: frames sampled at a fixed rate (default 1 fps) by presentation time, streamed.

PyAV (FFmpeg) decodes containers and codecs (animated GIF and WebP are read with Pillow, in
:mod:`vecsim.media.image`, which knows their per-frame durations). Whatever the source, frames
come out of a :class:`~vecsim.media.stream.MediaStream` as :class:`~vecsim.media.frame.Frame`
objects with timestamps in seconds from the start of the video, so a two-hour video never sits
in memory.

Sampling is by presentation time, not frame count: the first frame at or after each multiple of
``1 / fps`` is kept, with its own timestamp (variable frame rates, odd time bases and non-zero
start times are handled by reading ``frame.time`` and subtracting the stream's start). Frames
that are not kept are decoded (the codec needs them) but never converted to RGB; where the codec
allows (intra-only codecs such as MJPEG) the packets that are not needed are not decoded at
all; kept frames are scaled down by FFmpeg
(swscale, in C) before they reach Python. Rotation metadata is applied.

Damage: a stream that breaks after some frames were decoded keeps those frames and reports a
warning (``MediaStream.warnings``); so does a stream that ends well before the duration its
container declares (a file cut short whose index sits at the front, ``-movflags +faststart``:
the demuxer just meets the end of the file). A stream with no decodable frame is a
:class:`~vecsim.errors.CorruptMediaError`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any

from PIL import Image

from ..errors import CorruptMediaError, EmptyMediaError, MediaError, MediaTooLargeError, UnsupportedMediaError
from .frame import Frame
from .options import MediaOptions, check_pixels
from .stream import MediaStream, Sampler

#: Kept frames are scaled (in FFmpeg) to fit in this many pixels a side; the descriptors need less.
FRAME_MAX_SIDE = 512
#: A video whose decoded frames end this much (and this fraction) before the duration its
#: container declares is reported as probably truncated.
TRUNCATION_SLACK_S = 2.0
TRUNCATION_SLACK_FRACTION = 0.1

__all__ = ["FRAME_MAX_SIDE", "Sampler", "VideoStream", "open_container", "open_video"]


def _fit(width: int, height: int, max_side: int = FRAME_MAX_SIDE) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height, 1))
    return max(2, round(width * scale)) & ~1, max(2, round(height * scale)) & ~1


def _rotate(im: Image.Image, degrees: int) -> Image.Image:
    """Apply a counter-clockwise display rotation (what ``VideoFrame.rotation`` reports)."""
    d = int(round(degrees)) % 360
    if d == 0:
        return im
    turns = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
    if d in turns:
        return im.transpose(turns[d])
    return im.rotate(d, expand=True)


def open_container(media: Any, source: str):
    """Open with PyAV; raise a typed MediaError when it is not a video we can read."""
    import av

    target = os.fspath(media) if isinstance(media, (str, os.PathLike)) else media
    if isinstance(target, (bytes, bytearray, memoryview)):
        target = io.BytesIO(bytes(target))
    try:
        container = av.open(target, mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        reason = exc.strerror or str(exc)
        if _looks_like_video(target):
            raise CorruptMediaError(source, f"truncated or corrupt video ({reason})") from None
        raise UnsupportedMediaError(source, f"not an image or a video ({reason})") from None
    fmt = container.format.name or ""
    if fmt == "image2" or fmt.endswith("_pipe"):
        # FFmpeg's still-image readers: Pillow already failed to read this as an image.
        container.close()
        raise UnsupportedMediaError(source, "not an image or a video (unrecognised or damaged image data)")
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        container.close()
        what = "audio only" if kinds == ["audio"] else f"streams: {', '.join(kinds) or 'none'}"
        raise UnsupportedMediaError(source, f"no video stream ({what})")
    return container


#: Leading bytes of video containers: a file that starts like one but does not open is damaged.
_SIGNATURES = ((4, b"ftyp"), (0, b"\x1a\x45\xdf\xa3"), (0, b"RIFF"), (0, b"\x00\x00\x01\xba"),
               (0, b"\x00\x00\x01\xb3"), (0, b"FLV"), (0, b"OggS"), (0, b"\x30\x26\xb2\x75"))


def _looks_like_video(target: Any) -> bool:
    try:
        if isinstance(target, str):
            with open(target, "rb") as f:
                head = f.read(16)
        else:
            target.seek(0)
            head = target.read(16)
            target.seek(0)
    except OSError:
        return False
    if head[:1] == b"\x47" and len(head) >= 1:  # MPEG-TS sync byte (checked loosely)
        return True
    return any(head[off : off + len(sig)] == sig for off, sig in _SIGNATURES)


def _check_duration(container, source: str, max_duration: float) -> None:
    """Refuse, before decoding, a video whose container says it is too long."""
    if container.duration and container.duration / 1e6 > max_duration:
        seconds = container.duration / 1e6
        raise MediaTooLargeError(source, f"duration {seconds:.0f} s is over the limit of {max_duration:g} s (max_duration)")


def open_video(target: Any, source: str, options: MediaOptions) -> VideoStream:
    """Open a path or seekable binary file with PyAV and check its frame size and declared
    duration against ``options`` before any frame is decoded."""
    container = open_container(target, source)
    try:
        ctx = container.streams.video[0].codec_context
        check_pixels(source, (ctx.width or 1, ctx.height or 1), options.max_pixels)
        _check_duration(container, source, options.max_duration)
    except MediaError:
        container.close()
        raise
    return VideoStream(container, source, options)


class VideoStream(MediaStream):
    """The sampled frames of the first video stream of an open PyAV container (closed when the
    iteration ends)."""

    media_type = "video"

    def __init__(self, container, source: str, options: MediaOptions):
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 0)
        super().__init__(source, width=stream.codec_context.width, height=stream.codec_context.height,
                         codec=stream.codec_context.name, frame_rate=rate or None)
        self._container = container
        self.fps, self.max_duration = options.fps, options.max_duration

    def _read(self) -> Iterator[Frame]:
        import av

        container, source = self._container, self.source
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = self.frame_rate or 0.0
        # Intra-only codecs (MJPEG, ProRes, ...): every packet stands alone, so packets that the
        # sampling does not need are not decoded at all. (Skipping non-reference frames of inter
        # codecs saved ~30% of h264 decode time but moved samples by a frame and, on sparse
        # variable-frame-rate streams, lost whole seconds: not done.)
        intra_only = bool(getattr(stream.codec_context.codec, "intra_only", False))
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else None
        container_duration = container.duration / 1e6 if container.duration else None
        declared = _declared_duration(stream, container_duration)
        sampler = Sampler(self.fps, self.max_duration, source)
        size = None
        kept = 0
        damaged = False
        try:
            for packet in container.demux(stream):
                if intra_only and packet.pts is not None and start is not None:
                    t = max(0.0, float(packet.pts * packet.time_base) - start)
                    if not sampler.needs(t):
                        sampler.last_t = max(sampler.last_t or 0.0, t)  # for the duration
                        continue
                for frame in packet.decode():
                    if frame.time is None:
                        continue
                    if start is None:
                        start = float(frame.time)
                    t = max(0.0, float(frame.time) - start)
                    if not sampler.want(t):
                        continue
                    if size is None:
                        size = _fit(frame.width, frame.height)
                    # to_image shares the scaler's output buffer, which the next frame overwrites
                    image = frame.to_image(width=size[0], height=size[1]).copy()
                    kept += 1
                    yield Frame(_rotate(image, frame.rotation or 0), round(t, 3))
        except av.error.FFmpegError as exc:
            if kept == 0:
                raise CorruptMediaError(source, f"truncated or corrupt video ({exc.strerror or exc})") from None
            damaged = True
            self.warnings.append(f"the video stream is damaged after {sampler.last_t or 0:.1f} s "
                                 f"({exc.strerror or exc}); kept the {kept} frames sampled before the damage")
        finally:
            container.close()
        if kept == 0:
            raise EmptyMediaError(source, "the video has no decodable frames (zero length)")
        self.duration = _duration(container_duration, sampler, rate or self.fps)
        if not damaged and declared and _cut_short(self.duration, declared):
            self.warnings.append(f"the video ends at {self.duration:.1f} s although its container says "
                                 f"{declared:.1f} s: truncated? kept the {kept} frames sampled")


def _declared_duration(stream, container_duration: float | None) -> float | None:
    """Seconds the video stream says it lasts (its own duration, else the container's)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container_duration


def _cut_short(decoded: float, declared: float) -> bool:
    missing = declared - decoded
    return missing > TRUNCATION_SLACK_S and missing > TRUNCATION_SLACK_FRACTION * declared


def _duration(container_duration: float | None, sampler: Sampler, frame_rate: float) -> float:
    """Seconds: the last decoded frame's time plus one frame, capped by the container's duration."""
    last = sampler.last_t or 0.0
    end = last + 1.0 / frame_rate
    if container_duration:
        end = max(last, min(container_duration, end))
    return round(end, 3)
