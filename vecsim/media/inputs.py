"""Input kinds: what a caller may hand over (:data:`MediaInput`), how it is named in results
and errors (:func:`describe`), folders expanded to files, and URLs downloaded.

Accepted inputs: a path (``str`` / ``os.PathLike``), an ``http(s)://`` URL (fetched into a
temporary file, at most ``max_bytes``, within :data:`URL_DEADLINE_S`), raw ``bytes``, a binary
file object, or a ``PIL.Image.Image``. Directories are expanded by :func:`expand_sources`.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, Union

from PIL import Image

from ..errors import EmptyMediaError, MediaFetchError, MediaNotFoundError, MediaTooLargeError, UnsupportedMediaError

MediaInput = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, Image.Image]

#: File extensions picked up when a directory is expanded.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".m2ts", ".mts",
                              ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ogv"})
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS

#: Largest download for a URL input.
DEFAULT_MAX_BYTES = 2 * 1024**3
#: How long to wait for the server on each connect / read ...
URL_TIMEOUT_S = 30.0
#: ... and for the whole download: a server that trickles bytes cannot hold an add forever.
URL_DEADLINE_S = 120.0
#: Bytes asked for per read of a download.
_CHUNK = 1 << 20


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


def _text_mode(fileobj) -> bool:
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
    if hasattr(media, "read") and _text_mode(media):
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


def download(url: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """Fetch ``url`` into a temporary file (``vecsim-url-*``) and return its path; the caller
    deletes it. Every failure is a typed error naming the URL, and no temporary file is left.

    - redirects are followed only to ``http(s)://`` (never ``file://``, ``ftp://``, ...);
    - an HTML page (``Content-Type: text/html``) is :class:`UnsupportedMediaError`;
    - a ``Content-Length`` that is not a number is ignored (the byte limit is enforced while
      reading); one over ``max_bytes`` is refused before reading; a body shorter than its
      ``Content-Length`` is :class:`MediaFetchError`; one longer is read only up to it (HTTP
      says the rest is not part of the response), and a cut image or video then fails to decode;
    - the whole download must end within :data:`URL_DEADLINE_S` seconds (each socket read
      within :data:`URL_TIMEOUT_S`), else :class:`MediaFetchError`.
    """
    import http.client
    import tempfile
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + URL_DEADLINE_S
    opener = urllib.request.build_opener(_HttpOnlyRedirects(url))
    fd, tmp = tempfile.mkstemp(prefix="vecsim-url-")
    try:
        with os.fdopen(fd, "wb") as out, opener.open(url, timeout=min(URL_TIMEOUT_S, URL_DEADLINE_S)) as resp:
            kind = (resp.headers.get_content_type() or "").lower()
            if kind in ("text/html", "application/xhtml+xml"):
                raise UnsupportedMediaError(url, f"the server sent an HTML page ({kind}), not an image or a video")
            length = _content_length(resp.headers.get("Content-Length"))
            if length is not None and length > max_bytes:
                raise MediaTooLargeError(url, f"{length:,} bytes is over the download limit of {max_bytes:,}")
            sock = _socket_of(resp)
            total = 0
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise MediaFetchError(url, f"download not finished within {URL_DEADLINE_S:g} s "
                                               f"({total:,} bytes received)")
                if sock is not None:
                    sock.settimeout(min(URL_TIMEOUT_S, left))
                chunk = resp.read1(_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise MediaTooLargeError(url, f"more than the download limit of {max_bytes:,} bytes")
                out.write(chunk)
            if length is not None and total < length:
                raise MediaFetchError(url, f"the connection closed after {total:,} of {length:,} bytes")
    except BaseException as exc:
        os.unlink(tmp)
        if isinstance(exc, (MediaFetchError, MediaTooLargeError, UnsupportedMediaError)):
            raise
        if isinstance(exc, urllib.error.HTTPError):
            error = MediaNotFoundError if exc.code in (404, 410) else MediaFetchError
            raise error(url, f"HTTP {exc.code} {exc.reason}") from None
        if isinstance(exc, http.client.IncompleteRead):
            raise MediaFetchError(url, f"the connection closed early ({len(exc.partial):,} bytes received, "
                                       f"{exc.expected:,} more expected)") from None
        if isinstance(exc, (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError, ValueError)):
            if isinstance(exc, TimeoutError) and time.monotonic() >= deadline:
                raise MediaFetchError(url, f"download not finished within {URL_DEADLINE_S:g} s") from None
            raise MediaFetchError(url, f"cannot fetch: {getattr(exc, 'reason', exc)}") from None
        raise
    return tmp


def _content_length(value: str | None) -> int | None:
    """The ``Content-Length`` header as a number, or None when absent or not a number."""
    try:
        length = int(value) if value is not None else None
    except ValueError:
        return None
    return length if length is not None and length >= 0 else None


def _socket_of(resp):
    """The socket under an HTTP response (to bound each read by the deadline), where reachable."""
    raw = getattr(getattr(resp, "fp", None), "raw", None)
    sock = getattr(raw, "_sock", None)
    return sock if hasattr(sock, "settimeout") else None


def _HttpOnlyRedirects(url: str):
    import urllib.request

    import urllib.parse

    class HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
        """Follow a redirect only to another http(s) URL (urllib would also follow ``ftp://``)."""

        def http_error_302(self, req, fp, code, msg, headers):
            target = headers.get("location") or headers.get("uri")
            if target:
                target = urllib.parse.urljoin(req.full_url, target)
                if urllib.parse.urlparse(target).scheme.lower() not in ("http", "https"):
                    fp.close()
                    raise MediaFetchError(url, f"redirected to {target!r}, which is not an http(s) URL: refused")
            return super().http_error_302(req, fp, code, msg, headers)

        http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    return HttpOnlyRedirects()
