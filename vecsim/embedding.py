"""Frames to query vectors: batching, and the quarter-turn variants a query searches.

Shared by :class:`~vecsim.CustomIndex` and the benchmarks (:mod:`vecsim.bench`), so that a
benchmark's cached query vectors are made exactly as ``query`` makes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from PIL import Image

from .descriptors import Descriptor
from .descriptors import local as local_desc
from .descriptors.pdq import pdq_hashes

#: The extra query variants of ``query(..., rotations=True)``: a quarter turn left, and right.
QUARTER_TURNS = (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270)


def embed_variants(descriptor: Descriptor, images: list[Image.Image], rotations: bool) -> list[np.ndarray]:
    """The query vectors of a batch of frames: the frames as they are, then (with ``rotations``)
    each quarter turn of :data:`QUARTER_TURNS`; one ``(len(images), dim)`` array per variant."""
    if not rotations:
        return [descriptor.embed(images)]
    # one embed call for every variant: the model runs one batch, not one per variant
    vectors = descriptor.embed([*images, *(im.transpose(turn) for turn in QUARTER_TURNS for im in images)])
    n = len(images)
    return [vectors[i * n : (i + 1) * n] for i in range(1 + len(QUARTER_TURNS))]


def embed_frames(descriptor: Descriptor, images: list[Image.Image], local: bool) -> tuple[np.ndarray, list[str], list[bytes]]:
    """What ``add`` stores of a batch of frames: the descriptor's vectors, the PDQ hashes and (with
    ``local``, where the collection keeps them) the packed local features, else ``b""`` each."""
    features = [local_desc.extract(im) for im in images] if local else [b""] * len(images)
    return descriptor.embed(images), pdq_hashes(images), features


def batched(items: Iterable[Any], n: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``n`` (the last one shorter), lazily: memory holds one batch."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch
