"""Video benchmark: are edited excerpts of indexed videos found, at the right times?

References are the videos of a folder (all indexed). For each reference, an excerpt (from 25 %
of its length, up to 10 s) is edited the ways of :func:`vecsim.video_edits.standard_video_edits`
(plain, re-encoded smaller, cropped, text overlay, mirrored, 1.25x) and also spliced into an
unrelated video. Reported: the fraction of queries whose true asset ranks first, and segment
precision / recall in the VSC2022 spirit: on each axis (query time, reference time), the overlap
of the predicted segments with the true range over the predicted length (precision) and over
the true length (recall), summed over all queries; segments predicted on wrong assets count as
predicted length with no overlap (:func:`vecsim.metrics.overlap_precision_recall`). ``combined``
multiplies the two axes. Also the boundary error
of the best segment of the true asset, and the VSC2022 matching-track segment AP
(:func:`vecsim.metrics.segment_ap`: every segment of every returned asset is a prediction scored
with the segment's score; the ground truth is the query's true range on the true asset), over
all queries and per edit.

A look-alike case (:func:`run_lookalike_case`): the second half of every reference queried
against an index of the first halves (the same place, other moments), where any segment is a
false positive.

Two steps: :func:`run_video_queries` indexes the references and queries every edited excerpt
(through ``CustomIndex.add`` / ``query``, so ingest and query speed are measured too);
:func:`score_video_run` scores what came back.
"""

from __future__ import annotations

import fnmatch
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..descriptors import Descriptor
from ..errors import InvalidRequestError
from ..media import VIDEO_EXTENSIONS
from ..metrics import overlap_precision_recall, segment_ap
from .report import table

if TYPE_CHECKING:
    from ..schema import QueryResult


@dataclass
class VideoQuery:
    path: Path
    edit: str
    asset: str
    q_range: tuple[float, float]
    m_range: tuple[float, float]


@dataclass
class VideoBenchReport:
    references: int
    queries: int
    top1: dict[str, float]
    top1_mean: float
    segment: dict[str, float]
    boundary_error_s_median: float
    boundary_error_s_max: float
    ingest_x_realtime: float
    query_ms_median: float
    segment_ap: float = 0.0  # VSC2022 matching-track segment AP over all queries
    segment_ap_per_edit: dict[str, float] = field(default_factory=dict)
    #: the look-alike case (:func:`run_lookalike_case`): queries, and the share that formed a
    #: segment / returned a match at each threshold
    lookalike: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_markdown(self) -> str:
        lines = table(["edit", "right asset first", "segment AP"],
                      [(k, f"{v:.3f}", f"{self.segment_ap_per_edit.get(k, float('nan')):.3f}")
                       for k, v in self.top1.items()])
        lines.append(f"| **all** | **{self.top1_mean:.3f}** | **{self.segment_ap:.3f}** |")
        s = self.segment
        lines += [
            "",
            "| segments | precision | recall |",
            "|---|---|---|",
            f"| query axis | {s['precision_query']:.3f} | {s['recall_query']:.3f} |",
            f"| reference axis | {s['precision_reference']:.3f} | {s['recall_reference']:.3f} |",
            f"| combined (product) | {s['precision']:.3f} | {s['recall']:.3f} |",
            "",
            f"- {self.references} references, {self.queries} queries; segment AP as in the VSC2022 matching "
            "track (segments ranked by score, precision and recall the geometric mean of both time axes)",
            f"- best segment boundary error: median {self.boundary_error_s_median:.2f} s, max {self.boundary_error_s_max:.2f} s",
            f"- ingest {self.ingest_x_realtime:.1f}x real time; query median {self.query_ms_median:.0f} ms",
        ]
        if self.lookalike:
            la = self.lookalike
            lines += ["", f"Look-alike case: {la['queries']:.0f} videos, each one's second half queried against an "
                      "index of the first halves (the same place, other moments; not a copy):", ""] + table(
                ["threshold", "queries with a segment", "queries with any match"],
                [(t, f"{la[f'segment@{t}']:.3f}", f"{la[f'match@{t}']:.3f}") for t in LOOKALIKE_THRESHOLDS])
        return "\n".join(lines)


def make_queries(refs: list[Path], out_dir: Path) -> list[VideoQuery]:
    from ..sample_media import SAMPLE_PHOTOS, sample_photo
    from ..video_edits import apply_edit, insert_into, slideshow, standard_video_edits, write_video

    host = write_video(out_dir / "host.mp4", slideshow([sample_photo(n) for n in list(SAMPLE_PHOTOS)[:4]], 6, 25,
                                                       (640, 360), seed=11), 25)
    queries: list[VideoQuery] = []
    for i, ref in enumerate(refs):
        import av

        with av.open(str(ref)) as c:
            duration = c.duration / 1e6
        start = round(duration * 0.25, 2)
        end = round(min(duration - 0.5, start + 10.0), 2)
        for e in standard_video_edits((start, end)):
            path = apply_edit(ref, out_dir / f"{i}_{e.name}.mp4", e)
            queries.append(VideoQuery(path, e.name, ref.stem, (0.0, (end - start) / e.speed), (start, end)))
        plain = out_dir / f"{i}_excerpt.mp4"
        at = 8.0
        path = insert_into(host, plain, out_dir / f"{i}_inserted.mp4", at=at, size=(640, 360))
        queries.append(VideoQuery(path, "inserted", ref.stem, (at, at + end - start), (start, end)))
    return queries


@dataclass
class VideoRun:
    """What running the video benchmark gave: each query's result and latency, and the ingest speed."""

    references: int
    queries: list[VideoQuery]
    results: list[QueryResult]
    latencies_ms: list[float]
    ingest_x_realtime: float


def list_references(folder: str | Path, exclude: list[str] | None = None) -> list[Path]:
    """The reference videos of ``folder`` (not recursive), less those matching an ``exclude`` glob."""
    refs = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS
                  and not any(fnmatch.fnmatch(p.name, pat) for pat in exclude or []))
    if not refs:
        raise InvalidRequestError(f"folder {str(folder)!r} holds no videos (exclude={exclude})")
    return refs


def run_video_queries(refs: list[Path], queries: list[VideoQuery], *, uri: str, collection: str = "video_bench",
                      index: str = "FLAT", index_params: dict[str, Any] | None = None,
                      descriptor: str | Descriptor | None = None, **store_options: Any) -> VideoRun:
    """Add every reference (``task_id`` = file stem) to a fresh index at ``uri``, then query every
    edited excerpt, timing both."""
    from ..index import CustomIndex

    with CustomIndex(uri, collection=collection, index=index, index_params=index_params, descriptor=descriptor,
                     **store_options) as idx:
        t = time.perf_counter()
        total = 0.0
        for ref in refs:
            total += idx.add(ref, task_id=ref.stem).duration
        ingest_x = total / (time.perf_counter() - t)
        results: list[QueryResult] = []
        latencies: list[float] = []
        for q in queries:
            t = time.perf_counter()
            results.append(idx.query(q.path))
            latencies.append((time.perf_counter() - t) * 1000)
    return VideoRun(len(refs), queries, results, latencies, ingest_x)


def score_video_run(run: VideoRun) -> VideoBenchReport:
    """The report of a run: right asset first per edit, segment precision / recall on both axes,
    boundary errors, segment AP (see the module docstring)."""
    queries = run.queries
    hits: dict[str, list[bool]] = {}
    q_axis: list[tuple[list[tuple[float, float]], tuple[float, float] | None]] = []
    m_axis: list[tuple[list[tuple[float, float]], tuple[float, float] | None]] = []
    errors: list[float] = []
    per_query: list[dict[str, Any]] = []
    # VSC2022 segment AP inputs, per edit: (query, asset, q_start, q_end, m_start, m_end[, score])
    seg_preds: dict[str, list[tuple]] = {}
    seg_truth: dict[str, list[tuple]] = {}
    for qi, (q, res) in enumerate(zip(queries, run.results)):
        hits.setdefault(q.edit, []).append(bool(res.output) and res.output[0].task_id == q.asset)
        seg_truth.setdefault(q.edit, []).append((qi, q.asset, *q.q_range, *q.m_range))
        seg_preds.setdefault(q.edit, []).extend(
            (qi, asset.task_id, s.query_start, s.query_end, s.match_start, s.match_end, s.score)
            for asset in res.output for s in asset.segments)
        for asset in res.output:
            right = asset.task_id == q.asset
            q_axis.append(([(s.query_start, s.query_end) for s in asset.segments], q.q_range if right else None))
            m_axis.append(([(s.match_start, s.match_end) for s in asset.segments], q.m_range if right else None))
            if right and asset.segments:
                s = asset.segments[0]
                errors.append(max(abs(s.query_start - q.q_range[0]), abs(s.query_end - q.q_range[1]),
                                  abs(s.match_start - q.m_range[0]), abs(s.match_end - q.m_range[1])))
                per_query.append({"asset": q.asset, "edit": q.edit, "ranked_first": res.output[0].task_id,
                                  "boundary_error_s": round(errors[-1], 2),
                                  "truth": [q.q_range, q.m_range],
                                  "segment": [[s.query_start, s.query_end], [s.match_start, s.match_end]]})
    top1 = {k: sum(v) / len(v) for k, v in hits.items()}
    pq, rq = overlap_precision_recall(q_axis, sum(q.q_range[1] - q.q_range[0] for q in queries))
    pm, rm = overlap_precision_recall(m_axis, sum(q.m_range[1] - q.m_range[0] for q in queries))
    return VideoBenchReport(
        references=run.references,
        queries=len(queries),
        top1=top1,
        top1_mean=sum(sum(v) for v in hits.values()) / len(queries),
        segment={"precision_query": pq, "recall_query": rq, "precision_reference": pm, "recall_reference": rm,
                 "precision": pq * pm, "recall": rq * rm},
        boundary_error_s_median=statistics.median(errors) if errors else float("nan"),
        boundary_error_s_max=max(errors) if errors else float("nan"),
        ingest_x_realtime=run.ingest_x_realtime,
        query_ms_median=statistics.median(run.latencies_ms),
        segment_ap=segment_ap([p for v in seg_preds.values() for p in v], [g for v in seg_truth.values() for g in v]),
        segment_ap_per_edit={k: segment_ap(seg_preds.get(k, []), seg_truth[k]) for k in seg_truth},
        extra={"per_query": per_query},
    )


LOOKALIKE_THRESHOLDS = (0.5, 0.9)
#: Videos shorter than this have no two halves worth comparing.
LOOKALIKE_MIN_SECONDS = 4.0


def run_lookalike_case(refs: list[Path], out_dir: Path, *, uri: str, collection: str, index: str = "FLAT",
                       index_params: dict[str, Any] | None = None, descriptor: str | Descriptor | None = None,
                       **store_options: Any) -> dict[str, float]:
    """Different moments of the same place: the first half of every reference (at least
    :data:`LOOKALIKE_MIN_SECONDS` long) is indexed in its own collection, and its second half
    queried. Nothing of the second half is in the index, so any segment or match is a false
    positive: the share of queries that formed a segment, and that returned any match, at each
    of :data:`LOOKALIKE_THRESHOLDS`."""
    import av

    from ..index import CustomIndex
    from ..video_edits import VideoEdit, apply_edit

    halves = []
    for i, ref in enumerate(refs):
        with av.open(str(ref)) as c:
            duration = (c.duration or 0) / 1e6
        if duration >= LOOKALIKE_MIN_SECONDS:
            mid = round(duration / 2, 2)
            halves.append((apply_edit(ref, out_dir / f"{i}_first.mp4", VideoEdit("first_half", 0.0, mid)),
                           apply_edit(ref, out_dir / f"{i}_second.mp4", VideoEdit("second_half", mid, None))))
    if not halves:
        return {}
    out: dict[str, float] = {"queries": float(len(halves))}
    with CustomIndex(uri, collection=collection, index=index, index_params=index_params, descriptor=descriptor,
                     **store_options) as idx:
        idx.add_many([first for first, _ in halves])
        for t in LOOKALIKE_THRESHOLDS:
            results = [idx.query(second, threshold=t) for _, second in halves]
            out[f"segment@{t}"] = sum(any(a.segments for a in r.output) for r in results) / len(halves)
            out[f"match@{t}"] = sum(bool(r.output) for r in results) / len(halves)
    return out


def run_video_bench(folder: str | Path, *, uri: str | None = None, exclude: list[str] | None = None,
                    index: str = "FLAT", index_params: dict[str, Any] | None = None,
                    descriptor: str | Descriptor | None = None, collection: str = "video_bench",
                    **store_options: Any) -> VideoBenchReport:
    """The video benchmark on the videos of ``folder``: edited excerpts made in a temporary folder,
    :func:`run_video_queries` on ``uri`` (default: a temporary index on the embedded default), then
    :func:`score_video_run`. ``index`` / ``index_params`` / ``descriptor`` / store options: as
    for :class:`~vecsim.CustomIndex`."""
    refs = list_references(folder, exclude)
    with tempfile.TemporaryDirectory(prefix="vecsim-vbench-") as tmp:
        tmpdir = Path(tmp)
        queries = make_queries(refs, tmpdir)
        run = run_video_queries(refs, queries, uri=uri or str(tmpdir / "bench.db"), collection=collection,
                                index=index, index_params=index_params, descriptor=descriptor, **store_options)
        lookalike = run_lookalike_case(refs, tmpdir, uri=uri or str(tmpdir / "bench.db"),
                                       collection=f"{collection}_lookalike", index=index, index_params=index_params,
                                       descriptor=descriptor, **store_options)
    report = score_video_run(run)
    report.lookalike = lookalike
    return report
