"""The descriptor protocol: what every embedding model offers the rest of vecsim."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from ..calibration import Calibration


@runtime_checkable
class Descriptor(Protocol):
    """A frame embedding for copy detection.

    ``name`` and ``version`` identify the vector space: two descriptors with the same pair give
    comparable vectors. ``embed`` takes RGB images and returns an ``(n, dim)`` float32 array of
    L2-normalised rows. ``calibration`` maps this descriptor's cosine to a 0..1 score.
    """

    name: str
    version: str
    dim: int
    calibration: Calibration

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray: ...


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def default_threads() -> int:
    """Torch threads: ``VECSIM_THREADS`` if set, else the CPUs this process may use (at most 8)."""
    env = os.environ.get("VECSIM_THREADS")
    if env:
        return max(1, int(env))
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))
