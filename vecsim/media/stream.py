"""The typed reader every input becomes: :class:`MediaStream`, and the :class:`Sampler` that
picks video frames by presentation time.

A stream is iterated once; it yields :class:`~vecsim.media.frame.Frame` objects as they decode
and owns its own state: ``frame_count``, ``warnings`` and (for a video) ``duration`` are filled
in by the decode loop itself and are complete once the iteration has ended. Nothing outside the
reader is mutated while it runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from ..errors import InvalidRequestError, MediaTooLargeError
from .frame import Frame

_EPS = 1e-6


class MediaStream:
    """An opened input, iterable (once) over its :class:`Frame` objects as they decode.

    Known when opened: ``source`` (how the input is named in results and errors), ``media_type``
    (``"image"`` or ``"video"``), ``width``, ``height``, ``codec``, ``frame_rate`` (None where the
    container does not say). Complete once the frames were read: ``duration`` (seconds; 0 for an
    image, ``None`` for a video until it was read to the end), ``frame_count`` (frames yielded)
    and ``warnings`` (e.g. frames lost to a damaged stream). Errors found while decoding are
    raised from the iteration.
    """

    media_type: str = "video"

    def __init__(self, source: str, *, width: int | None = None, height: int | None = None,
                 codec: str | None = None, frame_rate: float | None = None):
        self.source = source
        self.width, self.height, self.codec, self.frame_rate = width, height, codec, frame_rate
        self.duration: float | None = 0.0 if self.media_type == "image" else None
        self.frame_count = 0
        self.warnings: list[str] = []
        self._iterator: Iterator[Frame] | None = None

    def _read(self) -> Iterator[Frame]:
        """The decode loop of a reader: yields frames, then sets its own ``duration``."""
        raise NotImplementedError

    def _count(self) -> Iterator[Frame]:
        for frame in self._read():
            self.frame_count += 1
            yield frame

    @property
    def frames(self) -> Iterator[Frame]:
        """The frames, as a one-shot iterator (the same one ``iter(stream)`` gives)."""
        if self._iterator is None:
            self._iterator = self._count()
        return self._iterator

    def __iter__(self) -> Iterator[Frame]:
        return self.frames

    def read_all(self) -> list[Frame]:
        return list(self.frames)

    @property
    def info(self) -> dict[str, Any]:
        """The stream's description as a dict (``codec``, ``width``, ``height``, ``frame_rate``,
        ``duration``): the typed attributes, for callers of the former dict."""
        return {"codec": self.codec, "width": self.width, "height": self.height,
                "frame_rate": self.frame_rate, "duration": self.duration}

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.source!r} {self.media_type} {self.width}x{self.height} "
                f"codec={self.codec} duration={self.duration} frames={self.frame_count}>")


class Sampler:
    """Decides which frames to keep: the first at or after each ``k / fps``."""

    def __init__(self, fps: float, max_duration: float, source: str):
        if fps <= 0:
            raise InvalidRequestError(f"fps must be positive, got {fps}")
        self.fps, self.max_duration, self.source = fps, max_duration, source
        self.next_t = 0.0
        self.last_t: float | None = None

    def needs(self, t: float) -> bool:
        """Would a frame at ``t`` be kept? (No state change.)"""
        return t >= self.next_t - _EPS

    def want(self, t: float) -> bool:
        if t > self.max_duration:
            raise MediaTooLargeError(
                self.source, f"longer than the limit of {self.max_duration:g} s (max_duration)"
            )
        self.last_t = t if self.last_t is None else max(self.last_t, t)
        if t < self.next_t - _EPS:
            return False
        self.next_t = (math.floor(t * self.fps + _EPS) + 1) / self.fps
        return True
