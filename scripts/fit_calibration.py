"""Fit the score calibration of a descriptor on benchmark pairs, reproducibly.

    python scripts/fit_calibration.py ../shared/data/photos/photo ../shared/data/photos/astro

Pairs come from the image benchmark's own query path (:mod:`vecsim.bench.index`,
:mod:`vecsim.search`): the photos the descriptor was *trained* on (its ``*.training-files.txt``;
all photos for a descriptor without one) are split into references and non-matching photos, the
distractor folder is indexed too,
and every reference and non-matching photo is queried under the 14 standard edits, in a FLAT
index, with the raw cosine as score. Positives: each copy query's score for its original.
Negatives: every other asset a query returned (its top 5), i.e. exactly what a threshold must
reject. Isotonic regression, positives and negatives weighted 50/50, gives raw cosine ->
P(copy). The same pairs' PDQ ``exact_score`` (queries whose hash is reliable) give the PDQ part
(:func:`vecsim.calibration.fit_exact_part`). The benchmark then reports precision and recall at
fixed thresholds on photos the fit never saw (docs/calibration.md). The file goes to vecsim/descriptors/data/.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from vecsim.aggregate import TURN_PENALTY
from vecsim.bench.corpus import list_images, load_or_build_corpus, split_folder
from vecsim.bench.index import open_bench_index, search_queries
from vecsim.calibration import EXACT_FLOOR, Calibration, fit_calibration, fit_exact_part
from vecsim.descriptors import DEFAULT_DESCRIPTOR, load_descriptor
from vecsim.descriptors.efficientnet import shipped_file
from vecsim.descriptors.pdq import MIN_QUALITY
from vecsim.index_config import FlatIndex


def training_files(name: str, version: str) -> set[str] | None:
    path = shipped_file(name, version, "training-files.txt")
    return set(path.read_text().split()) if path.is_file() else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photos", type=Path)
    ap.add_argument("distractors", type=Path)
    ap.add_argument("--descriptor", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="calibration JSON path (default: the package's data folder)")
    ap.add_argument("--cache", type=Path, default=Path(".vecsim-bench-cache"), help="descriptor corpus cache folder")
    args = ap.parse_args(argv)

    name = args.descriptor or DEFAULT_DESCRIPTOR
    desc = load_descriptor(name, calibration=Calibration.linear(name, "unfitted"))
    train = training_files(desc.name, desc.version)
    others = {p.name for p in list_images(args.photos)} - train if train else set()
    split = split_folder(args.photos, args.distractors, exclude=others, seed=args.seed)
    print(f"{len(split.references)} references, {len(split.non_matching)} non-matching, "
          f"{len(split.distractors)} distractors", file=sys.stderr)
    corpus = load_or_build_corpus(desc, split, args.cache, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        with open_bench_index(corpus, uri=f"{tmp}/fit.db", index=FlatIndex(), collection="vecsim",
                              descriptor=desc) as (idx, _):
            results = search_queries(idx, corpus, top_k=5)
    pos, neg, pos_exact, neg_exact = [], [], [], []
    for ref, quality, out in zip(corpus.query_ref, corpus.query_pdq_quality, results):
        for asset in out:
            right = asset.task_id == f"ref{ref}"
            (pos if right else neg).append(asset.matches[0].similarity_score)
            if quality >= MIN_QUALITY:
                (pos_exact if right else neg_exact).append(asset.matches[0].exact_score)
    notes = {
        "fitted_on": f"{Path(args.photos).name}/: {'the descriptor training photos' if train else 'all photos'} "
                     f"({len(split.references)} references, {len(split.non_matching)} non-matching) + "
                     f"{Path(args.distractors).name}/ distractors, 14 standard edits, image query path, seed {args.seed}",
        "positives": len(pos),
        "negatives": len(neg),
        "weighting": "positives and negatives weighted 50/50",
        "turn_penalty": TURN_PENALTY,
        "exact_part": f"PDQ exact_score of the same pairs, queries of PDQ quality >= {MIN_QUALITY} "
                      f"({len(pos_exact)} positives, {len(neg_exact)} negatives), 0 below {EXACT_FLOOR}",
    }
    cal = fit_calibration(np.array(pos), np.array(neg), desc.name, desc.version, notes=notes)
    cal = fit_exact_part(cal, np.array(pos_exact), np.array(neg_exact))
    out = Path(args.out) if args.out else (
        Path(__file__).resolve().parents[1] / "vecsim" / "descriptors" / "data"
        / f"{desc.name}-v{desc.version}.calibration.json"
    )
    out.write_text(cal.to_json() + "\n")
    print(f"{len(pos)} positives, {len(neg)} negatives; wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
