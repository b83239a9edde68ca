"""How media is read: one frozen :class:`MediaOptions`, validated when it is made.

Every caller (``CustomIndex``, ``AsyncCustomIndex``, the CLI, the bench) takes its defaults from
here, so a default lives in one place. Limits that the readers enforce from these options
(:func:`check_pixels`) live here too.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import CorruptMediaError, InvalidRequestError, MediaTooLargeError
from .fetch import UrlPolicy

DEFAULT_FPS = 1.0
DEFAULT_MAX_DURATION = 4 * 3600.0
DEFAULT_MAX_PIXELS = 64_000_000
#: Largest PDQ distance (bits) that ``dedupe_distance`` may be.
MAX_DEDUPE_DISTANCE = 256


@dataclass(frozen=True)
class MediaOptions:
    """How media is decoded and sampled.

    - ``fps``: video frames sampled per second, by presentation time;
    - ``max_duration``: longest video accepted (seconds); a longer one is refused with
      :class:`~vecsim.errors.MediaTooLargeError`;
    - ``max_pixels``: largest image / video frame (width x height), checked from the header
      before any pixel is decoded (decompression bombs);
    - ``dedupe_distance``: when adding, a frame within this many PDQ bits of the previous kept
      frame is not stored (the kept frame covers its time); ``None`` keeps every sampled frame;
    - ``url_policy``: how URL inputs are fetched (:class:`~vecsim.media.fetch.UrlPolicy`: which
      addresses may be reached, redirects, bytes, time-outs). The default,
      ``UrlPolicy.permissive()``, checks no address (a library user fetches what they ask for);
      a service fetching URLs its users name passes ``UrlPolicy.strict()``.

    A bad value raises :class:`~vecsim.errors.InvalidRequestError` naming the field.
    ``options.replace(fps=2)`` gives a copy with some fields changed (validated again).
    """

    fps: float = DEFAULT_FPS
    max_duration: float = DEFAULT_MAX_DURATION
    max_pixels: int = DEFAULT_MAX_PIXELS
    dedupe_distance: int | None = None
    url_policy: UrlPolicy = field(default_factory=UrlPolicy.permissive)

    def __post_init__(self) -> None:
        fps = _number("fps", self.fps)
        if not (math.isfinite(fps) and fps > 0):
            raise InvalidRequestError(f"fps must be positive, got {self.fps}")
        max_duration = _number("max_duration", self.max_duration)
        if not max_duration > 0:  # inf is allowed: no limit
            raise InvalidRequestError(f"max_duration must be positive (seconds), got {self.max_duration}")
        max_pixels = _integer("max_pixels", self.max_pixels)
        if max_pixels < 1:
            raise InvalidRequestError(f"max_pixels must be at least 1, got {self.max_pixels}")
        dedupe = self.dedupe_distance
        if dedupe is not None:
            dedupe = _integer("dedupe_distance", dedupe)
            if not 0 <= dedupe <= MAX_DEDUPE_DISTANCE:
                raise InvalidRequestError(
                    f"dedupe_distance must be in 0..{MAX_DEDUPE_DISTANCE} PDQ bits, got {self.dedupe_distance}")
        if not isinstance(self.url_policy, UrlPolicy):
            raise InvalidRequestError(f"url_policy must be a UrlPolicy, got {type(self.url_policy).__name__}")
        object.__setattr__(self, "fps", fps)
        object.__setattr__(self, "max_duration", max_duration)
        object.__setattr__(self, "max_pixels", max_pixels)
        object.__setattr__(self, "dedupe_distance", dedupe)

    def replace(self, **changes: Any) -> MediaOptions:
        """A copy with ``changes`` applied; a ``None`` change keeps the current value (except
        ``dedupe_distance``, where ``None`` means "keep every frame")."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise InvalidRequestError(f"unknown media option(s): {', '.join(sorted(unknown))}")
        changes = {k: v for k, v in changes.items() if v is not None or k == "dedupe_distance"}
        return dataclasses.replace(self, **changes) if changes else self


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequestError(f"{name} must be a number, got {value!r}")
    if math.isnan(value):
        raise InvalidRequestError(f"{name} must be a number, got {value!r}")
    return float(value)


def _integer(name: str, value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(f"{name} must be an integer, got {value!r}")
    return int(value)


def check_pixels(source: str, size: tuple[int, int], max_pixels: int) -> None:
    """Refuse a frame size that is invalid or over ``max_pixels`` (from the header, before decoding)."""
    w, h = size
    if w <= 0 or h <= 0:
        raise CorruptMediaError(source, f"invalid image size {w}x{h}")
    if w * h > max_pixels:
        raise MediaTooLargeError(
            source, f"{w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,} (max_pixels)"
        )
