"""Calibration: isotonic fitting, monotone 0..1 maps, the shipped file."""

from __future__ import annotations

import numpy as np
import pytest

from vecsim.calibration import Calibration, fit_calibration, isotonic
from vecsim.descriptors import load_descriptor


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
