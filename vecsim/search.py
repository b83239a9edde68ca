"""The search-and-aggregate step of a query, over precomputed vectors and hashes.

:meth:`CustomIndex.query <vecsim.CustomIndex.query>` decodes and embeds the query, then calls
these two steps; the benchmarks (:mod:`vecsim.bench`) call the same two on cached query vectors,
so a benchmark measures exactly the query path:

1. :func:`search_frames`: each batch of query frames (:class:`QueryBatch`) searched in the store,
   the hits of a frame's variants merged (:func:`vecsim.aggregate.merge_hits`);
2. :func:`match_assets`: the hit assets' records read and the frames aggregated per asset
   (:func:`vecsim.aggregate.aggregate`).

Two steps, so that a caller can consume a stream of frames before it needs what only the end of
the stream tells (a video's duration).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from .aggregate import QueryFrame, aggregate, merge_hits
from .calibration import Calibration
from .descriptors.pdq import DihedralHash
from .schema import AssetMatch
from .store import AssetRecord, StoreReader

#: Assets fetched per query frame (at least): enough that one asset with many near-identical
#: frames cannot hide the others (the store returns the best frame of each asset).
CANDIDATES_PER_FRAME = 10
#: Frames fetched per asset and query frame: the temporal alignment picks the consistent one
#: (within a slow shot the best-looking second is often a neighbour of the true one).
FRAMES_PER_ASSET = 5


class QueryBatch(NamedTuple):
    """A batch of query frames ready to search: their timestamps, one ``(len(timestamps), dim)``
    array of vectors per variant (the frames as they are first, then e.g. their quarter turns,
    :func:`vecsim.embedding.embed_variants`), and their dihedral PDQ hashes."""

    timestamps: Sequence[float]
    variants: Sequence[np.ndarray]
    hashes: Sequence[DihedralHash]


def search_frames(store: StoreReader, batches: Iterable[QueryBatch], *, top_k: int) -> list[QueryFrame]:
    """Search query frames given in batches; one :class:`~vecsim.aggregate.QueryFrame` per frame,
    in order. A frame's variants are searched together; each indexed frame keeps the best score
    any variant gave it. Batching only saves calls: each query vector gets the same hits as alone.
    ``top_k`` (the assets the query will return) widens the candidates per frame."""
    per_frame = max(2 * top_k, CANDIDATES_PER_FRAME)
    frames: list[QueryFrame] = []
    for timestamps, variants, hashes in batches:
        n = len(timestamps)
        found = store.search(np.concatenate(variants), limit=per_frame, per_asset=FRAMES_PER_ASSET)
        hits = [merge_hits([found[v * n + i] for v in range(len(variants))]) for i in range(n)]
        frames += [QueryFrame(t, h.hashes, hs, h.quality) for t, h, hs in zip(timestamps, hashes, hits)]
    return frames


def asset_records(store: StoreReader, frames: Iterable[QueryFrame]) -> dict[str, AssetRecord]:
    """The visible records of every asset that any of ``frames`` hit (one store call)."""
    return store.assets(sorted({h.task_id for qf in frames for h in qf.hits}))


def match_assets(
    store: StoreReader,
    frames: Sequence[QueryFrame],
    calibration: Calibration,
    *,
    threshold: float,
    top_k: int,
    interval: float,
    query_duration: float,
    records: dict[str, AssetRecord] | None = None,
) -> list[AssetMatch]:
    """The query's matches per asset, best first: ``frames`` (of one query, from
    :func:`search_frames`) aggregated with the records of the assets they hit. ``interval`` is
    the query's sampling interval (1 / fps) and ``query_duration`` its length in seconds (0 for
    an image). ``records``: the records already read (e.g. :func:`asset_records` once for many
    one-frame queries), else they are read from ``store``."""
    if records is None:
        records = asset_records(store, frames)
    return aggregate(frames, records, calibration, threshold=threshold, top_k=top_k, interval=interval,
                     query_duration=query_duration)
