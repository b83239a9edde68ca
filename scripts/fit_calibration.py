"""Fit (and check) the score calibration of a descriptor on real photos, reproducibly.

    python scripts/fit_calibration.py ../shared/data/photos/photo ../shared/data/photos/astro

Split: the photos are sorted and split in two halves (even / odd positions). Half A fits, half B
checks. For each half H the "index" holds H's photos plus the distractors; queries are H's photos
under the 14 standard edits (copies) and the other half's photos under the same edits (non-copies).
Pairs: a copy query with its original (positive); every query with the 5 closest indexed images
that are not its original (negatives: exactly what a threshold must reject). Search is exact
(brute force), the same as a FLAT index. The fitted file goes to vecsim/descriptors/data/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from vecsim.bench import list_images, load_rgb, make_queries
from vecsim.calibration import Calibration, fit_calibration
from vecsim.descriptors import DEFAULT_DESCRIPTOR, load_descriptor
from vecsim.edits import standard_edits

THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95)
NEGATIVES_PER_QUERY = 5


def pairs(desc, refs, other, distractor_vecs, seed):
    """(positive raw scores, negative raw scores, per-query top-5 (score, is_copy) lists)."""
    ref_vecs = desc.embed(refs)
    db = np.concatenate([ref_vecs, distractor_vecs])
    copies = make_queries(refs, standard_edits(seed))
    non_copies = make_queries(other, standard_edits(seed + 1))
    pos, neg, ranked = [], [], []
    for queries, is_copy in ((copies, True), (non_copies, False)):
        q = desc.embed([x.image for x in queries])
        s = q @ db.T
        for row, query in zip(s, queries):
            own = query.ref if is_copy else -1
            if is_copy:
                pos.append(row[own])
            order = np.argsort(-row)
            others = [j for j in order[: NEGATIVES_PER_QUERY + 1] if j != own][:NEGATIVES_PER_QUERY]
            neg.extend(row[others])
            ranked.append([(row[j], j == own) for j in order[:5]])
    return np.array(pos), np.array(neg), ranked, len(copies)


def precision_recall(cal: Calibration, ranked, n_copies):
    out = {}
    for t in THRESHOLDS:
        returned = [(cal(s) >= t, ok) for top in ranked for s, ok in top]
        kept = [ok for keep, ok in returned if keep]
        found = sum(any(ok and cal(s) >= t for s, ok in top) for top in ranked)
        out[str(t)] = {
            "precision": round(float(np.mean(kept)), 4) if kept else None,
            "recall": round(found / n_copies, 4),
            "returned_pairs": len(kept),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photos")
    ap.add_argument("distractors")
    ap.add_argument("--descriptor", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="calibration JSON path (default: the package's data folder)")
    args = ap.parse_args(argv)

    name = args.descriptor or DEFAULT_DESCRIPTOR
    desc = load_descriptor(name, calibration=Calibration.linear(name, "unfitted"))
    base = desc
    photos = [load_rgb(p) for p in list_images(args.photos)]
    half_a, half_b = photos[0::2], photos[1::2]
    distractor_vecs = desc.embed([load_rgb(p) for p in list_images(args.distractors)])
    print(f"{len(half_a)} + {len(half_b)} photos, {len(distractor_vecs)} distractors", file=sys.stderr)

    pos_a, neg_a, _, _ = pairs(desc, half_a, half_b, distractor_vecs, args.seed)
    _, _, ranked_b, n_copies_b = pairs(desc, half_b, half_a, distractor_vecs, args.seed + 10)
    notes = {
        "fitted_on": f"{Path(args.photos).name}/ even half ({len(half_a)} photos) + {Path(args.distractors).name}/ "
        f"distractors, 14 standard edits, seed {args.seed}",
        "positives": int(len(pos_a)),
        "negatives": int(len(neg_a)),
        "weighting": "positives and negatives weighted 50/50",
    }
    cal = fit_calibration(pos_a, neg_a, base.name, base.version, notes=notes)
    held_out = precision_recall(cal, ranked_b, n_copies_b)
    cal = Calibration(cal.descriptor_name, cal.descriptor_version, cal.x, cal.y, cal.method,
                      {**notes, "held_out_odd_half": held_out})
    out = Path(args.out) if args.out else (
        Path(__file__).resolve().parents[1] / "vecsim" / "descriptors" / "data"
        / f"{base.name}-v{base.version}.calibration.json"
    )
    out.write_text(cal.to_json() + "\n")
    print(json.dumps(held_out, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
