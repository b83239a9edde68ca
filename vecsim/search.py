"""The search-and-aggregate step of a query, over precomputed vectors and hashes.

:meth:`CustomIndex.query <vecsim.CustomIndex.query>` decodes and embeds the query, then calls
these two steps; the benchmarks (:mod:`vecsim.bench`) call the same two on cached query vectors,
so a benchmark measures exactly the query path:

1. :func:`search_frames`: each batch of query frames (:class:`QueryBatch`) searched in the store,
   the hits of a frame's variants merged (:func:`vecsim.aggregate.merge_hits`);
   and, where the collection keeps local features, the hits verified geometrically
   (:func:`verify_hits`);
2. :func:`match_assets`: the hit assets' records read and the frames aggregated per asset
   (:func:`vecsim.aggregate.aggregate`).

Two steps, so that a caller can consume a stream of frames before it needs what only the end of
the stream tells (a video's duration).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from . import timing
from .aggregate import FrameKey, QueryFrame, aggregate, merge_hits
from .calibration import Calibration
from .descriptors.local import Keypoints, inliers, unpack
from .descriptors.pdq import DihedralHash
from .schema import AssetMatch
from .store import AssetRecord, Hit, StoreReader

#: Assets fetched per query frame (at least): enough that one asset with many near-identical
#: frames cannot hide the others (the store returns the best frame of each asset).
CANDIDATES_PER_FRAME = 10
#: Frames fetched per asset and query frame: the temporal alignment picks the consistent one
#: (within a slow shot the best-looking second is often a neighbour of the true one).
FRAMES_PER_ASSET = 5


class QueryBatch(NamedTuple):
    """A batch of query frames ready to search: their timestamps, one ``(len(timestamps), dim)``
    array of vectors per variant (the frames as they are first, then e.g. their quarter turns,
    :func:`vecsim.embedding.embed_variants`), their dihedral PDQ hashes, and (to verify the
    candidates geometrically) their local features (:func:`vecsim.descriptors.local.query_features`)."""

    timestamps: Sequence[float]
    variants: Sequence[np.ndarray]
    hashes: Sequence[DihedralHash]
    local: Sequence[tuple[Keypoints, ...]] | None = None


def search_frames(store: StoreReader, batches: Iterable[QueryBatch], *, top_k: int,
                  verify_floor: float | None = None) -> list[QueryFrame]:
    """Search query frames given in batches; one :class:`~vecsim.aggregate.QueryFrame` per frame,
    in order. A frame's variants are searched together; each indexed frame keeps the best score
    any variant gave it. Batching only saves calls: each query vector gets the same hits as alone.
    ``top_k`` (the assets the query will return) widens the candidates per frame.

    ``verify_floor``: verify every hit of at least that raw cosine geometrically
    (:func:`verify_hits`) when the batches carry local features; None: no verification."""
    per_frame = max(2 * top_k, CANDIDATES_PER_FRAME)
    frames: list[QueryFrame] = []
    for timestamps, variants, hashes, local in batches:
        n = len(timestamps)
        with timing.stage("search"):
            found = store.search(np.concatenate(variants), limit=per_frame, per_asset=FRAMES_PER_ASSET)
        hits = [merge_hits([found[v * n + i] for v in range(len(variants))]) for i in range(n)]
        inliers: list[dict[FrameKey, int] | None] = [None] * n
        if verify_floor is not None and local is not None:
            with timing.stage("verify"):
                inliers = list(verify_hits(store, hits, local, verify_floor))
        frames += [QueryFrame(t, h.hashes, hs, h.quality, inl)
                   for t, h, hs, inl in zip(timestamps, hashes, hits, inliers)]
    return frames


def verify_hits(store: StoreReader, hits: Sequence[Sequence[Hit]], local: Sequence[tuple[Keypoints, ...]],
                floor: float) -> list[dict[FrameKey, int]]:
    """Geometric verification of query frames' hits: for each frame, the RANSAC inliers
    (:func:`vecsim.descriptors.local.inliers`) of the best hits of each asset (at least ``floor``
    raw cosine, :func:`_to_verify`) against the stored frames' local features, read in one store
    call. A hit not verified, or whose frame has no local features, is absent (it counts as refuted)."""
    chosen = [_to_verify(frame_hits, floor) for frame_hits in hits]
    keys = sorted({k for frame_keys in chosen for k in frame_keys})
    stored = {k: unpack(blob) for k, blob in store.local_features(keys).items()} if keys else {}
    return [{k: inliers(q, stored[k]) for k in frame_keys if k in stored} for frame_keys, q in zip(chosen, local)]


#: Hits verified per asset and query frame: its best ones by cosine (the others of a video asset
#: count as refuted; the best is what a match is made of).
VERIFY_PER_ASSET = 2


def _to_verify(hits: Sequence[Hit], floor: float) -> list[FrameKey]:
    """The keys of the hits to verify: the :data:`VERIFY_PER_ASSET` best of each asset at or
    above ``floor`` (``hits`` come best first)."""
    per_asset: dict[str, int] = {}
    keys = []
    for h in hits:
        if h.raw_score >= floor and per_asset.get(h.task_id, 0) < VERIFY_PER_ASSET:
            per_asset[h.task_id] = per_asset.get(h.task_id, 0) + 1
            keys.append((h.task_id, h.generation, h.frame))
    return keys


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
    with timing.stage("aggregate"):
        if records is None:
            records = asset_records(store, frames)
        return aggregate(frames, records, calibration, threshold=threshold, top_k=top_k, interval=interval,
                         query_duration=query_duration)
