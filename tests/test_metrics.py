"""vecsim.metrics against hand-computed cases (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vecsim.errors import InvalidRequestError
from vecsim.metrics import (
    Prediction,
    SegmentMatch,
    dedupe,
    micro_ap,
    overlap_precision_recall,
    precision_recall_curve,
    recall_at_1,
    recall_at_fpr,
    recall_at_precision,
    recall_at_threshold,
    segment_ap,
    threshold_at_false_positive_rate,
    top1_per_query,
    union_overlap,
)

GT2 = {"q1": "r1", "q2": "r2"}


# ---------------------------------------------------------------- micro AP (ISC2021)


def test_micro_ap_perfect_ranking_is_one():
    # right pairs at ranks 1, 2 (precision 1, 1); the wrong one last adds no recall: (1 + 1) / 2
    preds = [("q1", "r1", 0.9), ("q2", "r2", 0.8), ("q3", "r9", 0.1)]
    assert micro_ap(preds, GT2) == pytest.approx(1.0)


def test_micro_ap_one_negative_above_all_positives():
    # ranks: wrong, q1 (precision 1/2), q2 (precision 2/3): AP = (1/2 + 2/3) / 2 = 7/12
    preds = [("q3", "r9", 0.95), ("q1", "r1", 0.9), ("q2", "r2", 0.8)]
    assert micro_ap(preds, GT2) == pytest.approx(7 / 12)
    p, r, t = precision_recall_curve(preds, GT2)
    np.testing.assert_allclose(p, [0, 1 / 2, 2 / 3])
    np.testing.assert_allclose(r, [0, 1 / 2, 1])
    np.testing.assert_allclose(t, [0.95, 0.9, 0.8])


def test_micro_ap_ties_are_pessimistic():
    # q1 (right) and q3 (wrong) tie at 0.5: the wrong one is ranked first whatever the input
    # order, so q1 gets precision 1/2 and q2 2/3: 7/12 (optimistic would be (1 + 2/3) / 2 = 5/6)
    preds = [("q1", "r1", 0.5), ("q3", "r9", 0.5), ("q2", "r2", 0.4)]
    assert micro_ap(preds, GT2) == pytest.approx(7 / 12)
    assert micro_ap(preds[::-1], GT2) == pytest.approx(7 / 12)


def test_micro_ap_duplicates_count_once_with_their_highest_score():
    # (q1, r1) at 0.2 and 0.9 -> one prediction at 0.9, ranked above the wrong 0.5: AP 1/1 = 1.0
    # (keeping 0.2 would give 1/2; counting it twice would not change recall but add a rank)
    preds = [("q1", "r1", 0.2), ("q1", "r1", 0.9), ("q3", "r9", 0.5)]
    assert dedupe(preds) == [Prediction("q1", "r1", 0.9), Prediction("q3", "r9", 0.5)]
    assert micro_ap(preds, {"q1": "r1"}) == pytest.approx(1.0)


def test_micro_ap_empty_predictions():
    assert micro_ap([], GT2) == 0.0
    assert recall_at_precision([], GT2) == (0.0, None)
    assert recall_at_1([], GT2) == 0.0


def test_queries_without_predictions_lower_recall():
    # 4 ground-truth pairs, only q1 predicted (rightly, precision 1): AP = 1/4; with
    # n_positive=2 the denominator is 2: 1/2
    gt = {"q1": "r1", "q2": "r2", "q3": "r3", "q4": "r4"}
    preds = [("q1", "r1", 0.9)]
    assert micro_ap(preds, gt) == pytest.approx(0.25)
    assert micro_ap(preds, gt, n_positive=2) == pytest.approx(0.5)
    assert recall_at_1(preds, gt) == pytest.approx(0.25)


# ---------------------------------------------------------------- recall at precision

GT4 = {"q1": "a", "q2": "b", "q3": "c", "q4": "d"}
# ranks: q1 right (P 1, R 1/4), q2 right (P 1, R 2/4), q5 wrong (P 2/3, R 2/4),
#        q3 right (P 3/4, R 3/4), q4 wrong ref (P 3/5, R 3/4)
PREDS4 = [("q1", "a", 0.9), ("q2", "b", 0.8), ("q5", "e", 0.7), ("q3", "c", 0.6), ("q4", "x", 0.5)]


def test_recall_at_precision_and_its_threshold():
    assert recall_at_precision(PREDS4, GT4, 0.9) == (0.5, 0.8)  # P>=0.9 only at the first two
    assert recall_at_precision(PREDS4, GT4, 1.0) == (0.5, 0.8)
    assert recall_at_precision(PREDS4, GT4, 0.75) == (0.75, 0.6)  # P 3/4 at score 0.6
    assert recall_at_precision(PREDS4, GT4, 0.6) == (0.75, 0.6)  # 0.5 also has R 3/4; first kept
    assert recall_at_precision(PREDS4, GT4, 1.01) == (0.0, None)  # never reached
    assert micro_ap(PREDS4, GT4) == pytest.approx((1 + 1 + 3 / 4) / 4)  # 0.6875


def test_recall_at_precision_does_not_split_ties():
    # 0.9 right (P 1, R 1/2); at 0.5 a wrong and a right tie: whole group -> P 2/3, R 1
    preds = [("q1", "r1", 0.9), ("q2", "r2", 0.5), ("q5", "e", 0.5)]
    assert recall_at_precision(preds, GT2, 0.9) == (0.5, 0.9)
    assert recall_at_precision(preds, GT2, 0.6) == (1.0, 0.5)


def test_recall_at_1_pessimistic_ties_and_non_matching_queries_ignored():
    # q1: right ref on top -> hit; q2: wrong ref on top -> miss; q3: right ties a wrong one -> miss;
    # q4 is not in the ground truth (ignored). 1 hit / 3 matching queries
    gt = {"q1": "a", "q2": "b", "q3": "c"}
    preds = [("q1", "a", 0.9), ("q1", "x", 0.3), ("q2", "x", 0.8), ("q2", "b", 0.7),
             ("q3", "c", 0.6), ("q3", "y", 0.6), ("q4", "z", 0.99)]
    assert recall_at_1(preds, gt) == pytest.approx(1 / 3)


# ---------------------------------------------------------------- recall at 1 % false positives


def test_fpr_threshold_without_ties():
    # 4 negatives, rate 1/4 -> at most floor(1) = 1 flagged; sorted 0.9, 0.7, 0.5, 0.2: the
    # threshold must exceed the 2nd (0.7): the next float above 0.7, which flags only 0.9
    t = threshold_at_false_positive_rate([0.2, 0.9, 0.5, 0.7], 0.25)
    assert t == np.nextafter(0.7, np.inf) and 0.7 < t < 0.9
    # 100 negatives 0.00 .. 0.99 at 1 %: 1 may be flagged, threshold just above the 2nd (0.98)
    assert threshold_at_false_positive_rate(np.arange(100) / 100, 0.01) == np.nextafter(0.98, np.inf)
    # floor(0.29 * 100) must be 29 despite 0.29 * 100 == 28.999999999999996: just above the 30th
    # highest of 99 .. 0, i.e. 70
    assert threshold_at_false_positive_rate(np.arange(100.0), 0.29) == np.nextafter(70.0, np.inf)


def test_fpr_threshold_with_ties_is_pessimistic():
    # 0.9 twice, 1 may be flagged: a threshold cannot take one of the two, so it goes above
    # both and flags none
    t = threshold_at_false_positive_rate([0.9, 0.9, 0.5, 0.2], 0.25)
    assert t == np.nextafter(0.9, np.inf)
    # rate 1/2 -> 2 may be flagged; sorted 0.9, 0.7, 0.7, 0.2: the 3rd is 0.7, so only 0.9 is
    # flagged (1 <= 2)
    t = threshold_at_false_positive_rate([0.9, 0.7, 0.7, 0.2], 0.5)
    assert t == np.nextafter(0.7, np.inf)
    assert threshold_at_false_positive_rate([], 0.01) == -math.inf  # no negatives: no constraint
    assert threshold_at_false_positive_rate([0.3], 0.01) == np.nextafter(0.3, np.inf)  # k = 0


def test_recall_at_fpr():
    # threshold just above 0.7 (first FPR case); matching queries: 0.95 right (counted), 0.8 right
    # (counted), 0.99 wrong (not), 0.7 right but below the threshold (not): 2/4
    recall, t = recall_at_fpr([0.95, 0.8, 0.99, 0.7], [True, True, False, True], [0.2, 0.9, 0.5, 0.7], 0.25)
    assert recall == pytest.approx(0.5) and t == np.nextafter(0.7, np.inf)
    assert recall_at_threshold([0.95, 0.8, 0.99, 0.7], [True, True, False, True], 0.7) == pytest.approx(0.75)
    assert recall_at_threshold([], [], 0.5) == 0.0


def test_top1_per_query_counts_queries_that_returned_nothing():
    # q1 matching, right on top (0.9); q2 matching, wrong on top (0.6); q3 non-matching, top 0.3;
    # q4 non-matching, returned nothing -> 0.0
    preds = [("q1", "r1", 0.9), ("q1", "x", 0.4), ("q2", "x", 0.6), ("q3", "y", 0.3)]
    pos_s, pos_c, neg_s = top1_per_query(preds, GT2, query_ids=["q1", "q2", "q3", "q4"])
    np.testing.assert_allclose(pos_s, [0.9, 0.6])
    assert pos_c.tolist() == [True, False]
    np.testing.assert_allclose(neg_s, [0.3, 0.0])
    pos_s, pos_c, neg_s = top1_per_query(preds, GT2)  # default ids: q4 unknown
    np.testing.assert_allclose(neg_s, [0.3])


# ---------------------------------------------------------------- segment AP (VSC2022)

GT_SEG = [("q", "r", 0.0, 10.0, 0.0, 10.0)]


def test_segment_ap_perfect_prediction():
    # P = R = 1 on both axes after the only prediction: AP = 1 * 1
    assert segment_ap([("q", "r", 0.0, 10.0, 0.0, 10.0, 0.7)], GT_SEG) == pytest.approx(1.0)
    # split in two, better half first: (P 1, R 1/2) then (P 1, R 1): 1 * 1/2 + 1 * 1/2
    preds = [SegmentMatch("q", "r", 0, 5, 0, 5, 2.0), SegmentMatch("q", "r", 5, 10, 5, 10, 1.0)]
    assert segment_ap(preds, GT_SEG) == pytest.approx(1.0)


def test_segment_ap_half_overlapping_prediction():
    # 5..15 on both axes vs 0..10: hit 5 of predicted 10 and of true 10 on each axis ->
    # P = sqrt(.5 * .5) = .5, R = .5: AP = .5 * .5
    assert segment_ap([("q", "r", 5.0, 15.0, 5.0, 15.0, 1.0)], GT_SEG) == pytest.approx(0.25)
    # right on the query axis (P = R = 1), half on the reference axis (P = R = 1/2): geometric
    # mean P = R = sqrt(1/2): AP = 1/2 (the plain product would give 1/4)
    assert segment_ap([("q", "r", 0.0, 10.0, 5.0, 15.0, 1.0)], GT_SEG) == pytest.approx(0.5)


def test_segment_ap_wrong_reference():
    # right times, wrong asset: no hits at all
    assert segment_ap([("q", "other", 0.0, 10.0, 0.0, 10.0, 1.0)], GT_SEG) == 0.0
    # a wrong asset ranked above the perfect one: first (P 0, R 0), then predicted 20 s per axis
    # of which 10 hit: P = 1/2, R = 1: AP = 1/2 * 1
    preds = [("q", "other", 0, 10, 0, 10, 2.0), ("q", "r", 0, 10, 0, 10, 1.0)]
    assert segment_ap(preds, GT_SEG) == pytest.approx(0.5)
    # the same two tied: evaluated once after both: also 1/2 (a tie cannot be ordered favourably)
    preds = [("q", "r", 0, 10, 0, 10, 1.0), ("q", "other", 0, 10, 0, 10, 1.0)]
    assert segment_ap(preds, GT_SEG) == pytest.approx(0.5)


def test_segment_ap_empty_predictions_and_unpredicted_queries():
    assert segment_ap([], GT_SEG) == 0.0
    assert segment_ap([("q", "r", 0, 10, 0, 10, 1.0)], []) == 0.0
    # two queries with 10 s of truth each, only q perfectly predicted: P 1, R 10/20 per axis: 1/2
    gt = [*GT_SEG, ("q2", "r", 0.0, 10.0, 20.0, 30.0)]
    assert segment_ap([("q", "r", 0, 10, 0, 10, 1.0)], gt) == pytest.approx(0.5)


def test_segment_ap_counts_only_truth_overlapped_in_both_axes():
    # two true segments (0..10 -> 0..10, 20..30 -> 20..30); predictions swap the reference times
    # (0..10 -> 20..30, 20..30 -> 0..10): each axis alone is covered, but no prediction overlaps
    # a true segment in the query x reference plane, so no hits: AP 0
    gt = [("q", "r", 0, 10, 0, 10), ("q", "r", 20, 30, 20, 30)]
    preds = [("q", "r", 0, 10, 20, 30, 1.0), ("q", "r", 20, 30, 0, 10, 1.0)]
    assert segment_ap(preds, gt) == 0.0
    # overlapping predictions count their union once: 0..8 and 4..10 -> 10 s predicted, 10 hit
    preds = [("q", "r", 0, 8, 0, 8, 1.0), ("q", "r", 4, 10, 4, 10, 1.0)]
    assert segment_ap(preds, GT_SEG) == pytest.approx(1.0)


# ---------------------------------------------------------------- time-axis overlap (video benchmark)


def test_union_overlap_merges_and_clips():
    assert union_overlap([], (0, 10)) == (0, 0)
    assert union_overlap([(0, 4), (2, 6), (8, 9)], (5, 20)) == (7, 2)  # union 0..6 + 8..9; overlap 5..6 + 8..9
    assert union_overlap([(3, 5)], (0, 0)) == (2, 0)


def test_overlap_precision_recall_counts_wrong_assets_as_predicted_length():
    # query 1: right asset, segments 0..4 + 2..6 (union 6 s) against truth 2..10: overlap 4 s;
    # a wrong asset predicted 3 s (no overlap). Query 2 (truth 0..10) returned nothing.
    predicted = [([(0, 4), (2, 6)], (2, 10)), ([(0, 3)], None)]
    precision, recall = overlap_precision_recall(predicted, truth_length=8 + 10)
    assert precision == pytest.approx(4 / (6 + 3)) and recall == pytest.approx(4 / 18)
    assert overlap_precision_recall([], 5.0) == (0.0, 0.0)  # nothing predicted: precision 0, not NaN
    with pytest.raises(InvalidRequestError, match="truth_length"):
        overlap_precision_recall(predicted, 0.0)
