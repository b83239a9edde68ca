"""Query aggregation: frame-level hits -> per-asset match lists -> the top-k assets.

Input: for each query frame, the store's hits (best frame of each nearby asset). Output: for
each asset, at most one match per query timestamp (its best), only matches at or above the
threshold, assets ranked by their best ``similarity_score`` (ties: more matched query frames
first, then the better ``exact_score``), at most ``top_k`` of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .calibration import Calibration
from .descriptors.pdq import exact_score
from .schema import Match
from .store import Hit


@dataclass
class AssetAggregate:
    task_id: str
    media_type: str
    matches: dict[float, Match] = field(default_factory=dict)  # query_timestamp -> best match

    @property
    def score(self) -> float:
        return max(m.similarity_score for m in self.matches.values())

    @property
    def rank_key(self) -> tuple[float, int, float]:
        best_exact = max(m.exact_score for m in self.matches.values())
        return (self.score, len(self.matches), best_exact)


def aggregate(
    query_timestamps: Sequence[float],
    query_pdqs: Sequence[str],
    hits_per_frame: Sequence[Sequence[Hit]],
    calibration: Calibration,
    *,
    threshold: float,
    top_k: int,
) -> list[AssetAggregate]:
    assets: dict[str, AssetAggregate] = {}
    for q_ts, q_pdq, hits in zip(query_timestamps, query_pdqs, hits_per_frame, strict=True):
        for hit in hits:
            sim = float(calibration(hit.raw_score))
            if sim < threshold:
                continue
            match = Match(
                query_timestamp=q_ts,
                matching_timestamp=hit.timestamp,
                similarity_score=round(sim, 6),
                exact_score=round(exact_score(q_pdq, hit.pdq), 6),
            )
            agg = assets.setdefault(hit.task_id, AssetAggregate(hit.task_id, hit.media_type))
            prev = agg.matches.get(q_ts)
            if prev is None or match.similarity_score > prev.similarity_score:
                agg.matches[q_ts] = match
    ranked = sorted(assets.values(), key=lambda a: a.rank_key, reverse=True)
    return ranked[:top_k]
