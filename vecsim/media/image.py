"""Pillow decoding: still images (one frame at ``t = 0``) and animated GIF / WebP, which are
videos sampled by their per-frame durations.

Decompression bombs are refused from the header (``max_pixels``), before any pixel is decoded;
Pillow's exceptions become typed :class:`~vecsim.errors.MediaError` naming the input.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import CorruptMediaError, MediaError, MediaTooLargeError
from .frame import Frame, to_rgb
from .options import MediaOptions, check_pixels
from .stream import MediaStream, Sampler
from .video import FRAME_MAX_SIDE

#: Formats Pillow may identify that we accept (Pillow reads more; we keep to what we test).
IMAGE_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "DIB", "TIFF"})
#: How long a GIF frame with no (or a zero) duration is shown: what browsers do.
DEFAULT_FRAME_DURATION_MS = 100


@contextmanager
def pillow_errors(source: str) -> Iterator[None]:
    """Turn Pillow's exceptions into typed media errors naming the input."""
    try:
        yield
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaTooLargeError(source, f"refused as a decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptMediaError(source, f"truncated or corrupt image ({exc})") from None


def identify(target) -> Image.Image | None:
    """Pillow's reading of the header, or None when Pillow does not know the format."""
    try:
        return Image.open(target)
    except UnidentifiedImageError:
        return None


def is_animation(im: Image.Image) -> bool:
    return im.format in ("GIF", "WEBP") and getattr(im, "n_frames", 1) > 1


class ImageStream(MediaStream):
    """A still image: one frame at ``t = 0``, decoded when the stream is opened."""

    media_type = "image"

    def __init__(self, source: str, frame: Frame):
        super().__init__(source, width=frame.image.width, height=frame.image.height)
        self._frame = frame

    def _read(self) -> Iterator[Frame]:
        yield self._frame


def decode_still(im: Image.Image, source: str, max_pixels: int) -> Frame:
    check_pixels(source, im.size, max_pixels)
    im.seek(0)  # GIF / multi-page TIFF: the first frame
    im.load()
    return Frame(to_rgb(ImageOps.exif_transpose(im)), 0.0)


def _frame_seconds(im: Image.Image) -> float:
    return float(im.info.get("duration") or DEFAULT_FRAME_DURATION_MS) / 1000.0  # browsers show 0 as 100 ms


class AnimationStream(MediaStream):
    """The sampled frames of an animated GIF / WebP opened with Pillow (closing it when done if
    ``close``)."""

    media_type = "video"

    def __init__(self, im: Image.Image, source: str, options: MediaOptions, *, close: bool):
        super().__init__(source, width=im.width, height=im.height, codec=im.format.lower())
        self._im, self._close = im, close
        self.fps, self.max_duration = options.fps, options.max_duration

    def check_length(self) -> None:
        """Refuse, before any frame is yielded, an animation longer than ``max_duration``: the
        frame durations are summed first (the sampler alone sees only where the last frame
        starts, not where it ends). Pillow reads each frame to reach the next, so this costs a
        second pass over the animation; animations are short. Raises a typed error for an
        animation damaged at its first frame (a later break is left to the decode loop's warning)."""
        im, total, i = self._im, 0.0, 0
        try:
            for i in range(getattr(im, "n_frames", 1)):
                im.seek(i)
                total += _frame_seconds(im)
                if total > self.max_duration:
                    raise MediaTooLargeError(
                        self.source, f"animation longer than the limit of {self.max_duration:g} s (max_duration)")
        except (OSError, EOFError, ValueError) as exc:
            if isinstance(exc, MediaError):
                raise
            if i == 0:
                raise CorruptMediaError(self.source, f"truncated or corrupt animation ({exc})") from None
            # a damaged tail: the decode loop keeps the frames before it and warns
        finally:
            im.seek(0)

    def _read(self) -> Iterator[Frame]:
        im, source = self._im, self.source
        sampler = Sampler(self.fps, self.max_duration, source)
        t = 0.0
        kept = 0
        try:
            for i in range(getattr(im, "n_frames", 1)):
                im.seek(i)
                duration = _frame_seconds(im)
                if sampler.want(t):
                    frame = to_rgb(im.convert("RGBA") if im.mode == "P" else im)
                    if frame is im:
                        frame = im.copy()  # the next seek would change it under the consumer's feet
                    frame.thumbnail((FRAME_MAX_SIDE, FRAME_MAX_SIDE))
                    kept += 1
                    yield Frame(frame, round(t, 3))
                t += duration
        except (OSError, EOFError, ValueError) as exc:
            if isinstance(exc, MediaError):
                raise
            if kept == 0:
                raise CorruptMediaError(source, f"truncated or corrupt animation ({exc})") from None
            self.warnings.append(f"the animation is damaged after {t:.1f} s ({exc}); kept the {kept} frames before")
        finally:
            if self._close:
                im.close()
        self.duration = round(t, 3)


def open_pillow(im: Image.Image, source: str, options: MediaOptions, *, owned: bool) -> MediaStream:
    """A still image, or an animated GIF / WebP as a video. ``owned``: close ``im`` when done."""
    if is_animation(im):
        try:
            with pillow_errors(source):
                check_pixels(source, im.size, options.max_pixels)
                stream = AnimationStream(im, source, options, close=owned)
                stream.check_length()
        except MediaError:
            if owned:
                im.close()
            raise
        return stream
    try:
        with pillow_errors(source):
            return ImageStream(source, decode_still(im, source, options.max_pixels))
    finally:
        if owned:
            im.close()
