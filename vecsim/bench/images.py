"""Image benchmark in the DISC21 / ISC2021 protocol: how well does an index find edited copies?

From a folder of photos, :mod:`vecsim.bench.corpus` makes references, non-matching photos and
distractors (plus, optionally, tens of thousands of extra distractor frames), and queries: every
reference and every non-matching photo under the 14 edits of the Active Image Indexing table and
any optional edit families. The corpus is written straight into a store with the chosen index
config; every query then goes through the query path of :class:`~vecsim.CustomIndex`
(:mod:`vecsim.search`: search and per-asset aggregation, top 5 assets). Reported, per edit and overall (see
:mod:`vecsim.metrics` for the definitions):

- **Recall@1**: the right reference ranks first;
- **recall at 1 % flagged**: recall at the threshold that flags only 1 % of the non-matching
  queries (one threshold for all edits, what a moderation team gets);
- **micro-AP** (ISC2021: all predictions pooled, ties pessimistic) and **recall at 90 %
  precision** with its threshold;
- speed: milliseconds to embed one image (alone and batched), end-to-end query latency
  (decode, embed, PDQ, search, aggregate) median and p95; bytes per vector of the index.

Outputs: a markdown table, a JSON file, and PNG plots (precision-recall curve, per-edit bars).
Seeded and reproducible.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .. import metrics
from ..calibration import Calibration
from ..descriptors import Descriptor, load_descriptor
from .corpus import Corpus, load_or_build_corpus, load_rgb, split_folder
from .index import end_to_end_query_ms, open_bench_index, search_queries, vector_bytes
from .report import percentile, table, write_report  # noqa: F401  (write_report: re-exported)

#: The fraction of non-matching queries a moderation threshold may flag.
FLAGGED_RATE = 0.01
TARGET_PRECISION = 0.9
#: ``similarity_score`` thresholds whose precision and recall the report lists (docs/calibration.md).
THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95)


@dataclass
class ImageBenchReport:
    descriptor: str
    engine: str
    index: dict[str, Any]
    references: int
    non_matching: int
    distractor_images: int
    extra_distractor_vectors: int
    vectors: int
    queries: int
    seed: int
    rotations: bool
    per_edit: dict[str, dict[str, float]]  # edit -> recall_at_1, recall_at_1pct_flagged, micro_ap
    recall_at_1: float  # mean over edits
    recall_at_1pct_flagged: float  # mean over edits
    threshold_1pct_flagged: float
    micro_ap: float
    recall_at_p90: float
    threshold_p90: float | None
    embed_ms_single_median: float
    embed_ms_batched_median: float
    embed_images_per_s: float
    query_ms_median: float
    query_ms_p95: float
    code_bytes_per_vector: float
    graph_bytes_per_vector: float
    at_thresholds: dict[str, dict[str, float | None]] = field(default_factory=dict)
    #: look-alike pairs and the share of them flagged per threshold, per kind (:func:`lookalike_report`)
    lookalikes: dict[str, dict[str, float]] = field(default_factory=dict)
    verified: bool = False  # whether queries verified their candidates geometrically
    local_bytes_per_frame: float = 0.0  # mean packed local features of the indexed frames
    pr_curve: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_markdown(self) -> str:
        lines = table(["edit", "Recall@1", "recall at 1 % flagged", "micro-AP"],
                      [(edit, f"{m['recall_at_1']:.3f}", f"{m['recall_at_1pct_flagged']:.3f}", f"{m['micro_ap']:.3f}")
                       for edit, m in self.per_edit.items()])
        lines.append(f"| **mean / all** | **{self.recall_at_1:.3f}** | **{self.recall_at_1pct_flagged:.3f}** | "
                     f"**{self.micro_ap:.3f}** |")
        p90 = f"{self.threshold_p90:.3f}" if self.threshold_p90 is not None else "never reached"
        lines += [
            "",
            f"- descriptor {self.descriptor}; index {self.engine} {self.index}",
            f"- {self.references} references, {self.non_matching} non-matching photos, {self.distractor_images} "
            f"distractor images, {self.extra_distractor_vectors} extra distractor frames: {self.vectors} vectors; "
            f"{self.queries} queries{'' if self.rotations else ' (no quarter-turn variants)'}; seed {self.seed}",
            f"- micro-AP (all queries pooled) {self.micro_ap:.3f}; recall at 90 % precision {self.recall_at_p90:.3f} "
            f"(threshold {p90}); the 1 % flagged threshold is {self.threshold_1pct_flagged:.3f}",
            f"- embed one image: {self.embed_ms_single_median:.1f} ms alone, {self.embed_ms_batched_median:.1f} ms "
            f"batched ({self.embed_images_per_s:.1f} images/s)",
            f"- query end to end (decode + embed + PDQ + search + aggregate): median {self.query_ms_median:.1f} ms, "
            f"p95 {self.query_ms_p95:.1f} ms",
            f"- bytes per vector: {self.code_bytes_per_vector:.0f} (codes) + {self.graph_bytes_per_vector:.0f} (graph)",
        ]
        lines.append(f"- geometric verification: {'on' if self.verified else 'off'}; local features "
                     f"{self.local_bytes_per_frame:.0f} bytes per indexed frame")
        kinds = ("vs copies of other photos", "vs look-alikes", "vs unrelated images")

        def fmt(x: float | None) -> str:
            return "-" if x is None else f"{x:.3f}"

        if self.at_thresholds:
            lines += [""] + table(
                ["similarity_score >=", "precision", "recall", "predictions", *(f"precision {k}" for k in kinds)],
                [(t, fmt(m["precision"]), f"{m['recall']:.3f}", f"{m['predictions']:.0f}", *(fmt(m.get(k)) for k in kinds))
                 for t, m in self.at_thresholds.items()])
        if self.lookalikes:
            lines += ["", "Look-alike pairs flagged (share of pairs returned at or above the threshold):", ""] + table(
                ["look-alikes", "pairs", *(f">= {t}" for t in THRESHOLDS)],
                [(kind, f"{m['pairs']:.0f}", *(f"{m[str(t)]:.3f}" for t in THRESHOLDS)) for kind, m in self.lookalikes.items()])
        return "\n".join(lines)


def time_embedding(descriptor: Descriptor, images: list[Image.Image], repeats: int = 3) -> tuple[float, float]:
    """Median ms per image: one at a time, and all at once (the descriptor batches them)."""
    descriptor.embed(images[:2])  # load and warm up
    single = []
    for im in images[: min(len(images), 40)]:
        t = time.perf_counter()
        descriptor.embed([im])
        single.append((time.perf_counter() - t) * 1000)
    batched = []
    for _ in range(repeats):
        t = time.perf_counter()
        descriptor.embed(images)
        batched.append((time.perf_counter() - t) * 1000 / len(images))
    return statistics.median(single), statistics.median(batched)


def lookalike_report(preds: list[tuple[int, str, float]], corpus: Corpus) -> dict[str, Any]:
    """Look-alike pairs flagged, per threshold: of every (query, indexed look-alike of its source)
    pair, the share returned at or above the threshold; for the photos (different photos of the
    same kind of thing, under every edit, and unedited) and the video frames (another moment of
    the same shot after the camera or the scene moved)."""
    score = {(q, r): sc for q, r, sc in preds}
    kinds: dict[str, list[tuple[int, str]]] = {"photos": [], "photos, unedited": [], "video frames": []}
    for q, (edit, likes) in enumerate(zip(corpus.query_edit, corpus.query_lookalikes)):
        for r in likes.split():
            kind = "video frames" if edit == "video_lookalike" else "photos"
            kinds[kind].append((q, r))
            if edit == "identity":
                kinds["photos, unedited"].append((q, r))
    return {kind: {"pairs": len(pairs), **{str(t): (sum(score.get(p, -1.0) >= t for p in pairs) / len(pairs))
                                            for t in THRESHOLDS}}
            for kind, pairs in kinds.items() if pairs}


def precision_by_kind(preds: list[tuple[int, str, float]], corpus: Corpus, t: float) -> dict[str, float | None]:
    """Precision at threshold ``t`` against each kind of wrong answer: another reference returned
    for a copy (not a look-alike of it), a look-alike, anything returned for an upload that copies
    nothing (not a look-alike): right / (right + wrong of that kind)."""
    right = wrong_copy = wrong_like = wrong_unrelated = 0
    for q, r, sc in preds:
        if sc < t:
            continue
        ref = corpus.query_ref[q]
        if ref >= 0 and r == f"ref{ref}":
            right += 1
        elif r in corpus.query_lookalikes[q].split():
            wrong_like += 1
        elif ref >= 0:
            wrong_copy += 1
        else:
            wrong_unrelated += 1

    def precision(wrong: int) -> float | None:
        return right / (right + wrong) if right + wrong else None

    return {"vs copies of other photos": precision(wrong_copy), "vs look-alikes": precision(wrong_like),
            "vs unrelated images": precision(wrong_unrelated)}


def score_results(results: list[list[Any]], corpus: Corpus) -> dict[str, Any]:
    """The metrics of per-query results (lists of AssetMatch, best first) against the corpus truth."""
    truth = {i: f"ref{r}" for i, r in enumerate(corpus.query_ref) if r >= 0}
    ignore = [set(x.split()) for x in corpus.query_ignore]
    preds = [(i, a.task_id, a.score) for i, out in enumerate(results) for a in out if a.task_id not in ignore[i]]
    ids = list(range(len(results)))
    pos_s, pos_ok, neg_s = metrics.top1_per_query(preds, truth, query_ids=ids)
    recall_flagged, threshold = metrics.recall_at_fpr(pos_s, pos_ok, neg_s, FLAGGED_RATE)
    r_p90, t_p90 = metrics.recall_at_precision(preds, truth, TARGET_PRECISION)
    precision, recall, _ = metrics.precision_recall_curve(preds, truth)

    per_edit: dict[str, dict[str, float]] = {}
    edits = corpus.query_edit
    for edit in dict.fromkeys(e for e, r in zip(edits, corpus.query_ref) if r >= 0):
        mine = [i for i in ids if edits[i] == edit]
        mine_set = set(mine)
        e_truth = {i: r for i, r in truth.items() if i in mine_set}
        e_preds = [p for p in preds if p[0] in mine_set]
        s, ok, _ = metrics.top1_per_query(e_preds, e_truth, query_ids=[i for i in mine if i in e_truth])
        per_edit[edit] = {
            "recall_at_1": float(ok.mean()) if len(ok) else 0.0,
            "recall_at_1pct_flagged": metrics.recall_at_threshold(s, ok, threshold),
            "micro_ap": metrics.micro_ap(e_preds, e_truth),
        }
    at_thresholds = {}
    for t in THRESHOLDS:
        kept = [(q, r) for q, r, sc in preds if sc >= t]
        right = sum(truth.get(q) == r for q, r in kept)
        at_thresholds[str(t)] = {"precision": right / len(kept) if kept else None,
                                 "recall": right / len(truth) if truth else 0.0, "predictions": len(kept),
                                 **precision_by_kind(preds, corpus, t)}
    return {
        "lookalikes": lookalike_report(preds, corpus),
        "per_edit": per_edit,
        "at_thresholds": at_thresholds,
        "recall_at_1": statistics.mean(m["recall_at_1"] for m in per_edit.values()),
        "recall_at_1pct_flagged": statistics.mean(m["recall_at_1pct_flagged"] for m in per_edit.values()),
        "threshold_1pct_flagged": threshold,
        "micro_ap": metrics.micro_ap(preds, truth),
        "recall_at_p90": r_p90,
        "threshold_p90": t_p90,
        "pr_curve": {"precision": [round(float(x), 5) for x in precision],
                     "recall": [round(float(x), 5) for x in recall]},
    }


def run_image_bench(
    folder: str | Path,
    distractors: str | Path | None = None,
    *,
    videos: str | Path | None = None,
    lookalike_videos: str | Path | None = None,
    extra_distractors: int = 0,
    references: int | None = None,
    families: list[str] | None = None,
    exclude: set[str] | frozenset[str] = frozenset(),
    descriptor: str | Descriptor | None = None,
    uri: str | None = None,
    collection: str = "bench_images",
    index: str = "FLAT",
    index_params: dict[str, Any] | None = None,
    cache_dir: str | Path | None = ".vecsim-bench-cache",
    e2e_queries: int = 50,
    rotations: bool = True,
    local_features: bool = True,
    calibration: str | Path | None = None,
    seed: int = 0,
    progress: Callable[[str], None] = lambda _: None,
    **store_options: Any,
) -> ImageBenchReport:
    from ..index_config import parse_index_config

    desc = load_descriptor(descriptor)
    if calibration is not None:  # e.g. an earlier calibration, to measure before and after
        desc.calibration = Calibration.load(calibration)
    split = split_folder(folder, distractors, references=references, exclude=exclude, seed=seed)
    progress(f"{len(split.references)} references, {len(split.non_matching)} non-matching photos, "
             f"{len(split.distractors)} distractor images, {extra_distractors} extra distractor frames")
    corpus = load_or_build_corpus(desc, split, Path(cache_dir) if cache_dir else None,
                                  videos=Path(videos) if videos else None, extra_distractors=extra_distractors,
                                  families=families, seed=seed, progress=progress,
                                  lookalike_videos=Path(lookalike_videos) if lookalike_videos else None)
    config = parse_index_config(index, index_params or {})
    with tempfile.TemporaryDirectory(prefix="vecsim-bench-") as tmp:
        with open_bench_index(corpus, uri=uri or str(Path(tmp) / "bench.db"), index=config, collection=collection,
                              descriptor=desc, local_features=local_features, progress=progress,
                              **store_options) as (idx, _):
            store, verified = idx.store, idx.verifies
            progress(f"searching {len(corpus.query_edit)} queries")
            scores = score_results(search_queries(idx, corpus, top_k=5, rotations=rotations), corpus)
            progress("timing the embedding and end-to-end queries")
            sample = [load_rgb(p) for p in split.references[:64]]
            single_ms, batched_ms = time_embedding(desc, sample)
            query_ms = end_to_end_query_ms(idx, split.references, e2e_queries, seed, rotations=rotations)
            code, graph = vector_bytes(store.spec.index, store.spec.dim)
            engine, index_spec = store.engine, store.spec.index.model_dump(mode="json")
    return ImageBenchReport(
        descriptor=corpus.descriptor, engine=engine, index=index_spec,
        references=len(split.references), non_matching=len(split.non_matching),
        distractor_images=len(split.distractors), extra_distractor_vectors=len(corpus.frame_vectors),
        vectors=corpus.vectors_indexed, queries=len(corpus.query_edit), seed=seed, rotations=rotations,
        embed_ms_single_median=single_ms, embed_ms_batched_median=batched_ms,
        embed_images_per_s=1000.0 / batched_ms,
        query_ms_median=statistics.median(query_ms), query_ms_p95=percentile(query_ms, 0.95),
        code_bytes_per_vector=code, graph_bytes_per_vector=graph, verified=verified,
        local_bytes_per_frame=local_bytes(corpus) if local_features else 0.0, **scores,
    )


def local_bytes(corpus: Corpus) -> float:
    """Mean bytes of the packed local features of the indexed frames."""
    blobs = [*corpus.ref_local, *corpus.image_distractor_local, *corpus.vref_local, *corpus.frame_local]
    return sum(map(len, blobs)) / max(1, len(blobs))
