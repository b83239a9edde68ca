"""Input kinds: what a caller may hand over (:data:`MediaInput`), how it is named in results
and errors (:func:`describe`), folders expanded to files, and URLs downloaded.

Accepted inputs: a path (``str`` / ``os.PathLike``), an ``http(s)://`` URL (fetched into a
temporary file under a :class:`~vecsim.media.fetch.UrlPolicy`), raw ``bytes``, a binary
file object, or a ``PIL.Image.Image``. Directories are expanded by :func:`expand_sources`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, Union

from PIL import Image

from ..errors import EmptyMediaError, MediaNotFoundError, UnsupportedMediaError
from .fetch import CHUNK as _CHUNK
# The default URL limits live with UrlPolicy; imported here too, where they always were.
from .fetch import DEFAULT_MAX_BYTES, URL_DEADLINE_S, URL_TIMEOUT_S, UrlPolicy, open_url  # noqa: F401

MediaInput = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, Image.Image]

#: File extensions picked up when a directory is expanded.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".m2ts", ".mts",
                              ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ogv"})
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS


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


def is_url(media: MediaInput) -> bool:
    return isinstance(media, str) and media.lower().startswith(("http://", "https://"))


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


def is_text_mode(fileobj) -> bool:
    """Is a file object opened in text mode? (``read(0)`` gives ``str`` then, and reads nothing.)"""
    if isinstance(fileobj, io.TextIOBase):
        return True
    try:
        return isinstance(fileobj.read(0), str)
    except Exception:  # a reader that cannot read 0 bytes: let the real read tell
        return False


def read_bytes(media: MediaInput, source: str) -> bytes:
    """The bytes of an in-memory input or of a file object that cannot seek."""
    if isinstance(media, (bytes, bytearray, memoryview)):
        return bytes(media)
    if hasattr(media, "read"):
        data = media.read()
        if not isinstance(data, (bytes, bytearray)):
            raise UnsupportedMediaError(source, "file object is not opened in binary mode (open it with 'rb')")
        return bytes(data)
    raise UnsupportedMediaError(source, f"cannot read media from a {type(media).__name__}")


def open_target(media: MediaInput, source: str):
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
    if hasattr(media, "read") and is_text_mode(media):
        raise UnsupportedMediaError(source, "file object is not opened in binary mode (open it with 'rb')")
    if hasattr(media, "read") and hasattr(media, "seek") and getattr(media, "seekable", lambda: False)():
        start = media.tell()
        media.seek(0, io.SEEK_END)
        empty = media.tell() == start
        media.seek(start)
        if empty:
            raise EmptyMediaError(source, "zero bytes")
        return media
    data = read_bytes(media, source)
    if not data:
        raise EmptyMediaError(source, "zero bytes")
    return io.BytesIO(data)


def download(url: str, *, max_bytes: int | None = None, policy: UrlPolicy | None = None) -> str:
    """Fetch ``url`` into a temporary file (``vecsim-url-*``) and return its path; the caller
    deletes it. Every failure is a typed error naming the URL, and no temporary file is left.

    ``policy`` (default :meth:`UrlPolicy.permissive`; :func:`~vecsim.media.open_media` passes
    ``MediaOptions.url_policy``) says which addresses may be reached and every limit;
    ``max_bytes``, when given, replaces the policy's. The fetch itself is
    :func:`vecsim.media.fetch.open_url`:

    - only ``http(s)://``, at the first hop and at every redirect (at most ``max_redirects``),
      each hop's host resolved, checked and connected to by address;
    - a ``Content-Length`` that is not a number is ignored (the byte limit is enforced while
      reading); one over ``max_bytes`` is refused before reading; a body shorter than its
      ``Content-Length`` is :class:`MediaFetchError`; one longer is read only up to it (HTTP
      says the rest is not part of the response), and a cut image or video then fails to decode;
    - each connect / read waits at most the policy's time-outs, the whole download its
      ``deadline``, else :class:`MediaFetchError`.

    An HTML page (``Content-Type: text/html``) is :class:`UnsupportedMediaError`.
    """
    import tempfile

    policy = policy or UrlPolicy.permissive()
    if max_bytes is not None:
        policy = policy.replace(max_bytes=max_bytes)
    fd, tmp = tempfile.mkstemp(prefix="vecsim-url-")
    try:
        with os.fdopen(fd, "wb") as out, open_url(url, policy) as resp:
            kind = resp.content_type
            if kind in ("text/html", "application/xhtml+xml"):
                raise UnsupportedMediaError(resp.source, f"the server sent an HTML page ({kind}), "
                                                         "not an image or a video")
            for chunk in resp.chunks(_CHUNK):
                out.write(chunk)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp
