"""Frame descriptors: the robust embedding (by name) and the PDQ exact-match hash."""

from __future__ import annotations

from typing import Any

from .base import Descriptor, l2_normalise
from .efficientnet import EfficientNetGeM

DEFAULT_DESCRIPTOR = EfficientNetGeM.name
_BUILTIN = {EfficientNetGeM.name: EfficientNetGeM}


def load_descriptor(spec: str | Descriptor | None = None, **options: Any) -> Descriptor:
    """A descriptor by name (``None`` = the default), or the given object if it implements
    :class:`Descriptor`. ``options`` go to a named descriptor's constructor (``threads``,
    ``calibration``). Weights load lazily, on the first ``embed``."""
    if spec is None:
        spec = DEFAULT_DESCRIPTOR
    if not isinstance(spec, str):
        if not isinstance(spec, Descriptor):
            raise TypeError(f"{spec!r} does not implement the Descriptor protocol (name, version, dim, calibration, embed)")
        return spec
    try:
        factory = _BUILTIN[spec]
    except KeyError:
        raise ValueError(f"unknown descriptor {spec!r}; available: {', '.join(sorted(_BUILTIN))}") from None
    return factory(**options)


__all__ = ["DEFAULT_DESCRIPTOR", "Descriptor", "EfficientNetGeM", "l2_normalise", "load_descriptor"]
