"""The media stage: turn whatever the caller hands us into a stream of decoded frames.

Data flows one way, leaf first::

    frame    Frame, to_rgb (colour conversion)
    options  MediaOptions (fps, max_duration, max_pixels, dedupe_distance), check_pixels
    stream   MediaStream (the typed reader), Sampler (frames by presentation time)
    inputs   MediaInput, describe, is_url, files_under, expand_sources; URL download
    video    PyAV decoding
    image    Pillow decoding: stills, animated GIF / WebP
    here     open_media: inputs -> image or video reader

:func:`open_media` tells images from videos by content, not by file name: Pillow identifies
images (JPEG, PNG, WebP, GIF, BMP, TIFF); an animated GIF or WebP is a video; anything else is
handed to PyAV. An image is a video of one frame at ``t = 0``. Every failure is a typed
:class:`~vecsim.errors.MediaError` naming the input and the reason; decompression bombs are
refused from the header, before any pixel is decoded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from PIL import Image

from ..errors import MediaError, UnsupportedMediaError
from .frame import ALPHA_BACKGROUND, Frame, to_rgb
from .image import IMAGE_FORMATS, identify, open_pillow, pillow_errors
from .inputs import (
    DEFAULT_MAX_BYTES,
    IMAGE_EXTENSIONS,
    MEDIA_EXTENSIONS,
    URL_DEADLINE_S,
    URL_TIMEOUT_S,
    VIDEO_EXTENSIONS,
    MediaInput,
    describe,
    download,
    expand_sources,
    files_under,
    is_url,
    open_target,
)
from .options import DEFAULT_FPS, DEFAULT_MAX_DURATION, DEFAULT_MAX_PIXELS, MediaOptions
from .stream import MediaStream, Sampler
from .video import FRAME_MAX_SIDE, open_video

__all__ = [
    "ALPHA_BACKGROUND", "DEFAULT_FPS", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_DURATION", "DEFAULT_MAX_PIXELS",
    "FRAME_MAX_SIDE", "IMAGE_EXTENSIONS", "IMAGE_FORMATS", "MEDIA_EXTENSIONS", "URL_DEADLINE_S", "URL_TIMEOUT_S",
    "VIDEO_EXTENSIONS", "Frame", "MediaInput", "MediaOptions", "MediaStream", "Sampler", "decode_image",
    "describe", "download", "expand_sources", "files_under", "is_url", "open_media", "to_rgb",
]


def open_media(media: MediaInput, options: MediaOptions | None = None, **overrides: Any) -> MediaStream:
    """Open any supported input. Images decode at once; videos decode lazily, frame by frame,
    as the stream is iterated (errors found then are raised then).

    ``options`` (default :class:`MediaOptions()`) says how; keyword ``overrides`` change some of
    its fields (``fps=2``, ``max_pixels=...``; ``None`` keeps the option's value)."""
    options = (options or MediaOptions()).replace(**overrides)
    source = describe(media)
    if is_url(media):
        return _open_url(str(media), options)
    if isinstance(media, Image.Image):
        return open_pillow(media, source, options, owned=False)

    target = open_target(media, source)
    with pillow_errors(source):
        im = identify(target)
    if im is not None and im.format in IMAGE_FORMATS:
        return open_pillow(im, source, options, owned=True)
    if im is not None:
        im.close()
    if hasattr(target, "seek"):
        target.seek(0)
    return open_video(target, source, options)


def decode_image(media: MediaInput, options: MediaOptions | None = None, **overrides: Any) -> MediaStream:
    """Open an input that must be a still image (raises UnsupportedMediaError for a video)."""
    stream = open_media(media, options, **overrides)
    if stream.media_type != "image":
        raise UnsupportedMediaError(stream.source, "is a video, not an image")
    return stream


def _open_url(url: str, options: MediaOptions) -> MediaStream:
    """Fetch a URL into a temporary file and open that; the file is deleted once the frames are read."""
    tmp = download(url, policy=options.url_policy)
    try:
        inner = open_media(tmp, options)
    except MediaError as exc:
        os.unlink(tmp)
        raise type(exc)(url, exc.reason) from None  # name the URL, not the temporary file
    except BaseException:
        os.unlink(tmp)
        raise
    return _Downloaded(inner, url, tmp)


class _Downloaded(MediaStream):
    """The stream of a downloaded file, named by its URL; the file is deleted once read."""

    def __init__(self, inner: MediaStream, url: str, path: str):
        self.media_type = inner.media_type
        super().__init__(url, width=inner.width, height=inner.height, codec=inner.codec,
                         frame_rate=inner.frame_rate)
        self.duration = inner.duration
        self.warnings = inner.warnings  # the same list: complete when the inner reader is
        self._inner, self._path = inner, path

    def _read(self) -> Iterator[Frame]:
        try:
            yield from self._inner
        except MediaError as exc:
            raise type(exc)(self.source, exc.reason) from None
        finally:
            if os.path.exists(self._path):
                os.unlink(self._path)
        self.duration = self._inner.duration
