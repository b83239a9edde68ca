"""Fit the score calibration of a descriptor on benchmark pairs, reproducibly.

    python scripts/fit_calibration.py ../shared/data/photos/photo ../shared/data/photos/astro \
        --videos clips-fit --extra-distractors 10000 --all-references

(the shipped one: docs/calibration.md says which five clips ``clips-fit`` holds). Pairs come
from the image benchmark's own query path (:mod:`vecsim.bench.index`, :mod:`vecsim.search`): the
photos the descriptor was *trained* on (its ``*.training-files.txt``; all photos for a
descriptor without one) are the references (``--all-references``; else half of them, the other
half non-matching photos), the distractor folder and ``--extra-distractors`` frames are indexed
too, and every reference (and non-matching photo) is queried under the 14 standard edits, plus
the look-alike seconds of the ``--videos`` clips' shots, in a FLAT index.

- The cosine curve: positives are each copy query's raw cosine for its original, negatives every
  other asset a query returned (its top 5: look-alikes among them), isotonic regression with
  positives and negatives weighted 50/50. The PDQ part: the same pairs' ``exact_score``
  (queries whose hash is reliable), :func:`vecsim.calibration.fit_exact_part`.
- The geometric part: every hit a query verifies by its keypoints (raw cosine, RANSAC inliers),
  three strata cut by :func:`strata_cuts`, :func:`vecsim.calibration.fit_geometric_part`.

The benchmark then reports precision and recall at fixed thresholds on the photos and clips the
fit never saw (docs/calibration.md). The file goes to vecsim/descriptors/data/.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from vecsim.aggregate import TURN_PENALTY
from vecsim.bench.corpus import list_images, list_videos, load_or_build_corpus, split_folder
from vecsim.bench.index import open_bench_index, query_batches, search_queries
from vecsim.search import search_frames
from vecsim.calibration import EXACT_FLOOR, Calibration, fit_calibration, fit_exact_part, fit_geometric_part
from vecsim.descriptors import DEFAULT_DESCRIPTOR, load_descriptor
from vecsim.descriptors.efficientnet import shipped_file
from vecsim.descriptors.local import FORMAT as LOCAL_FORMAT
from vecsim.descriptors.pdq import MIN_QUALITY
from vecsim.index_config import FlatIndex


def training_files(name: str, version: str) -> set[str] | None:
    path = shipped_file(name, version, "training-files.txt")
    return set(path.read_text().split()) if path.is_file() else None


#: Matches fall in three strata by their RANSAC inliers: *refuted* below the fewest inliers that
#: at most this share of the fit's wrong pairs (other photos, look-alikes) reach; *verified* from
#: the fewest inliers at which at most this share of the fit's queries have any wrong hit (a query
#: verifies many candidates, and chance agreement on texture adds up); *weak* between.
FALSE_VERIFICATION_RATE = 0.001


def strata_cuts(inliers: np.ndarray, labels: np.ndarray, queries: np.ndarray,
                rate: float = FALSE_VERIFICATION_RATE) -> tuple[int, int]:
    """The two inlier cuts of :data:`FALSE_VERIFICATION_RATE` (per wrong pair, then per query)."""
    inliers, wrong = np.asarray(inliers), ~np.asarray(labels, bool)
    worst = np.zeros(int(np.max(queries)) + 1, dtype=np.int64)  # each query's most inliers on a wrong hit
    np.maximum.at(worst, np.asarray(queries)[wrong], inliers[wrong])
    top = int(inliers.max(initial=0)) + 2
    refuted = next(k for k in range(1, top) if (inliers[wrong] >= k).mean() <= rate)
    verified = next(k for k in range(refuted + 1, top) if (worst >= k).mean() <= rate)
    return refuted, verified


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photos", type=Path)
    ap.add_argument("distractors", type=Path)
    ap.add_argument("--descriptor", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="calibration JSON path (default: the package's data folder)")
    ap.add_argument("--cache", type=Path, default=Path(".vecsim-bench-cache"), help="descriptor corpus cache folder")
    ap.add_argument("--videos", type=Path, default=None,
                    help="clips whose shots give look-alike frames (another moment of the same shot) as negatives")
    ap.add_argument("--extra-distractors", type=int, default=0,
                    help="extra distractor frames (the --videos clips at 1 fps, and crops of them and of the distractors)")
    ap.add_argument("--all-references", action="store_true",
                    help="index every photo as a reference (no non-matching photos): each copy query's other "
                         "answers are then look-alikes and unrelated photos among all of them")
    ap.add_argument("--dump", type=Path, default=None, help="write the pairs (raw, inliers, labels) to this .npz")
    args = ap.parse_args(argv)

    name = args.descriptor or DEFAULT_DESCRIPTOR
    desc = load_descriptor(name, calibration=Calibration.linear(name, "unfitted"))
    train = training_files(desc.name, desc.version)
    others = {p.name for p in list_images(args.photos)} - train if train else set()
    split = split_folder(args.photos, args.distractors, exclude=others, seed=args.seed,
                         references=len(list_images(args.photos)) - len(others) if args.all_references else None)
    print(f"{len(split.references)} references, {len(split.non_matching)} non-matching, "
          f"{len(split.distractors)} distractors", file=sys.stderr)
    corpus = load_or_build_corpus(desc, split, args.cache, seed=args.seed, lookalike_videos=args.videos,
                                  videos=args.videos if args.extra_distractors else None,
                                  extra_distractors=args.extra_distractors)
    with tempfile.TemporaryDirectory() as tmp:
        with open_bench_index(corpus, uri=f"{tmp}/fit.db", index=FlatIndex(), collection="vecsim",
                              descriptor=desc) as (idx, _):
            results = search_queries(idx, corpus, top_k=5)
            # every hit a query verifies (the best frames of each candidate asset), as the query path does
            verified = search_frames(idx.store, query_batches(corpus), top_k=5, verify_floor=-np.inf)
    pos, neg, pos_exact, neg_exact = [], [], [], []
    for ref, quality, out in zip(corpus.query_ref, corpus.query_pdq_quality, results):
        for asset in out:
            right = asset.task_id == f"ref{ref}"
            match = asset.matches[0]
            (pos if right else neg).append(match.similarity_score)
            if quality >= MIN_QUALITY:
                (pos_exact if right else neg_exact).append(match.exact_score)
    raw, inliers, labels, edits, query_of = [], [], [], [], []
    for q, frame in enumerate(verified):
        ignore = corpus.query_ignore[q].split()
        for hit in frame.hits:
            key = (hit.task_id, hit.generation, hit.frame)
            if key in frame.inliers and hit.task_id not in ignore:
                raw.append(hit.raw_score)
                inliers.append(frame.inliers[key])
                labels.append(hit.task_id == f"ref{corpus.query_ref[q]}")
                edits.append(corpus.query_edit[q])
                query_of.append(q)
    notes = {
        "fitted_on": f"{Path(args.photos).name}/: {'the descriptor training photos' if train else 'all photos'} "
                     f"({len(split.references)} references, {len(split.non_matching)} non-matching) + "
                     f"{Path(args.distractors).name}/ distractors, 14 standard edits, image query path, seed {args.seed}"
                     + (f"; look-alike frames of the shots of {', '.join(p.name for p in list_videos(args.videos))}"
                        if args.videos else "")
                     + (f"; {len(corpus.frame_vectors)} extra distractor frames" if args.extra_distractors else ""),
        "positives": len(pos),
        "negatives": len(neg),
        "weighting": "positives and negatives weighted 50/50",
        "turn_penalty": TURN_PENALTY,
        "exact_part": f"PDQ exact_score of the same pairs, queries of PDQ quality >= {MIN_QUALITY} "
                      f"({len(pos_exact)} positives, {len(neg_exact)} negatives), 0 below {EXACT_FLOOR}",
    }
    if args.dump:
        np.savez(args.dump, raw=np.array(raw), inliers=np.array(inliers), labels=np.array(labels),
                 edits=np.array(edits), queries=np.array(query_of))
    cal = fit_calibration(np.array(pos), np.array(neg), desc.name, desc.version, notes=notes)
    cal = fit_exact_part(cal, np.array(pos_exact), np.array(neg_exact))
    inliers_arr = np.array(inliers)
    cuts = strata_cuts(inliers_arr, np.array(labels), np.array(query_of))
    cal = fit_geometric_part(cal, np.array(raw), inliers_arr, np.array(labels), cuts)
    per_stratum = np.bincount(np.searchsorted(cuts, inliers_arr, side="right"), minlength=3).tolist()
    cal = replace(cal, notes={**cal.notes, "geometric_part": (
        f"local features {LOCAL_FORMAT}: cosine -> P(copy) (logistic) per stratum of RANSAC inliers: refuted "
        f"(< {cuts[0]}), weak, verified (>= {cuts[1]}); {per_stratum} pairs: every hit a query verifies (the best "
        f"frames of each candidate asset). {cuts[0]}: the fewest inliers that at most {FALSE_VERIFICATION_RATE:.1%} "
        f"of the wrong pairs reach; {cuts[1]}: at most {FALSE_VERIFICATION_RATE:.1%} of the queries on any wrong hit")})
    out = Path(args.out) if args.out else (
        Path(__file__).resolve().parents[1] / "vecsim" / "descriptors" / "data"
        / f"{desc.name}-v{desc.version}.calibration.json"
    )
    out.write_text(cal.to_json() + "\n")
    print(f"{len(pos)} positives, {len(neg)} negatives; wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
