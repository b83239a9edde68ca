"""Copy-detection metrics: ISC2021 (DISC21) pair metrics and the VSC2022 matching-track segment AP.

Pure functions over plain tuples (numpy and the standard library only), so that any benchmark
can use them without the index, the model or torch.

Inputs
------
- A *prediction* is ``(query_id, reference_id, score)`` (e.g. :class:`Prediction`); a higher
  score means "more likely a copy". Ids are any hashable values.
- The *ground truth* of the pair metrics is a mapping ``query_id -> reference_id``: the queries in
  it are the *matching* queries (one true reference each); every other query is *non-matching*.
- The same ``(query, reference)`` pair predicted several times counts once, with its highest
  score (ISC2021 rejects such submissions; here they are merged).
- Ties are pessimistic everywhere: among equal scores, wrong predictions are ranked first.

Definitions were checked against the organisers' evaluation code: ``isc/metrics.py`` of
facebookresearch/isc2021 (micro AP, recall at precision, recall at rank 1) and ``vsc/metrics.py``
of facebookresearch/vsc2022 (the matching track's segment AP, ``match_metric``). The
"recall when 1 % of the non-matching queries are flagged" metric is this project's operating
point, not an ISC2021 one; its definition is in :func:`recall_at_fpr`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from itertools import groupby
from typing import NamedTuple

import numpy as np

from .errors import InvalidRequestError

__all__ = [
    "Prediction",
    "SegmentMatch",
    "dedupe",
    "precision_recall_curve",
    "micro_ap",
    "recall_at_precision",
    "recall_at_1",
    "top1_per_query",
    "threshold_at_false_positive_rate",
    "recall_at_threshold",
    "recall_at_fpr",
    "segment_precision_recall_curve",
    "segment_ap",
    "union_overlap",
    "overlap_precision_recall",
]


class Prediction(NamedTuple):
    """A predicted (query, reference) pair with its score."""

    query_id: Hashable
    reference_id: Hashable
    score: float


class SegmentMatch(NamedTuple):
    """A copied segment: ``[query_start, query_end]`` of the query copies
    ``[reference_start, reference_end]`` of the reference (seconds). ``score`` ranks predictions
    and is ignored in the ground truth."""

    query_id: Hashable
    reference_id: Hashable
    query_start: float
    query_end: float
    reference_start: float
    reference_end: float
    score: float = 1.0


# --------------------------------------------------------------------------------------------
# ISC2021 pair metrics


def dedupe(predictions: Iterable[Sequence]) -> list[Prediction]:
    """One prediction per (query_id, reference_id) pair, keeping its highest score (first-seen
    order of the pairs)."""
    best: dict[tuple[Hashable, Hashable], float] = {}
    for q, r, s in predictions:
        s = float(s)
        if (q, r) not in best or s > best[(q, r)]:
            best[(q, r)] = s
    return [Prediction(q, r, s) for (q, r), s in best.items()]


def _ranked(predictions: Iterable[Sequence], ground_truth: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """(scores, is_correct) of the deduplicated predictions in the pessimistic order: score
    descending, and among equal scores the wrong predictions first."""
    preds = dedupe(predictions)
    scores = np.array([p.score for p in preds], dtype=float)
    correct = np.array([q in ground_truth and ground_truth[q] == r for q, r, _ in preds], dtype=bool)
    order = np.lexsort((correct, -scores))  # primary key: -score ascending; then False before True
    return scores[order], correct[order]


def precision_recall_curve(
    predictions: Iterable[Sequence], ground_truth: Mapping, n_positive: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The micro precision/recall curve of ISC2021: one point per (deduplicated) prediction.

    All predictions of all queries are pooled and ranked by score, descending, ties pessimistic
    (wrong before right). After the i-th prediction: precision = correct so far / i, recall =
    correct so far / ``n_positive`` (default ``len(ground_truth)``: the number of ground-truth
    pairs, i.e. of matching queries). Returns ``(precisions, recalls, thresholds)``, where
    ``thresholds[i]`` is the score of the i-th prediction.
    """
    scores, correct = _ranked(predictions, ground_truth)
    n_pos = len(ground_truth) if n_positive is None else n_positive
    tp = np.cumsum(correct)
    precisions = tp / np.arange(1, len(correct) + 1) if len(correct) else np.zeros(0)
    recalls = tp / n_pos if n_pos > 0 else np.zeros(len(correct))
    return precisions, recalls, scores


def _rectangle_ap(precisions: np.ndarray, recalls: np.ndarray) -> float:
    """``sum_i (R_i - R_{i-1}) * P_i`` with ``R_0 = 0`` (rectangle rule, no interpolation), the AP
    of both ISC2021 and VSC2022; 0.0 for an empty curve."""
    if len(recalls) == 0:
        return 0.0
    return float(np.sum(np.diff(recalls, prepend=0.0) * precisions))


def micro_ap(predictions: Iterable[Sequence], ground_truth: Mapping, n_positive: int | None = None) -> float:
    """ISC2021 micro average precision (uAP).

    Definition (``average_precision`` in isc2021 ``isc/metrics.py``): on the curve of
    :func:`precision_recall_curve`, ``AP = sum_i (R_i - R_{i-1}) * P_i`` with ``R_0 = 0``, i.e.
    the rectangle rule, no interpolation, no trapezoid. Recall only grows at correct
    predictions, so this equals the sum, over the correct predictions, of the precision at their
    rank, divided by the number of ground-truth pairs (``n_positive``). Ground-truth pairs never
    predicted contribute 0, which is how queries without predictions lower the AP. Empty
    predictions (or no ground truth) give 0.0.
    """
    precisions, recalls, _ = precision_recall_curve(predictions, ground_truth, n_positive)
    return _rectangle_ap(precisions, recalls)


def recall_at_precision(
    predictions: Iterable[Sequence], ground_truth: Mapping, precision: float = 0.9,
    n_positive: int | None = None,
) -> tuple[float, float | None]:
    """ISC2021 "recall at P90" (``find_operating_point`` in isc2021): the highest recall among
    the points of :func:`precision_recall_curve` whose precision is at least ``precision``, and
    the score of that point as the threshold (flag ``score >= threshold``). Among points with
    the same highest recall, the first one (highest threshold) is taken.

    Only the last point of each group of equal scores is considered: a threshold flags a whole
    tie group. With pessimistic ties this gives the same answer as scanning every point (inside
    a group the wrong predictions come first and only lower the precision at an unchanged
    recall). Returns ``(0.0, None)`` when no point reaches the precision.
    """
    precisions, recalls, scores = precision_recall_curve(predictions, ground_truth, n_positive)
    if len(scores) == 0:
        return 0.0, None
    group_end = np.append(scores[1:] != scores[:-1], True)
    p, r, t = precisions[group_end], recalls[group_end], scores[group_end]
    valid = p >= precision
    if not valid.any():
        return 0.0, None
    best = int(np.argmax(np.where(valid, r, -1.0)))
    return float(r[best]), float(t[best])


def recall_at_1(predictions: Iterable[Sequence], ground_truth: Mapping, n_positive: int | None = None) -> float:
    """Recall at rank 1: the fraction of matching queries (``len(ground_truth)``, or
    ``n_positive``) whose highest-scored prediction is their true reference. Pessimistic ties (as
    ISC2021's rank computation): a wrong reference scored equal to the right one at the top makes
    the query a miss. Matching queries without predictions are misses."""
    pos_scores, pos_correct, _ = top1_per_query(predictions, ground_truth, query_ids=ground_truth.keys())
    n_pos = len(ground_truth) if n_positive is None else n_positive
    return float(pos_correct.sum() / n_pos) if n_pos > 0 else 0.0


# --------------------------------------------------------------------------------------------
# operating point: recall when the threshold flags `rate` of the non-matching queries


def top1_per_query(
    predictions: Iterable[Sequence], ground_truth: Mapping, query_ids: Iterable[Hashable] | None = None,
    missing_score: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each query's top-1 prediction, split by whether the query has a match.

    ``query_ids`` are all the queries asked (default: the ground-truth queries and every query
    that has a prediction); list them explicitly so that non-matching queries that returned
    nothing are counted. Returns ``(pos_scores, pos_correct, neg_scores)``:

    - for each matching query (in ``ground_truth``), its top score (``missing_score`` if it
      returned nothing) and whether its top prediction is its true reference (pessimistic ties:
      if another reference has the same top score, it is not);
    - for each non-matching query, its top score (``missing_score`` if it returned nothing).
    """
    best: dict[Hashable, float] = {}
    best_refs: dict[Hashable, set] = {}
    for q, r, s in dedupe(predictions):
        if q not in best or s > best[q]:
            best[q], best_refs[q] = s, {r}
        elif s == best[q]:
            best_refs[q].add(r)
    ids = list(dict.fromkeys([*ground_truth.keys(), *best.keys()])) if query_ids is None else list(query_ids)
    pos_s, pos_c, neg_s = [], [], []
    for q in dict.fromkeys(ids):
        s = best.get(q, missing_score)
        if q in ground_truth:
            pos_s.append(s)
            pos_c.append(best_refs.get(q) == {ground_truth[q]})
        else:
            neg_s.append(s)
    return np.array(pos_s, dtype=float), np.array(pos_c, dtype=bool), np.array(neg_s, dtype=float)


def threshold_at_false_positive_rate(negative_scores: Sequence[float] | np.ndarray, rate: float = 0.01) -> float:
    """The smallest threshold that flags (``score >= threshold``) at most ``rate`` of the
    non-matching queries.

    ``negative_scores`` holds one score per non-matching query: its top score, 0 when it returned
    nothing (see :func:`top1_per_query`). With ``N`` of them, at most ``k = floor(rate * N)`` may
    be flagged. Sorting them descending ``s_1 >= s_2 >= ... >= s_N``, any threshold ``<= s_{k+1}``
    flags ``k + 1`` or more, so the answer is the smallest float strictly above ``s_{k+1}``
    (``numpy.nextafter``). Ties are pessimistic: if ``s_k == s_{k+1}``, that threshold flags
    fewer than ``k`` (a threshold cannot take half of a tie). When ``k >= N`` (e.g. no
    non-matching queries) nothing constrains it: ``-inf``.
    """
    s = np.sort(np.asarray(negative_scores, dtype=float))[::-1]
    k = math.floor(rate * len(s) + 1e-9)  # tolerance: 0.29 * 100 is 28.999999999999996
    if k >= len(s):
        return -math.inf
    return float(np.nextafter(s[k], math.inf))


def recall_at_threshold(
    top1_scores: Sequence[float] | np.ndarray, top1_correct: Sequence[bool] | np.ndarray, threshold: float
) -> float:
    """The fraction of matching queries (one entry each, queries that returned nothing
    included as not correct) whose top-1 prediction is the true reference with
    ``score >= threshold``. 0.0 when there are no matching queries."""
    scores = np.asarray(top1_scores, dtype=float)
    correct = np.asarray(top1_correct, dtype=bool)
    if len(scores) == 0:
        return 0.0
    return float(np.mean(correct & (scores >= threshold)))


def recall_at_fpr(
    top1_scores_pos: Sequence[float] | np.ndarray, top1_correct: Sequence[bool] | np.ndarray,
    top1_scores_neg: Sequence[float] | np.ndarray, rate: float = 0.01,
) -> tuple[float, float]:
    """Recall when the threshold flags only ``rate`` (default 1 %) of the non-matching queries.

    ``threshold = threshold_at_false_positive_rate(top1_scores_neg, rate)``, then
    ``recall = recall_at_threshold(top1_scores_pos, top1_correct, threshold)``. The three arrays
    come from :func:`top1_per_query`. Returns ``(recall, threshold)``.
    """
    threshold = threshold_at_false_positive_rate(top1_scores_neg, rate)
    return recall_at_threshold(top1_scores_pos, top1_correct, threshold), threshold


# --------------------------------------------------------------------------------------------
# VSC2022 matching track: segment AP


def interval_union(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Disjoint, sorted union of closed intervals (touching ones merged)."""
    merged: list[list[float]] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def interval_length(intervals: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in intervals)


def intersection_length(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    """Length of the intersection of two disjoint sorted unions (two-pointer sweep)."""
    i = j = 0
    total = 0.0
    while i < len(a) and j < len(b):
        total += max(0.0, min(a[i][1], b[j][1]) - max(a[i][0], b[j][0]))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def union_overlap(segments: Iterable[tuple[float, float]], truth: tuple[float, float]) -> tuple[float, float]:
    """(length of the union of ``segments``, its overlap with the ``truth`` range)."""
    merged = interval_union(segments)
    return interval_length(merged), intersection_length(merged, [truth])


def overlap_precision_recall(
    predicted: Iterable[tuple[Sequence[tuple[float, float]], tuple[float, float] | None]], truth_length: float
) -> tuple[float, float]:
    """Segment precision and recall on one time axis (query or reference), in the VSC2022 spirit.

    ``predicted``: for each asset returned for each query, its segments on this axis and the true
    range they should cover, or None when the asset is the wrong one (its segments count as
    predicted length with no overlap). ``truth_length``: the summed lengths of every query's true
    range. Precision = summed overlap of each union of segments with its truth / summed length of
    the unions; recall = summed overlap / ``truth_length``. (The video benchmark multiplies the
    two axes for its ``combined`` figures.)"""
    if not truth_length > 0:
        raise InvalidRequestError(f"truth_length must be positive, got {truth_length}")
    predicted_length = overlap = 0.0
    for segments, truth in predicted:
        length, inter = union_overlap(segments, truth if truth is not None else (0.0, 0.0))
        predicted_length += length
        overlap += inter if truth is not None else 0.0
    return overlap / max(predicted_length, 1e-9), overlap / truth_length


def _boxes_overlap(p: SegmentMatch, g: SegmentMatch) -> bool:
    """Whether two segments overlap with positive area in the (query time, reference time) plane."""
    dq = min(p.query_end, g.query_end) - max(p.query_start, g.query_start)
    dr = min(p.reference_end, g.reference_end) - max(p.reference_start, g.reference_start)
    return dq > 0 and dr > 0


def _as_segment(t: Sequence) -> SegmentMatch:
    return SegmentMatch(*t) if not isinstance(t, SegmentMatch) else t


def segment_precision_recall_curve(
    predictions: Iterable[Sequence], ground_truth: Iterable[Sequence]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The VSC2022 matching-track precision/recall curve, one point per distinct score
    (descending). Returns ``(precisions, recalls, scores)``; see :func:`segment_ap`."""
    gts = [_as_segment(g) for g in ground_truth]
    preds = sorted((_as_segment(p) for p in predictions), key=lambda p: p.score, reverse=True)
    gt_by_pair: dict[tuple[Hashable, Hashable], list[SegmentMatch]] = {}
    for g in gts:
        gt_by_pair.setdefault((g.query_id, g.reference_id), []).append(g)
    axes = (("query_start", "query_end"), ("reference_start", "reference_end"))

    def span(seg: SegmentMatch, axis: int) -> tuple[float, float]:
        lo, hi = axes[axis]
        return getattr(seg, lo), getattr(seg, hi)

    gt_total = [sum(interval_length(interval_union(span(g, ax) for g in pair_gts)) for pair_gts in gt_by_pair.values())
                for ax in (0, 1)]
    # per pair: its predictions so far, and its current (intersection, predicted length) per axis
    pair_preds: dict[tuple[Hashable, Hashable], list[SegmentMatch]] = {}
    pair_state: dict[tuple[Hashable, Hashable], tuple[list[float], list[float]]] = {}
    inter, total = [0.0, 0.0], [0.0, 0.0]
    precisions, recalls, scores = [], [], []
    for score, group in groupby(preds, key=lambda p: p.score):
        for p in group:
            key = (p.query_id, p.reference_id)
            pp = pair_preds.setdefault(key, [])
            pp.append(p)
            considered = [g for g in gt_by_pair.get(key, []) if any(_boxes_overlap(x, g) for x in pp)]
            old_inter, old_total = pair_state.get(key, ([0.0, 0.0], [0.0, 0.0]))
            new_inter, new_total = [0.0, 0.0], [0.0, 0.0]
            for ax in (0, 1):
                pred_u = interval_union(span(x, ax) for x in pp)
                new_total[ax] = interval_length(pred_u)
                new_inter[ax] = intersection_length(pred_u, interval_union(span(g, ax) for g in considered))
                inter[ax] += new_inter[ax] - old_inter[ax]
                total[ax] += new_total[ax] - old_total[ax]
            pair_state[key] = (new_inter, new_total)
        rec = [inter[ax] / gt_total[ax] if gt_total[ax] > 0 else 0.0 for ax in (0, 1)]
        prec = [inter[ax] / total[ax] if total[ax] > 0 else 0.0 for ax in (0, 1)]
        precisions.append(math.sqrt(prec[0] * prec[1]))
        recalls.append(math.sqrt(rec[0] * rec[1]))
        scores.append(float(score))
    return np.array(precisions), np.array(recalls), np.array(scores)


def segment_ap(predictions: Iterable[Sequence], ground_truth: Iterable[Sequence]) -> float:
    """VSC2022 matching-track segment AP (``match_metric`` of facebookresearch/vsc2022
    ``vsc/metrics.py``, after the VCSL benchmark's precision/recall).

    ``predictions`` are ``(query_id, reference_id, query_start, query_end, reference_start,
    reference_end, score)`` (e.g. :class:`SegmentMatch`), ``ground_truth`` the same with the
    score left out or ignored. Micro over all queries:

    1. Predictions are sorted by score, descending, and added a group of equal scores at a time
       (the curve is only evaluated after a whole tie group, so a tie cannot be split in the
       predictor's favour).
    2. For each (query, reference) pair and each axis (query time, reference time): the predicted
       length is the length of the union of the pair's predicted intervals so far; the hit length
       is the length of that union intersected with the union of the pair's ground-truth
       intervals, where only the ground-truth segments that some prediction of the pair overlaps
       *in both axes at once* (positive area in the query-time x reference-time plane) count.
       A prediction on a wrong reference (a pair without ground truth) adds predicted length and
       no hits.
    3. Per axis, summed over pairs: ``P_axis = hits / predicted length`` and
       ``R_axis = hits / ground-truth length`` (the ground-truth length is the union of all of a
       pair's ground-truth intervals, summed over pairs, whether predicted or not; so queries
       without predictions lower the recall).
    4. The two axes are combined by the geometric mean: ``P = sqrt(P_q * P_r)``,
       ``R = sqrt(R_q * R_r)`` (the square root of the product, as the official code does).
    5. ``AP = sum over groups of P(i) * (R(i) - R(i-1))``, ``R(0) = 0``: rectangle rule, no
       interpolation.

    Empty predictions or empty ground truth give 0.0. Deviations from the official code: a 0/0
    precision (only zero-length predictions so far) counts as 0 instead of raising, and
    duplicate predictions are not rejected (they merge in the interval unions).
    """
    precisions, recalls, _ = segment_precision_recall_curve(predictions, ground_truth)
    return _rectangle_ap(precisions, recalls)
