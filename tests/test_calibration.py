"""Calibration: isotonic fitting, monotone 0..1 maps, the shipped file."""

from __future__ import annotations

import numpy as np
import pytest

from vecsim.aggregate import QueryFrame, aggregate
from vecsim.calibration import EXACT_FLOOR, Calibration, fit_calibration, fit_exact_part, fit_geometric_part, isotonic
from vecsim.descriptors import load_descriptor
from vecsim.descriptors.pdq import MIN_QUALITY
from vecsim.store import AssetRecord, Hit


def test_isotonic_hand_computed():
    # labels 1,0 at increasing values violate monotonicity: pooled to their mean 0.5
    centres, levels = isotonic(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 1, 0, 1]))
    assert np.allclose(levels, [0.0, 0.5, 1.0]) and np.allclose(centres, [0.1, 0.25, 0.4])


def test_isotonic_ties_and_weights():
    centres, levels = isotonic(np.array([0.5, 0.5, 0.9]), np.array([1, 0, 1]), np.array([3.0, 1.0, 1.0]))
    assert np.all(np.diff(levels) >= 0) and levels[-1] == 1.0


def test_fit_is_monotone_in_unit_interval_and_exact_copy_is_one():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(0.85, 0.08, 500).clip(-1, 1), rng.normal(0.5, 0.1, 2000).clip(-1, 1)
    cal = fit_calibration(pos, neg, "d", "1")
    grid = np.linspace(-1, 1, 401)
    y = cal(grid)
    assert np.all(np.diff(y) >= 0) and y.min() >= 0 and y.max() <= 1
    assert cal(1.0) == 1.0 and cal(0.2) < 0.05 and cal(0.95) > 0.9
    # inverse is consistent with the forward map
    for s in (0.3, 0.5, 0.9):
        assert cal(cal.inverse(s)) >= s - 1e-9


def test_fit_needs_both_kinds():
    with pytest.raises(ValueError):
        fit_calibration(np.array([0.9]), np.array([]), "d", "1")


def test_invalid_knots_refused():
    with pytest.raises(ValueError):
        Calibration("d", "1", (0.0, 0.5, 0.4), (0.0, 0.5, 1.0))
    with pytest.raises(ValueError):
        Calibration("d", "1", (0.0, 1.0), (0.0, 1.2))


@pytest.mark.parametrize("name", ["efficientnet-lite0-gem-lw256", "efficientnet-lite0-gem"])
def test_every_shipped_calibration_is_monotone_in_0_1_and_says_what_it_was_fitted_on(name):
    d = load_descriptor(name)
    cal = d.calibration
    assert (cal.descriptor_name, cal.descriptor_version) == (d.name, d.version) and cal.method == "isotonic"
    assert Calibration.from_json(cal.to_json()) == cal
    raw = np.linspace(-1, 1, 2001)
    y = cal(raw)
    assert np.all(np.diff(y) >= 0) and y.min() >= 0 and y.max() <= 1
    assert cal(1.0) == 1.0 and cal(-1.0) == 0.0
    assert cal.notes["positives"] > 100 and cal.notes["negatives"] > 100 and "fitted_on" in cal.notes


def _with_exact(rng: np.random.Generator) -> Calibration:
    cal = fit_calibration(rng.normal(0.8, 0.1, 400).clip(-1, 1), rng.normal(0.45, 0.1, 1600).clip(-1, 1), "d", "1")
    # PDQ exact_score: copies the hash sees sit near 1, copies it does not (crops) and other
    # photos near 0 (unrelated hashes are ~128 bits apart)
    pos = np.concatenate([rng.normal(0.9, 0.06, 300), rng.normal(0.05, 0.05, 100)]).clip(0, 1)
    neg = rng.normal(0.05, 0.06, 1600).clip(0, 1)
    return fit_exact_part(cal, pos, neg)


def test_the_pdq_part_is_monotone_zero_below_the_floor_and_one_for_identical_hashes():
    cal = _with_exact(np.random.default_rng(1))
    grid = np.linspace(0, 1, 1001)
    y = np.array([cal.score(-1.0, e) for e in grid])
    assert np.all(np.diff(y) >= 0) and y.min() == 0.0 and y.max() == 1.0
    assert np.all(y[grid < EXACT_FLOOR] == 0.0)  # weak hash evidence never lifts a score
    assert cal.score(-1.0, 1.0) == 1.0 and cal.score(-1.0, 0.8) > 0.9
    assert Calibration.from_json(cal.to_json()) == cal


def test_score_is_the_larger_of_the_two_and_ignores_an_unreliable_hash():
    cal = _with_exact(np.random.default_rng(2))
    assert cal.score(0.3, None) == pytest.approx(float(cal(0.3)))
    assert cal.score(0.3, 0.95) > 0.9 > float(cal(0.3))
    assert cal.score(0.95, 0.0) == pytest.approx(float(cal(0.95)))
    assert Calibration.linear("d", "1").score(0.3, 1.0) == pytest.approx(0.3)  # no PDQ part: cosine only


def test_a_pdq_part_needs_a_distance_that_separates():
    cal = fit_calibration(np.array([0.9, 0.8]), np.array([0.2, 0.3]), "d", "1")
    with pytest.raises(ValueError, match="separates"):
        fit_exact_part(cal, np.array([0.1, 0.2]), np.array([0.1, 0.3]))


def test_the_default_descriptor_ships_a_pdq_part():
    cal = load_descriptor(None).calibration
    assert cal.exact_x and cal.score(-1.0, EXACT_FLOOR - 0.01) == 0.0 and cal.score(-1.0, 1.0) == 1.0


def _frame(quality: int) -> tuple[QueryFrame, dict[str, AssetRecord]]:
    stored = "f" * 64
    hit = Hit("a", "g", 0, 0.0, 1.0, stored, 0.3)
    return QueryFrame(0.0, (stored,), [hit], quality), {"a": AssetRecord("a", "g", "image", "a.jpg", 0.0, 1)}


@pytest.mark.parametrize("quality, lifted", [(100, True), (MIN_QUALITY - 1, False)])
def test_aggregate_lets_a_reliable_query_hash_lift_the_similarity(quality, lifted):
    cal = _with_exact(np.random.default_rng(3))
    frame, records = _frame(quality)
    (asset,) = aggregate([frame], records, cal, threshold=0.0, top_k=5, interval=1.0, query_duration=0.0)
    match = asset.matches[0]
    assert match.exact_score == 1.0
    assert match.similarity_score == (1.0 if lifted else pytest.approx(float(cal(0.3)), abs=1e-6))


def _with_geometry(rng: np.random.Generator) -> Calibration:
    """Copies: cosine ~0.75, mostly verified; look-alikes: cosine ~0.6 (as high as many
    copies), rarely verified; unrelated photos: cosine ~0.3, never verified."""
    n_pos, n_like, n_other = 400, 400, 1200
    raw = np.concatenate([rng.normal(0.75, 0.1, n_pos), rng.normal(0.6, 0.1, n_like), rng.normal(0.3, 0.1, n_other)])
    inliers = np.concatenate([np.where(rng.random(n_pos) < 0.9, rng.integers(20, 160, n_pos), rng.integers(0, 8, n_pos)),
                              np.where(rng.random(n_like) < 0.01, 12, rng.integers(0, 8, n_like)), np.zeros(n_other, int)])
    labels = np.concatenate([np.ones(n_pos, bool), np.zeros(n_like + n_other, bool)])
    cal = fit_calibration(raw[labels], raw[~labels], "d", "1")
    return fit_geometric_part(cal, raw.clip(-1, 1), inliers, labels, (10,))


def test_the_geometric_part_separates_verified_from_refuted_matches_at_the_same_cosine():
    cal = _with_geometry(np.random.default_rng(4))
    assert cal.geometric and cal.inlier_cuts == (10,)
    assert Calibration.from_json(cal.to_json()) == cal
    grid = np.linspace(-1, 1, 401)
    verified = np.array([cal.score(r, None, 50) for r in grid])
    refuted = np.array([cal.score(r, None, 3) for r in grid])
    for y in (verified, refuted):
        assert np.all(np.diff(y) >= 0) and 0.0 <= y.min() and y[-1] == 1.0
    assert refuted[0] < 0.01  # logistic curves: no copy ever scores at cosine -1 unless verified
    assert np.all(verified >= refuted - 1e-12)  # verification never lowers a score
    assert cal.score(0.6, None, 50) > 0.9 > 0.5 > cal.score(0.6, None, 3)  # a look-alike's cosine
    assert cal.score(0.6, None, None) == pytest.approx(float(cal(0.6)))  # not verified: the cosine curve
    assert cal.verify_floor(0.5) < 0.6 and Calibration.linear("d", "1").verify_floor() == float("inf")


def test_three_strata_rise_with_the_inliers():
    rng = np.random.default_rng(6)
    raw = np.concatenate([rng.normal(0.75, 0.1, 600), rng.normal(0.55, 0.12, 1500)]).clip(-1, 1)
    labels = np.arange(2100) < 600
    inliers = np.where(labels, rng.integers(0, 160, 2100), rng.integers(0, 25, 2100))
    cal = fit_geometric_part(fit_calibration(raw[labels], raw[~labels], "d", "1"), raw, inliers, labels, (8, 20))
    assert Calibration.from_json(cal.to_json()) == cal and len(cal.strata_x) == 3
    for r in np.linspace(-1, 1, 81):
        assert cal.score(r, None, 3) <= cal.score(r, None, 12) <= cal.score(r, None, 100)
    with pytest.raises(ValueError, match="one curve per stratum"):
        Calibration("d", "1", (0.0, 1.0), (0.0, 1.0), inlier_cuts=(8, 20), strata_x=((0.0, 1.0),), strata_y=((0.0, 1.0),))


def test_a_geometric_part_needs_both_strata():
    cal = fit_calibration(np.array([0.9, 0.8]), np.array([0.2, 0.3]), "d", "1")
    with pytest.raises(ValueError, match="no pair falls"):
        fit_geometric_part(cal, np.array([0.9, 0.2]), np.array([50, 60]), np.array([True, False]), (10,))


def test_the_default_descriptor_ships_a_geometric_part_stricter_than_its_cosine_curve():
    cal = load_descriptor(None).calibration
    assert cal.geometric and min(cal.inlier_cuts) >= 8
    raw = np.linspace(0.3, 0.95, 14)
    assert all(cal.score(r, None, 0) <= cal.score(r, None, 200) for r in raw)
    assert "look-alike" in cal.notes["fitted_on"] or "geometric_part" in cal.notes


def test_aggregate_scores_a_verified_hit_above_a_refuted_one():
    cal = _with_geometry(np.random.default_rng(5))
    hit = Hit("a", "g", 0, 0.0, 1.0, "0" * 64, 0.6)
    records = {"a": AssetRecord("a", "g", "image", "a.jpg", 0.0, 1)}

    def score(inliers) -> float:
        frame = QueryFrame(0.0, ("f" * 64,), [hit], 100, inliers)
        (asset,) = aggregate([frame], records, cal, threshold=0.0, top_k=5, interval=1.0, query_duration=0.0)
        return asset.matches[0].similarity_score

    assert score({("a", "g", 0): 60}) == pytest.approx(cal.score(0.6, None, 60), abs=1e-6)
    assert score({}) == pytest.approx(cal.score(0.6, None, 0), abs=1e-6)  # absent: refuted
    assert score(None) == pytest.approx(float(cal(0.6)), abs=1e-6)  # no verification made
    assert score({("a", "g", 0): 60}) > score({})


def test_an_asset_verified_once_counts_its_other_seconds_as_weakly_verified():
    """A video query: one second lines up with the asset (verified), another does not (moving
    content, a crop): the asset is the same footage, so the second counts as weakly verified; an
    asset no second verifies keeps the refuted curve."""
    cal = _with_geometry(np.random.default_rng(7))
    records = {t: AssetRecord(t, "g", "video", f"{t}.mp4", 10.0, 10) for t in ("a", "b")}
    frames = [QueryFrame(0.0, ("f" * 64,), [Hit("a", "g", 0, 0.0, 1.0, "0" * 64, 0.8), Hit("b", "g", 0, 0.0, 1.0, "0" * 64, 0.8)],
                         100, {("a", "g", 0): 120, ("b", "g", 0): 3}),
              QueryFrame(1.0, ("f" * 64,), [Hit("a", "g", 1, 1.0, 2.0, "0" * 64, 0.7), Hit("b", "g", 1, 1.0, 2.0, "0" * 64, 0.7)],
                         100, {("a", "g", 1): 3, ("b", "g", 1): 3})]
    out = {a.task_id: a for a in aggregate(frames, records, cal, threshold=0.0, top_k=5, interval=1.0,
                                           query_duration=2.0)}
    second = {a: {m.query_timestamp: m.similarity_score for m in out[a].matches}[1.0] for a in out}
    assert second["a"] == pytest.approx(cal.score(0.7, None, cal.inlier_cuts[0]), abs=1e-6)
    assert second["b"] == pytest.approx(cal.score(0.7, None, 3), abs=1e-6)
    assert second["b"] < second["a"]
