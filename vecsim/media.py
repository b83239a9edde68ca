"""Media input: turn whatever the caller hands us into decoded frames.

Accepted inputs (``MediaInput``): a path (``str`` / ``os.PathLike``), raw ``bytes``, a binary
file object, or a ``PIL.Image.Image``. Directories are expanded by :func:`expand_sources`.

An image is a video of one frame at ``t = 0``. Every failure is a typed
:class:`~vecsim.errors.MediaError` naming the input and the reason; decompression bombs are
refused from the header, before any pixel is decoded.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import (
    CorruptMediaError,
    EmptyMediaError,
    MediaError,
    MediaNotFoundError,
    MediaTooLargeError,
    UnsupportedMediaError,
)

MediaInput = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, Image.Image]

#: File extensions picked up when a directory is expanded.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
#: Formats Pillow may identify that we accept (Pillow reads more; we keep to what we test).
IMAGE_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "DIB", "TIFF"})

DEFAULT_MAX_PIXELS = 64_000_000
#: Colour that transparent pixels are composited on.
ALPHA_BACKGROUND = (255, 255, 255)


@dataclass(frozen=True)
class Frame:
    """One decoded frame: RGB pixels and where it sits in time."""

    image: Image.Image  # mode "RGB"
    timestamp: float  # seconds from the start of the media


@dataclass(frozen=True)
class DecodedMedia:
    source: str  # how the input is named in results and errors
    media_type: str  # "image" (videos arrive with issue 3)
    frames: list[Frame]


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


def expand_sources(items: Iterable[MediaInput] | MediaInput) -> list[MediaInput]:
    """Expand directories (recursively, sorted, image extensions only) and keep other inputs."""
    if isinstance(items, (str, os.PathLike, bytes, bytearray, memoryview, Image.Image)) or hasattr(
        items, "read"
    ):
        items = [items]  # type: ignore[list-item]
    out: list[MediaInput] = []
    for item in items:  # type: ignore[union-attr]
        if isinstance(item, (str, os.PathLike)) and Path(item).is_dir():
            found = sorted(
                p for p in Path(item).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
            out.extend(str(p) for p in found)
        else:
            out.append(item)
    return out


def _read_bytes(media: MediaInput, source: str) -> bytes:
    if isinstance(media, (str, os.PathLike)):
        path = Path(media)
        if not path.exists():
            raise MediaNotFoundError(source, "no such file")
        if path.is_dir():
            raise UnsupportedMediaError(source, "is a directory (use add_many to add a folder)")
        return path.read_bytes()
    if isinstance(media, (bytes, bytearray, memoryview)):
        return bytes(media)
    if hasattr(media, "read"):
        data = media.read()
        if not isinstance(data, (bytes, bytearray)):
            raise UnsupportedMediaError(source, "file object is not opened in binary mode")
        return bytes(data)
    raise UnsupportedMediaError(source, f"cannot read media from a {type(media).__name__}")


def _to_rgb(im: Image.Image) -> Image.Image:
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


def decode_image(media: MediaInput, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedMedia:
    """Decode one image input into a one-frame :class:`DecodedMedia`.

    Raises a :class:`~vecsim.errors.MediaError` subclass on any bad input.
    """
    source = describe(media)
    if isinstance(media, Image.Image):
        _check_pixels(source, media.size, max_pixels)
        return DecodedMedia(source, "image", [Frame(_to_rgb(ImageOps.exif_transpose(media)), 0.0)])

    data = _read_bytes(media, source)
    if not data:
        raise EmptyMediaError(source, "zero bytes")
    try:
        # Image.open reads only the header; the pixel check happens before load().
        with Image.open(io.BytesIO(data)) as im:
            if im.format not in IMAGE_FORMATS:
                raise UnsupportedMediaError(source, f"unsupported image format {im.format}")
            _check_pixels(source, im.size, max_pixels)
            im.seek(0)  # GIF / multi-page TIFF: the first frame
            im.load()
            frame = _to_rgb(ImageOps.exif_transpose(im))
    except MediaError:
        raise
    except UnidentifiedImageError:
        raise UnsupportedMediaError(source, "not an image (unrecognised format)") from None
    except Image.DecompressionBombError as exc:
        raise MediaTooLargeError(source, f"refused as a decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptMediaError(source, f"truncated or corrupt image ({exc})") from None
    return DecodedMedia(source, "image", [Frame(frame, 0.0)])


def _check_pixels(source: str, size: tuple[int, int], max_pixels: int) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise CorruptMediaError(source, f"invalid image size {w}x{h}")
    if w * h > max_pixels:
        raise MediaTooLargeError(
            source, f"{w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,} (max_pixels)"
        )


def decode(media: MediaInput, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedMedia:
    """Decode any supported input. Today: images; videos arrive with the video pipeline."""
    return decode_image(media, max_pixels=max_pixels)


def iter_decoded(
    items: Iterable[MediaInput], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Iterator[tuple[MediaInput, DecodedMedia | Exception]]:
    """Decode inputs one by one, yielding the decoded media or the MediaError it raised."""
    for item in items:
        try:
            yield item, decode(item, max_pixels=max_pixels)
        except MediaError as exc:
            yield item, exc
