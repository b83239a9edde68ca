"""Frames to query vectors: batching, and the quarter-turn variants a query searches.

Shared by :class:`~vecsim.CustomIndex` and the benchmarks (:mod:`vecsim.bench`), so that a
benchmark's cached query vectors are made exactly as ``query`` makes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from . import timing
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


class FrameData(NamedTuple):
    """One sampled frame as ``add`` stores it: its second, vector, PDQ hash, packed local features."""

    timestamp: float
    vector: np.ndarray
    pdq: str
    local: bytes = b""


def embed_stream(descriptor: Descriptor, frames: Iterable[Any], batch_size: int, local: bool) -> Iterator[FrameData]:
    """What ``add`` stores of decoded frames (``Frame``: ``image``, ``timestamp``), in batches of
    ``batch_size``: the descriptor's vector, the PDQ hash and (with ``local``, where the collection
    keeps them) the packed local features, else ``b""``. Lazy: memory holds one batch, so it does
    not grow with a video's length. Decoding and embedding are timed as the ``decode`` and
    ``embed`` stages (:mod:`vecsim.timing`)."""
    for batch in timing.timed_iter(batched(frames, batch_size), "decode"):
        images = [f.image for f in batch]
        with timing.stage("embed"):
            features = [local_desc.extract(im) for im in images] if local else [b""] * len(images)
            vectors, hashes = descriptor.embed(images), pdq_hashes(images)
        yield from (FrameData(f.timestamp, v, h, b) for f, v, h, b in zip(batch, vectors, hashes, features))


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
