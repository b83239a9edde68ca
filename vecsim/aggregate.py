"""Query aggregation: frame-level hits -> per-asset match lists, segments and ranking.

For each asset and query frame the store gives up to a few candidate frames. Each hit's
``similarity_score`` is the descriptor's calibration of its cosine given its geometric
verification (where the collection keeps local features), or of its PDQ ``exact_score`` where
that is higher and the query frame's hash is reliable (:meth:`Calibration.score`). Once one hit
of an asset is verified as the same picture, the asset's other hits count as at least weakly
verified (:func:`_verified_assets`). Hits of
uncommitted generations and below the threshold are dropped. Temporal alignment (:mod:`vecsim.alignment`)
chains candidates whose times move forward consistently; each query timestamp then gets one
match per asset (at most once per asset): the candidate on the best chain through it, else its
best-scoring candidate. Then:

- ``matched_ratio`` = matched query frames / sampled query frames;
- ``segments`` = the chains, as time ranges on both axes;
- ``score`` (rank) = ``0.5 · best similarity + 0.5 · Σ similarity / sampled query frames``.

Why this score: the first half says how sure the best match is, the second how much of the
query the asset explains (a soft matched ratio). For an image query both halves equal the
similarity, so the score is the similarity. For a video query an asset that explains many
seconds beats one that matches a single second slightly better, while one strong match still
ranks. Ties go to more matched frames, then the better ``exact_score``.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from .alignment import Point, find_chains, still_runs
from .calibration import Calibration
from .descriptors.pdq import MIN_QUALITY, exact_score
from .schema import AssetMatch, Match, Segment
from .store import AssetRecord, Hit


#: Cosine taken off a match found by a turned query variant: a quarter-turned copy is rarer than
#: an upright one, and without it the two extra searches lift unrelated photos more than copies
#: (chosen on the descriptor's training photos, docs/benchmark.md).
TURN_PENALTY = 0.05


#: A stored frame: ``(task_id, generation, frame)``.
FrameKey = tuple[str, str, int]


@dataclass(frozen=True)
class QueryFrame:
    timestamp: float
    pdq: str | tuple[str, ...]  # the frame's PDQ hash, or its 8 dihedral variants (plain first)
    hits: list[Hit]
    pdq_quality: int  # PDQ's 0..100 quality of the frame: below MIN_QUALITY its hash is no evidence
    #: RANSAC inliers of the hits that were verified geometrically (a hit absent: refuted); None:
    #: no verification was made (the collection keeps no local features)
    inliers: Mapping[FrameKey, int] | None = None


def merge_hits(variant_hits: Sequence[list[Hit]], turn_penalty: float = TURN_PENALTY) -> list[Hit]:
    """The hits of several variants of one query frame (the frame as it is first, then e.g. its
    quarter turns) as one list: each indexed frame once, with the best score any variant gave it,
    best first. A hit of a turned variant scores ``turn_penalty`` less (see :data:`TURN_PENALTY`)."""
    best: dict[tuple[str, str, int], Hit] = {}
    for v, hits in enumerate(variant_hits):
        for h in hits:
            if v and turn_penalty:
                h = replace(h, raw_score=h.raw_score - turn_penalty)
            key = (h.task_id, h.generation, h.frame)
            if key not in best or h.raw_score > best[key].raw_score:
                best[key] = h
    return sorted(best.values(), key=lambda h: h.raw_score, reverse=True)


@dataclass
class _Candidate:
    record: AssetRecord
    # query ts -> [(similarity_score, exact_score, hit)]
    hits: dict[float, list[tuple[float, float, Hit]]] = field(default_factory=dict)


def aggregate(
    frames: Sequence[QueryFrame],
    records: dict[str, AssetRecord],
    calibration: Calibration,
    *,
    threshold: float,
    top_k: int,
    interval: float,
    query_duration: float,
) -> list[AssetMatch]:
    candidates: dict[str, _Candidate] = {}
    same_picture = _verified_assets(frames, calibration)
    for qf in frames:
        for hit in qf.hits:
            record = records.get(hit.task_id)
            if record is None or record.generation != hit.generation:
                continue  # removed, or an add / replace that has not committed
            exact = exact_score(qf.pdq, hit.pdq)
            inliers = None if qf.inliers is None else qf.inliers.get((hit.task_id, hit.generation, hit.frame), 0)
            witness = exact if qf.pdq_quality >= MIN_QUALITY else None
            sim = calibration.score(hit.raw_score, witness, inliers)
            if hit.task_id in same_picture:  # its footage is verified: each second counts as weakly verified
                sim = max(sim, calibration.score(hit.raw_score, witness, calibration.inlier_cuts[0]))
            if sim < threshold:
                continue
            cand = candidates.setdefault(hit.task_id, _Candidate(record))
            cand.hits.setdefault(qf.timestamp, []).append((sim, exact, hit))
    n_query = max(1, len(frames))
    results = [_asset_result(c, n_query, interval, query_duration) for c in candidates.values()]
    results.sort(key=lambda a: (a.score, len(a.matches), max(m.exact_score for m in a.matches)), reverse=True)
    return results[:top_k]


def _verified_assets(frames: Sequence[QueryFrame], calibration: Calibration) -> set[str]:
    """The assets that at least one query frame verified as the same picture (the top stratum of
    inliers). Verification is evidence about the asset: once some second of a video query lines
    up with it, its other seconds (moving content a fraction of a second off, a crop that kept
    few keypoints) count as at least weakly verified (the middle stratum's curve of their cosine)."""
    if not calibration.geometric:
        return set()
    line = calibration.inlier_cuts[-1]
    return {key[0] for qf in frames if qf.inliers for key, n in qf.inliers.items() if n >= line}


def _match_time(q: float, hit: Hit, offset: float | None, interval: float) -> float:
    """Match time of a hit. A frame that stands for a long still stretch (consecutive
    near-identical frames stored once) is placed inside its span at the asset's typical offset."""
    t = hit.timestamp
    if offset is not None and hit.span_end - hit.timestamp > 1.5 * interval:
        t = min(max(q + offset, hit.timestamp), max(hit.timestamp, hit.span_end - interval))
    return round(t, 3)


def _asset_result(cand: _Candidate, n_query: int, interval: float, query_duration: float) -> AssetMatch:
    best = {q: max(options, key=lambda o: o[0])[2] for q, options in cand.hits.items()}
    short = [h.timestamp - q for q, h in best.items() if h.span_end - h.timestamp <= 1.5 * interval]
    offset = statistics.median(short) if short else None
    points: list[Point] = []
    exact_of: dict[int, float] = {}
    for q, options in cand.hits.items():
        for sim, exact, hit in options:
            m = _match_time(q, hit, offset, interval)
            p = Point(q=q, m=m, m_end=max(m, min(hit.span_end, m + interval)), score=sim)
            points.append(p)
            exact_of[id(p)] = exact
    chains = still_runs(points) if cand.record.media_type == "image" else find_chains(points, interval=interval)
    chosen: dict[float, Point] = {}
    for chain in chains:  # best chain first: it decides the match of each of its query seconds
        for p in chain.points:
            chosen.setdefault(p.q, p)
    for p in sorted(points, key=lambda p: p.score, reverse=True):  # seconds on no chain: their best
        chosen.setdefault(p.q, p)
    matches = [
        Match(
            query_timestamp=q,
            matching_timestamp=p.m,
            similarity_score=round(p.score, 6),
            exact_score=round(exact_of[id(p)], 6),
        )
        for q, p in sorted(chosen.items())
    ]
    duration = cand.record.duration
    segments = [
        Segment(
            query_start=c.points[0].q,
            query_end=round(min(c.points[-1].q + interval, query_duration) if query_duration else c.points[-1].q, 3),
            match_start=c.points[0].m,
            match_end=round(min(c.points[-1].m_end, duration) if duration else c.points[-1].m, 3),
            score=round(c.score, 6),
        )
        for c in chains
    ]
    sims = [m.similarity_score for m in matches]
    score = 0.5 * max(sims) + 0.5 * sum(sims) / n_query
    return AssetMatch(
        task_id=cand.record.task_id,
        metadata=cand.record.metadata,
        media_type=cand.record.media_type,
        score=round(min(1.0, score), 6),
        matched_ratio=round(len(matches) / n_query, 6),
        longest_segment_seconds=round(max((s.query_end - s.query_start for s in segments), default=0.0), 3),
        matches=matches,
        segments=segments,
    )

