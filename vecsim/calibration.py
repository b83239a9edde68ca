"""Score calibration: a monotone map from a descriptor's raw cosine to ``similarity_score`` in [0, 1].

A calibration is fitted once per descriptor version on labelled pairs (positives: an edited copy
and its original; negatives: a query and the closest *different* photos the index returns, i.e.
the hard negatives a threshold has to reject) with isotonic regression, so that
``similarity_score`` reads as the probability that a returned match is a true copy. It is stored
as knots of a piecewise-linear function, anchored so that a raw score of 1.0 (the same pixels)
maps to 1.0. The file ships inside the package next to the descriptor it belongs to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Calibration:
    descriptor_name: str
    descriptor_version: str
    x: tuple[float, ...]  # raw-score knots, increasing
    y: tuple[float, ...]  # calibrated values, non-decreasing, in [0, 1]
    method: str = "isotonic"
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        x, y = np.asarray(self.x), np.asarray(self.y)
        if len(x) < 2 or len(x) != len(y):
            raise ValueError("a calibration needs at least two (x, y) knots of equal count")
        if np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0):
            raise ValueError("calibration knots must be increasing in x and non-decreasing in y")
        if y.min() < 0 or y.max() > 1:
            raise ValueError("calibrated values must lie in [0, 1]")

    def __call__(self, raw: np.ndarray | float) -> np.ndarray:
        return np.clip(np.interp(raw, self.x, self.y), 0.0, 1.0)

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
                "notes": self.notes,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        d = json.loads(text)
        return cls(
            descriptor_name=d["descriptor_name"],
            descriptor_version=d["descriptor_version"],
            x=tuple(d["x"]),
            y=tuple(d["y"]),
            method=d.get("method", "isotonic"),
            notes=d.get("notes", {}),
        )

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        return cls.from_json(Path(path).read_text())

    @classmethod
    def linear(cls, descriptor_name: str, descriptor_version: str) -> Calibration:
        """Raw cosine clipped to [0, 1]: explicitly *uncalibrated*, for descriptors without a fit."""
        return cls(descriptor_name, descriptor_version, (0.0, 1.0), (0.0, 1.0), method="linear")


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
    pos, neg = np.asarray(positives, float), np.asarray(negatives, float)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("calibration needs positive and negative pairs")
    values = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    weights = np.concatenate([np.full(len(pos), 0.5 / len(pos)), np.full(len(neg), 0.5 / len(neg))])
    centres, levels = isotonic(values, labels, weights)
    # Knots: each block's centre; anchors below the data (0) and at the identical-copy score (1).
    xs = [min(-1.0, float(centres[0]) - 1e-3)] + list(centres)
    ys = [0.0] + list(levels)
    if xs[-1] < 1.0:
        xs.append(1.0)
        ys.append(1.0)
    else:
        ys[-1] = 1.0
    xs_arr, ys_arr = np.asarray(xs), np.maximum.accumulate(np.clip(ys, 0, 1))
    keep = np.concatenate([[True], np.diff(xs_arr) > 1e-9])
    return Calibration(
        descriptor_name,
        descriptor_version,
        tuple(float(a) for a in xs_arr[keep]),
        tuple(float(b) for b in ys_arr[keep]),
        notes=notes or {},
    )
