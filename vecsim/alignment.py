"""Temporal alignment: turn one asset's frame matches into continuous matched segments.

A segment is a chain of matches in which query time and match time both move forward at a
consistent rate: between two consecutive matches of a chain, ``Δq`` (query seconds) is at most
``max_gap`` and the match time moves by ``Δm`` with ``|Δm − Δq| ≤ max(jitter, 0.5·Δq)``. So a
straight copy (``Δm = Δq``), a copy played 0.5x–2x, and the ±1-frame jitter of 1 fps sampling
all chain, while matches at inconsistent offsets (a black frame or a logo that recurs all over
two unrelated videos) do not. Chains are found by dynamic programming (maximum total
similarity), the best first. A chain is then refined: a robust line ``m = a + b·q`` is fitted
to it (Theil–Sen slope, clipped to 0.5..2, median intercept) and each query second in its range
takes the candidate nearest that line (within one sampling interval), so that within a slow
shot, where neighbouring seconds look alike, the match times follow the copy's timeline. A
chain claims its query seconds; the search repeats on the rest.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

#: Longest run of unmatched query seconds that a segment may bridge.
MAX_GAP_SECONDS = 4.0
#: Relative speed tolerance: chains may play at 0.5x..2x.
SPEED_SLACK = 0.5


@dataclass(frozen=True)
class Point:
    q: float  # query time (s)
    m: float  # match time (s)
    m_end: float  # end of the time the matched frame stands for
    score: float


@dataclass(frozen=True)
class Chain:
    points: tuple[Point, ...]

    @property
    def score(self) -> float:
        return sum(p.score for p in self.points) / len(self.points)

    @property
    def weight(self) -> float:
        """How much evidence the chain carries: its length times its mean similarity (the rank)."""
        return len(self.points) * self.score


def _compatible(a: Point, b: Point, interval: float, max_gap: float) -> bool:
    dq, dm = b.q - a.q, b.m - a.m
    return 0 < dq <= max_gap + 1e-6 and dm >= -interval and abs(dm - dq) <= max(1.5 * interval, SPEED_SLACK * dq)


def _best_chain(points: list[Point], interval: float, max_gap: float) -> Chain:
    """Max-total-score chain over points sorted by q (one point per query time)."""
    total = [p.score for p in points]
    prev = [-1] * len(points)
    lo = 0
    for i, b in enumerate(points):
        while points[lo].q < b.q - max_gap - 1e-6:
            lo += 1
        for j in range(lo, i):
            if total[j] + b.score > total[i] and _compatible(points[j], b, interval, max_gap):
                total[i], prev[i] = total[j] + b.score, j
    i = max(range(len(points)), key=total.__getitem__)
    chain = []
    while i != -1:
        chain.append(points[i])
        i = prev[i]
    return Chain(tuple(reversed(chain)))


def _refine(chain: Chain, pool: list[Point], interval: float) -> Chain:
    pts = chain.points
    slopes = [
        (b.m - a.m) / (b.q - a.q)
        for i, a in enumerate(pts) for b in pts[i + 1 : i + 16]
        if b.q > a.q
    ]
    slope = min(2.0, max(0.5, statistics.median(slopes))) if slopes else 1.0
    intercept = statistics.median(p.m - slope * p.q for p in pts)
    q0, q1 = pts[0].q, pts[-1].q
    best: dict[float, Point] = {}
    for p in pool:
        if q0 <= p.q <= q1:
            d = abs(p.m - (intercept + slope * p.q))
            if d <= interval + 1e-6 and (p.q not in best or d < abs(best[p.q].m - (intercept + slope * p.q))):
                best[p.q] = p
    refined = tuple(best[q] for q in sorted(best))
    return Chain(refined) if len(refined) >= 2 else chain


def find_chains(points: list[Point], *, interval: float, max_gap: float = MAX_GAP_SECONDS) -> list[Chain]:
    """All chains of two or more matches, best first; if there is none, the single best match
    (an image query, or one isolated second) as a chain of one."""
    remaining = sorted(points, key=lambda p: p.q)
    chains: list[Chain] = []
    while remaining:
        chain = _best_chain(remaining, interval, max_gap)
        if len(chain.points) < 2:
            break
        chain = _refine(chain, remaining, interval)
        chains.append(chain)
        claimed = {p.q for p in chain.points}
        remaining = [p for p in remaining if p.q not in claimed]
    if not chains and points:
        chains.append(Chain((max(points, key=lambda p: p.score),)))
    return sorted(chains, key=lambda c: c.weight, reverse=True)


def still_runs(points: list[Point], *, max_gap: float = MAX_GAP_SECONDS) -> list[Chain]:
    """Segments against a still image (match time always 0): runs of matched query seconds with
    gaps of at most ``max_gap``, best first."""
    best: dict[float, Point] = {}
    for p in points:
        if p.q not in best or p.score > best[p.q].score:
            best[p.q] = p
    runs: list[list[Point]] = []
    for q in sorted(best):
        if runs and q - runs[-1][-1].q <= max_gap + 1e-6:
            runs[-1].append(best[q])
        else:
            runs.append([best[q]])
    return sorted((Chain(tuple(r)) for r in runs), key=lambda c: c.weight, reverse=True)
