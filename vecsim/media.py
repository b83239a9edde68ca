"""Media input: turn whatever the caller hands us into a stream of decoded frames.

Accepted inputs (``MediaInput``): a path (``str`` / ``os.PathLike``), an ``http(s)://`` URL
(fetched into a temporary file, at most ``max_bytes``), raw ``bytes``, a binary file object, or a
``PIL.Image.Image``. Directories are expanded by :func:`expand_sources`.

:func:`open_media` tells images from videos by content, not by file name: Pillow identifies
images (JPEG, PNG, WebP, GIF, BMP, TIFF); an animated GIF or WebP is a video; anything else is
handed to PyAV (:mod:`vecsim.video`). An image is a video of one frame at ``t = 0``. Every
failure is a typed :class:`~vecsim.errors.MediaError` naming the input and the reason;
decompression bombs are refused from the header, before any pixel is decoded.
"""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import (
    CorruptMediaError,
    EmptyMediaError,
    MediaError,
    MediaFetchError,
    MediaNotFoundError,
    MediaTooLargeError,
    UnsupportedMediaError,
)

MediaInput = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, Image.Image]

#: File extensions picked up when a directory is expanded.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".m2ts", ".mts",
                              ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ogv"})
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
#: Formats Pillow may identify that we accept (Pillow reads more; we keep to what we test).
IMAGE_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "DIB", "TIFF"})

DEFAULT_MAX_PIXELS = 64_000_000
#: Largest download for a URL input, and how long to wait for its server.
DEFAULT_MAX_BYTES = 2 * 1024**3
URL_TIMEOUT_S = 30.0
#: Colour that transparent pixels are composited on.
ALPHA_BACKGROUND = (255, 255, 255)


@dataclass(frozen=True)
class Frame:
    """One decoded frame: RGB pixels and where it sits in time."""

    image: Image.Image  # mode "RGB"
    timestamp: float  # seconds from the start of the media


@dataclass
class MediaStream:
    """An opened input: its frames come out of ``frames`` (a one-shot iterator) as they decode."""

    source: str  # how the input is named in results and errors
    media_type: str  # "image" or "video"
    frames: Iterator[Frame]
    warnings: list[str] = field(default_factory=list)  # e.g. frames lost to a damaged stream
    info: dict = field(default_factory=dict)  # codec, width, height, frame_rate; duration once read

    @property
    def duration(self) -> float | None:
        """Seconds; for a video, known once its frames have been read."""
        return 0.0 if self.media_type == "image" else self.info.get("duration")

    def read_all(self) -> list[Frame]:
        return list(self.frames)


def describe(media: MediaInput) -> str:
    """A short, human name for an input, used in errors and results."""
    if isinstance(media, (str, os.PathLike)):
        return os.fspath(media)
    if isinstance(media, (bytes, bytearray, memoryview)):
        return f"<bytes: {len(media)}>"
    if isinstance(media, Image.Image):
        name = getattr(media, "filename", "") or ""
        return name or f"<PIL.Image {media.mode} {media.width}x{media.height}>"
    name = getattr(media, "name", None)
    return name if isinstance(name, str) else f"<{type(media).__name__}>"


def files_under(folder: str | os.PathLike, extensions: frozenset[str]) -> list[Path]:
    """Every file under ``folder`` (recursively, sorted) whose lower-cased extension is one of
    ``extensions`` (e.g. :data:`IMAGE_EXTENSIONS`)."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in extensions)


def expand_sources(items: Iterable[MediaInput] | MediaInput) -> list[MediaInput]:
    """Expand directories (recursively, sorted, image and video extensions) and keep other inputs."""
    if isinstance(items, (str, os.PathLike, bytes, bytearray, memoryview, Image.Image)) or hasattr(
        items, "read"
    ):
        items = [items]  # type: ignore[list-item]
    out: list[MediaInput] = []
    for item in items:  # type: ignore[union-attr]
        if isinstance(item, (str, os.PathLike)) and Path(item).is_dir():
            out.extend(str(p) for p in files_under(item, MEDIA_EXTENSIONS))
        else:
            out.append(item)
    return out


def _read_bytes(media: MediaInput, source: str) -> bytes:
    """The bytes of an in-memory input or of a file object that cannot seek."""
    if isinstance(media, (bytes, bytearray, memoryview)):
        return bytes(media)
    if hasattr(media, "read"):
        data = media.read()
        if not isinstance(data, (bytes, bytearray)):
            raise UnsupportedMediaError(source, "file object is not opened in binary mode")
        return bytes(data)
    raise UnsupportedMediaError(source, f"cannot read media from a {type(media).__name__}")


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, the way a viewer would show it."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im).astype(np.float64)
        top = 65535.0 if (im.mode.startswith("I;16") or arr.max(initial=0) > 255) else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min(initial=0)), float(arr.max(initial=1))
        arr = (arr - lo) / (hi - lo or 1.0) * 255.0
        return Image.fromarray(arr.astype(np.uint8), "L").convert("RGB")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBa", "La"):
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, ALPHA_BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if im.mode == "CMYK":
        return _cmyk_to_rgb(im)
    return im.convert("RGB")


def _cmyk_to_rgb(im: Image.Image) -> Image.Image:
    icc = im.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            return ImageCms.profileToProfile(im, src, dst, outputMode="RGB")
        except Exception:  # a broken profile: fall back to the plain formula below
            pass
    return im.convert("RGB")


def _decode_still(im: Image.Image, source: str, max_pixels: int) -> Frame:
    _check_pixels(source, im.size, max_pixels)
    im.seek(0)  # GIF / multi-page TIFF: the first frame
    im.load()
    return Frame(to_rgb(ImageOps.exif_transpose(im)), 0.0)


def _image_stream(source: str, frame: Frame) -> MediaStream:
    return MediaStream(source, "image", iter([frame]), info={"width": frame.image.width, "height": frame.image.height})


def _is_animation(im: Image.Image) -> bool:
    return im.format in ("GIF", "WEBP") and getattr(im, "n_frames", 1) > 1


@contextmanager
def _pillow_errors(source: str) -> Iterator[None]:
    """Turn Pillow's exceptions into typed media errors naming the input."""
    try:
        yield
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaTooLargeError(source, f"refused as a decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptMediaError(source, f"truncated or corrupt image ({exc})") from None


def _identify(target) -> Image.Image | None:
    """Pillow's reading of the header, or None when Pillow does not know the format."""
    try:
        return Image.open(target)
    except UnidentifiedImageError:
        return None


def _pillow_stream(im: Image.Image, source: str, max_pixels: int, fps: float, max_duration: float,
                   *, owned: bool) -> MediaStream:
    """A still image, or an animated GIF / WebP as a video. ``owned``: close ``im`` when done."""
    from . import video

    if _is_animation(im):
        _check_pixels(source, im.size, max_pixels)
        return _video_stream(source, video.iter_animation_frames, im, fps, max_duration, close=owned)
    try:
        with _pillow_errors(source):
            return _image_stream(source, _decode_still(im, source, max_pixels))
    finally:
        if owned:
            im.close()


def open_media(
    media: MediaInput,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    fps: float | None = None,
    max_duration: float | None = None,
) -> MediaStream:
    """Open any supported input. Images decode at once; videos decode lazily, frame by frame,
    as ``frames`` is iterated (errors found then are raised then)."""
    from . import video

    fps = fps or video.DEFAULT_FPS
    max_duration = max_duration or video.DEFAULT_MAX_DURATION
    source = describe(media)
    if is_url(media):
        return _open_url(str(media), max_pixels=max_pixels, fps=fps, max_duration=max_duration)
    if isinstance(media, Image.Image):
        return _pillow_stream(media, source, max_pixels, fps, max_duration, owned=False)

    target = _open_target(media, source)
    with _pillow_errors(source):
        im = _identify(target)
    if im is not None and im.format in IMAGE_FORMATS:
        return _pillow_stream(im, source, max_pixels, fps, max_duration, owned=True)
    if im is not None:
        im.close()
    if hasattr(target, "seek"):
        target.seek(0)
    container = video.open_container(target, source)
    stream = container.streams.video[0]
    try:
        _check_pixels(source, (stream.codec_context.width or 1, stream.codec_context.height or 1), max_pixels)
    except MediaError:
        container.close()
        raise
    video.check_duration(container, source, max_duration)
    return _video_stream(source, video.iter_av_frames, container, fps, max_duration)


def is_url(media: MediaInput) -> bool:
    return isinstance(media, str) and media.lower().startswith(("http://", "https://"))


def _open_url(url: str, *, max_bytes: int = DEFAULT_MAX_BYTES, **options) -> MediaStream:
    """Fetch a URL into a temporary file and open that; the file is deleted once the frames are read."""
    import tempfile
    import urllib.error
    import urllib.request

    fd, tmp = tempfile.mkstemp(prefix="vecsim-url-")
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as resp:
                length = resp.headers.get("Content-Length")
                if length and int(length) > max_bytes:
                    raise MediaTooLargeError(url, f"{int(length):,} bytes is over the download limit of {max_bytes:,}")
                total = 0
                while chunk := resp.read(1 << 20):
                    total += len(chunk)
                    if total > max_bytes:
                        raise MediaTooLargeError(url, f"more than the download limit of {max_bytes:,} bytes")
                    out.write(chunk)
        except urllib.error.HTTPError as exc:
            error = MediaNotFoundError if exc.code in (404, 410) else MediaFetchError
            raise error(url, f"HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise MediaFetchError(url, f"cannot fetch: {getattr(exc, 'reason', exc)}") from None
        stream = open_media(tmp, **options)
    except MediaError as exc:
        os.unlink(tmp)
        raise type(exc)(url, exc.reason) from None  # name the URL, not the temporary file
    except BaseException:
        os.unlink(tmp)
        raise
    stream.source = url
    stream.frames = _then_delete(stream.frames, tmp, url)
    return stream


def _then_delete(frames: Iterator[Frame], path: str, url: str) -> Iterator[Frame]:
    try:
        yield from frames
    except MediaError as exc:
        raise type(exc)(url, exc.reason) from None
    finally:
        if os.path.exists(path):
            os.unlink(path)


def _video_stream(source: str, reader, handle, fps: float, max_duration: float, **options) -> MediaStream:
    warnings: list[str] = []
    info: dict = {"fps": fps}
    frames = reader(handle, source, fps, max_duration, warnings, info, **options)
    return MediaStream(source, "video", frames, warnings, info)


def _open_target(media: MediaInput, source: str):
    """A seekable binary source for Pillow and PyAV: a path, or bytes in a BytesIO."""
    if isinstance(media, (str, os.PathLike)):
        path = Path(media)
        if not path.exists():
            raise MediaNotFoundError(source, "no such file")
        if path.is_dir():
            raise UnsupportedMediaError(source, "is a directory (use add_many to add a folder)")
        if path.stat().st_size == 0:
            raise EmptyMediaError(source, "zero bytes")
        return str(path)
    if hasattr(media, "read") and hasattr(media, "seek") and getattr(media, "seekable", lambda: False)():
        start = media.tell()
        media.seek(0, io.SEEK_END)
        empty = media.tell() == start
        media.seek(start)
        if empty:
            raise EmptyMediaError(source, "zero bytes")
        return media
    data = _read_bytes(media, source)
    if not data:
        raise EmptyMediaError(source, "zero bytes")
    return io.BytesIO(data)


def decode_image(media: MediaInput, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> MediaStream:
    """Open an input that must be a still image (raises UnsupportedMediaError for a video)."""
    stream = open_media(media, max_pixels=max_pixels)
    if stream.media_type != "image":
        raise UnsupportedMediaError(stream.source, "is a video, not an image")
    return stream


def _check_pixels(source: str, size: tuple[int, int], max_pixels: int) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise CorruptMediaError(source, f"invalid image size {w}x{h}")
    if w * h > max_pixels:
        raise MediaTooLargeError(
            source, f"{w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,} (max_pixels)"
        )
