"""Score calibration: a monotone map from a descriptor's raw cosine to ``similarity_score`` in [0, 1].

A calibration is fitted once per descriptor version on labelled pairs (positives: an edited copy
and its original; negatives: a query and the closest *different* photos the index returns, i.e.
the hard negatives a threshold has to reject) with isotonic regression, so that
``similarity_score`` reads as the probability that a returned match is a true copy. It is stored
as knots of a piecewise-linear function, anchored so that a raw score of 1.0 (the same pixels)
maps to 1.0. The file ships inside the package next to the descriptor it belongs to.

A calibration can also map the PDQ ``exact_score`` of a match to P(copy), fitted on the same
pairs. PDQ shrugs off what hurts an embedding most (heavy blur, brightness, re-compression), so
when the query frame's hash is reliable ``similarity_score`` is the larger of the two
probabilities (:meth:`Calibration.score`). Only strong PDQ evidence counts: below
``EXACT_FLOOR`` (a 64-bit distance, twice Meta's match threshold and eight standard deviations
from unrelated images) or where the fitted probability is under one half, the PDQ part is 0, so
it can raise a copy the hash recognises and never lifts an unrelated image.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CalibrationError

#: ``exact_score`` (``1 - hamming / 128``) below which the PDQ part of a calibration is 0.
EXACT_FLOOR = 0.5
#: Fitted P(copy) below which the PDQ part is 0: a hash distance alone never lifts a score to
#: "unsure".
EXACT_MIN_LEVEL = 0.5


@dataclass(frozen=True)
class Calibration:
    descriptor_name: str
    descriptor_version: str
    x: tuple[float, ...]  # raw-score knots, increasing
    y: tuple[float, ...]  # calibrated values, non-decreasing, in [0, 1]
    method: str = "isotonic"
    notes: dict[str, Any] = field(default_factory=dict)
    exact_x: tuple[float, ...] = ()  # PDQ exact_score knots, increasing (empty: no PDQ part)
    exact_y: tuple[float, ...] = ()  # P(copy) at those knots, non-decreasing, in [0, 1]
    #: The geometric part (empty: none): the inlier counts that cut matches into strata by their
    #: geometric verification (RANSAC inliers of their local features, :mod:`vecsim.descriptors.local`),
    #: and for each stratum (fewer inliers than the first cut, up to the second, ..., from the last
    #: cut on) the knots of its raw cosine -> P(copy) curve.
    inlier_cuts: tuple[int, ...] = ()
    strata_x: tuple[tuple[float, ...], ...] = ()
    strata_y: tuple[tuple[float, ...], ...] = ()

    def __post_init__(self) -> None:
        _check_knots(self.x, self.y)
        if self.exact_x or self.exact_y:
            _check_knots(self.exact_x, self.exact_y)
        if self.inlier_cuts or self.strata_x or self.strata_y:
            if list(self.inlier_cuts) != sorted(set(self.inlier_cuts)) or min(self.inlier_cuts) < 1:
                raise CalibrationError("inlier cuts must be distinct, increasing and at least 1")
            if not len(self.strata_x) == len(self.strata_y) == len(self.inlier_cuts) + 1:
                raise CalibrationError("a geometric part needs one curve per stratum: one more than its cuts")
            for xs, ys in zip(self.strata_x, self.strata_y):
                _check_knots(xs, ys)

    @property
    def geometric(self) -> bool:
        """Whether the calibration scores matches by their geometric verification too."""
        return bool(self.inlier_cuts)

    def __call__(self, raw: np.ndarray | float) -> np.ndarray:
        return np.clip(np.interp(raw, self.x, self.y), 0.0, 1.0)

    def score(self, raw: float, exact: float | None = None, inliers: int | None = None) -> float:
        """``similarity_score`` of a match: P(copy) of its raw cosine, or of its PDQ ``exact``
        score where that is higher (``exact=None``: the query hash is unreliable).

        ``inliers``: the match's geometric verification (RANSAC inliers of its local features),
        or None where none was made (the collection keeps no local features): then the cosine
        curve fitted on all pairs, look-alikes included, applies; with it, the curve of its
        stratum of inliers."""
        if inliers is None or not self.geometric:
            s = float(self(raw))
        else:
            i = bisect.bisect_right(self.inlier_cuts, inliers)
            s = float(np.interp(raw, self.strata_x[i], self.strata_y[i]))
        if exact is not None and self.exact_x:
            s = max(s, float(np.interp(exact, self.exact_x, self.exact_y)))
        return min(1.0, max(0.0, s))

    def verify_floor(self, threshold: float = 0.0) -> float:
        """The smallest raw cosine at which the best-verified match can reach ``threshold`` (at
        least a hundredth): matches below it are not worth a geometric verification."""
        if not self.geometric:
            return float("inf")
        top = Calibration(self.descriptor_name, self.descriptor_version, self.strata_x[-1], self.strata_y[-1])
        return top.inverse(max(0.01, threshold))

    def inverse(self, score: float) -> float:
        """The smallest raw score whose calibrated value reaches ``score`` (for store-side pruning)."""
        x, y = np.asarray(self.x), np.asarray(self.y)
        if score <= y[0]:
            return float(x[0])
        if score > y[-1]:
            return float("inf")
        i = int(np.searchsorted(y, score, side="left"))
        if y[i] == y[i - 1]:
            return float(x[i])
        return float(x[i - 1] + (score - y[i - 1]) * (x[i] - x[i - 1]) / (y[i] - y[i - 1]))

    # --- files -------------------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(
            {
                "descriptor_name": self.descriptor_name,
                "descriptor_version": self.descriptor_version,
                "method": self.method,
                "x": list(self.x),
                "y": list(self.y),
                **({"exact": {"x": list(self.exact_x), "y": list(self.exact_y)}} if self.exact_x else {}),
                **({"geometric": {"inlier_cuts": list(self.inlier_cuts),
                                  "strata": [{"x": list(x), "y": list(y)} for x, y in zip(self.strata_x, self.strata_y)]}}
                   if self.geometric else {}),
                "notes": self.notes,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        d = json.loads(text)
        geo = d.get("geometric", {})
        return cls(
            descriptor_name=d["descriptor_name"],
            descriptor_version=d["descriptor_version"],
            x=tuple(d["x"]),
            y=tuple(d["y"]),
            method=d.get("method", "isotonic"),
            notes=d.get("notes", {}),
            exact_x=tuple(d.get("exact", {}).get("x", ())),
            exact_y=tuple(d.get("exact", {}).get("y", ())),
            inlier_cuts=tuple(int(c) for c in geo.get("inlier_cuts", ())),
            strata_x=tuple(tuple(c["x"]) for c in geo.get("strata", ())),
            strata_y=tuple(tuple(c["y"]) for c in geo.get("strata", ())),
        )

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        return cls.from_json(Path(path).read_text())

    @classmethod
    def linear(cls, descriptor_name: str, descriptor_version: str) -> Calibration:
        """Raw cosine clipped to [0, 1]: explicitly *uncalibrated*, for descriptors without a fit."""
        return cls(descriptor_name, descriptor_version, (0.0, 1.0), (0.0, 1.0), method="linear")


def _check_knots(x_knots: tuple[float, ...], y_knots: tuple[float, ...]) -> None:
    x, y = np.asarray(x_knots), np.asarray(y_knots)
    if len(x) < 2 or len(x) != len(y):
        raise CalibrationError("a calibration needs at least two (x, y) knots of equal count")
    if np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0):
        raise CalibrationError("calibration knots must be increasing in x and non-decreasing in y")
    if y.min() < 0 or y.max() > 1:
        raise CalibrationError("calibrated values must lie in [0, 1]")


def isotonic(values: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators: the non-decreasing step function of ``values`` closest (weighted
    least squares) to ``labels``. Returns the block centres (mean value) and block levels."""
    order = np.argsort(values, kind="mergesort")
    v = np.asarray(values, dtype=np.float64)[order]
    t = np.asarray(labels, dtype=np.float64)[order]
    w = np.ones_like(t) if weights is None else np.asarray(weights, dtype=np.float64)[order]
    levels: list[float] = []
    wsum: list[float] = []
    vsum: list[float] = []
    for ti, wi, vi in zip(t, w, v):
        levels.append(ti)
        wsum.append(wi)
        vsum.append(vi * wi)
        while len(levels) > 1 and levels[-2] >= levels[-1]:
            l2, w2, s2 = levels.pop(), wsum.pop(), vsum.pop()
            w1 = wsum[-1]
            levels[-1] = (levels[-1] * w1 + l2 * w2) / (w1 + w2)
            wsum[-1] = w1 + w2
            vsum[-1] += s2
    centres = np.asarray(vsum) / np.asarray(wsum)
    return centres, np.asarray(levels)


def fit_calibration(
    positives: np.ndarray,
    negatives: np.ndarray,
    descriptor_name: str,
    descriptor_version: str,
    *,
    notes: dict[str, Any] | None = None,
) -> Calibration:
    """Fit raw score -> P(copy) on labelled pairs, with positives and negatives weighted equally
    in total (so the curve does not depend on how many pairs of each kind were drawn)."""
    xs, ys = _fit_knots(positives, negatives, low=-1.0)
    return Calibration(descriptor_name, descriptor_version, xs, ys, notes=notes or {})


def fit_exact_part(calibration: Calibration, positives: np.ndarray, negatives: np.ndarray) -> Calibration:
    """``calibration`` with a PDQ part fitted on the ``exact_score`` of the same kind of pairs:
    isotonic P(copy), set to 0 below :data:`EXACT_FLOOR` and wherever it is under
    :data:`EXACT_MIN_LEVEL`, 1.0 for identical hashes."""
    xs, ys = _fit_knots(positives, negatives, low=0.0)
    fitted = Calibration(calibration.descriptor_name, calibration.descriptor_version, xs, ys)
    start = max(EXACT_FLOOR, fitted.inverse(EXACT_MIN_LEVEL))
    if start > 1.0 or not np.any(np.asarray(positives, float) >= start):
        raise CalibrationError("no PDQ distance separates copies from other photos in these pairs")
    # 0 up to just below ``start``, then the fitted curve
    x_out = [0.0, start - 1e-3, start] + [x for x in xs if x > start + 1e-9]
    y_out = [0.0, 0.0] + [float(fitted(x)) for x in x_out[2:]]
    return replace(calibration, exact_x=tuple(x_out), exact_y=tuple(y_out))


def _fit_knots(positives: np.ndarray, negatives: np.ndarray, low: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Isotonic raw -> P(copy) knots, positives and negatives weighted equally in total (so the
    curve does not depend on how many pairs of each kind were drawn), anchored at 0 below the
    data (at most ``low``) and at 1 for the identical-copy score 1.0."""
    pos, neg = np.asarray(positives, float), np.asarray(negatives, float)
    if len(pos) == 0 or len(neg) == 0:
        raise CalibrationError("calibration needs positive and negative pairs")
    values = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    weights = np.concatenate([np.full(len(pos), 0.5 / len(pos)), np.full(len(neg), 0.5 / len(neg))])
    return _weighted_knots(values, labels, weights, low)


def _weighted_knots(values: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                    low: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Weighted isotonic knots, anchored at 0 below the data (at most ``low``) and at 1 for 1.0."""
    centres, levels = isotonic(values, np.asarray(labels, float), weights)
    xs = [min(low, float(centres[0]) - 1e-3)] + list(centres)
    ys = [0.0] + list(levels)
    if xs[-1] < 1.0:
        xs.append(1.0)
        ys.append(1.0)
    else:
        ys[-1] = 1.0
    xs_arr, ys_arr = np.asarray(xs), np.maximum.accumulate(np.clip(ys, 0, 1))
    keep = np.concatenate([[True], np.diff(xs_arr) > 1e-9])
    return tuple(float(a) for a in xs_arr[keep]), tuple(float(b) for b in ys_arr[keep])


def fit_geometric_part(calibration: Calibration, raw: np.ndarray, inliers: np.ndarray, labels: np.ndarray,
                       inlier_cuts: tuple[int, ...]) -> Calibration:
    """``calibration`` with a geometric part fitted on pairs (``raw`` cosine, RANSAC ``inliers``,
    ``labels`` 1 for a copy): raw -> P(copy) within each stratum of inliers that ``inlier_cuts``
    make, a logistic curve in the cosine (Platt scaling, :func:`_logistic_knots`): a stratum
    such as "refuted" holds few copies, and isotonic regression would jump to 1 past the last
    wrong pair it saw. Positives and negatives are weighted 50/50 over *all* pairs, so each curve
    is P(copy | cosine, verification) at even odds, like the cosine curve; except in a middle
    stratum (weakly verified: as many chance agreements on texture and look-alikes sharing a
    building as copies), where they are weighted 50/50 among its own pairs, so that its curve
    asks the cosine to agree too. Each stratum's curve is at least the one below it at every
    cosine (more inliers never lower a score)."""
    raw, inliers, labels = np.asarray(raw, float), np.asarray(inliers), np.asarray(labels, bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise CalibrationError("calibration needs positive and negative pairs")
    weights = np.where(labels, 0.5 / n_pos, 0.5 / n_neg)
    stratum = np.searchsorted(np.asarray(inlier_cuts), inliers, side="right")
    curves: list[tuple[tuple[float, ...], tuple[float, ...]]] = []
    for i in range(len(inlier_cuts) + 1):
        part = stratum == i
        if not part.any():
            raise CalibrationError(f"no pair falls in inlier stratum {i} of cuts {list(inlier_cuts)}")
        w = weights[part]
        if 0 < i < len(inlier_cuts):  # a middle (weak) stratum: even odds among its own pairs
            pos = labels[part]
            w = np.where(pos, 0.5 / max(1, pos.sum()), 0.5 / max(1, (~pos).sum()))
        xs, ys = _logistic_knots(raw[part], labels[part], w)
        if curves:  # at least the stratum below: their maximum, on the knots of both
            knots = np.union1d(xs, curves[-1][0])
            ys = tuple(float(y) for y in np.maximum(np.interp(knots, xs, ys), np.interp(knots, *curves[-1])))
            xs = tuple(float(x) for x in knots)
        curves.append((xs, ys))
    return replace(calibration, inlier_cuts=tuple(int(c) for c in inlier_cuts),
                   strata_x=tuple(c[0] for c in curves), strata_y=tuple(c[1] for c in curves))


#: Knots of a logistic curve: every 0.02 of raw cosine.
_LOGISTIC_GRID = np.round(np.linspace(-1.0, 1.0, 101), 6)
#: L2 penalty on the logistic slope (raw cosine units), so that a stratum of nearly only copies
#: (or only other photos) gets a finite curve.
LOGISTIC_L2 = 1e-3


def _logistic_knots(values: np.ndarray, labels: np.ndarray, weights: np.ndarray
                    ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Weighted logistic regression of ``labels`` on ``values`` (Newton's method, a small L2
    penalty on the slope), as knots on :data:`_LOGISTIC_GRID`, anchored at 1 for 1.0."""
    x, t, w = np.asarray(values, float), np.asarray(labels, float), np.asarray(weights, float)
    w = w / w.sum()
    prior = float(np.clip((w * t).sum(), 1e-6, 1 - 1e-6))
    beta = np.array([np.log(prior / (1 - prior)), 0.0])
    design = np.stack([np.ones_like(x), x], axis=1)
    penalty = np.diag([0.0, LOGISTIC_L2])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(design @ beta)))
        grad = design.T @ (w * (p - t)) + penalty @ beta
        hess = (design * (w * p * (1 - p))[:, None]).T @ design + penalty
        step = np.linalg.solve(hess + 1e-12 * np.eye(2), grad)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    ys = 1.0 / (1.0 + np.exp(-(beta[0] + beta[1] * _LOGISTIC_GRID)))
    ys[-1] = 1.0  # the same pixels
    ys = np.maximum.accumulate(np.clip(ys, 0.0, 1.0))
    return tuple(float(v) for v in _LOGISTIC_GRID), tuple(float(v) for v in ys)

