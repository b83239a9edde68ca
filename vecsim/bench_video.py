"""Video benchmark: are edited excerpts of indexed videos found, at the right times?

References are the videos of a folder (all indexed). For each reference, an excerpt (from 25 %
of its length, up to 10 s) is edited the ways of :func:`vecsim.video_edits.standard_video_edits`
(plain, re-encoded smaller, cropped, text overlay, mirrored, 1.25x) and also spliced into an
unrelated video. Reported: the fraction of queries whose true asset ranks first, and segment
precision / recall in the VSC2022 spirit: on each axis (query time, reference time), the overlap
of the predicted segments with the true range over the predicted length (precision) and over
the true length (recall), summed over all queries; segments predicted on wrong assets count as
predicted length with no overlap. ``combined`` multiplies the two axes. Also the boundary error
of the best segment of the true asset, and the VSC2022 matching-track segment AP
(:func:`vecsim.metrics.segment_ap`: every segment of every returned asset is a prediction scored
with the segment's score; the ground truth is the query's true range on the true asset), over
all queries and per edit.
"""

from __future__ import annotations

import fnmatch
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .media import VIDEO_EXTENSIONS
from .metrics import intersection_length, interval_length, interval_union, segment_ap


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
    extra: dict[str, Any] = field(default_factory=dict)

    def to_markdown(self) -> str:
        lines = ["| edit | right asset first | segment AP |", "|---|---|---|"]
        lines += [f"| {k} | {v:.3f} | {self.segment_ap_per_edit.get(k, float('nan')):.3f} |"
                  for k, v in self.top1.items()]
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
        return "\n".join(lines)


def _overlap(segs: list[tuple[float, float]], truth: tuple[float, float]) -> tuple[float, float]:
    """(length of the union of segs, its overlap with truth)."""
    merged = interval_union(segs)
    return interval_length(merged), intersection_length(merged, [truth])


def make_queries(refs: list[Path], out_dir: Path) -> list[VideoQuery]:
    from .sample_media import SAMPLE_PHOTOS, sample_photo
    from .video_edits import apply_edit, insert_into, slideshow, standard_video_edits, write_video

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


def run_video_bench(folder: str | Path, *, uri: str | None = None, exclude: list[str] | None = None,
                    index: str = "FLAT") -> VideoBenchReport:
    from .index import CustomIndex

    refs = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS
                  and not any(fnmatch.fnmatch(p.name, pat) for pat in exclude or []))
    if not refs:
        raise ValueError(f"no videos in {folder}")
    with tempfile.TemporaryDirectory(prefix="vecsim-vbench-") as tmp:
        tmpdir = Path(tmp)
        queries = make_queries(refs, tmpdir)
        with CustomIndex(uri or str(tmpdir / "bench.db"), collection="video_bench", index=index) as idx:
            t = time.perf_counter()
            total = 0.0
            for ref in refs:
                total += idx.add(ref, task_id=ref.stem).duration
            ingest_x = total / (time.perf_counter() - t)
            hits: dict[str, list[bool]] = {}
            sums = dict(pq=0.0, iq=0.0, tq=0.0, pm=0.0, im=0.0, tm=0.0)
            errors: list[float] = []
            per_query: list[dict[str, Any]] = []
            latencies: list[float] = []
            # VSC2022 segment AP inputs, per edit: (query, asset, q_start, q_end, m_start, m_end[, score])
            seg_preds: dict[str, list[tuple]] = {}
            seg_truth: dict[str, list[tuple]] = {}
            for qi, q in enumerate(queries):
                t = time.perf_counter()
                res = idx.query(q.path)
                latencies.append((time.perf_counter() - t) * 1000)
                hits.setdefault(q.edit, []).append(bool(res.output) and res.output[0].task_id == q.asset)
                seg_truth.setdefault(q.edit, []).append((qi, q.asset, *q.q_range, *q.m_range))
                seg_preds.setdefault(q.edit, []).extend(
                    (qi, asset.task_id, s.query_start, s.query_end, s.match_start, s.match_end, s.score)
                    for asset in res.output for s in asset.segments)
                for asset in res.output:
                    qs = [(s.query_start, s.query_end) for s in asset.segments]
                    ms = [(s.match_start, s.match_end) for s in asset.segments]
                    right = asset.task_id == q.asset
                    lq, iq = _overlap(qs, q.q_range if right else (0.0, 0.0))
                    lm, im = _overlap(ms, q.m_range if right else (0.0, 0.0))
                    sums["pq"] += lq
                    sums["pm"] += lm
                    sums["iq"] += iq if right else 0.0
                    sums["im"] += im if right else 0.0
                    if right and asset.segments:
                        s = asset.segments[0]
                        errors.append(max(abs(s.query_start - q.q_range[0]), abs(s.query_end - q.q_range[1]),
                                          abs(s.match_start - q.m_range[0]), abs(s.match_end - q.m_range[1])))
                        per_query.append({"asset": q.asset, "edit": q.edit, "ranked_first": res.output[0].task_id,
                                          "boundary_error_s": round(errors[-1], 2),
                                          "truth": [q.q_range, q.m_range],
                                          "segment": [[s.query_start, s.query_end], [s.match_start, s.match_end]]})
                sums["tq"] += q.q_range[1] - q.q_range[0]
                sums["tm"] += q.m_range[1] - q.m_range[0]
    top1 = {k: sum(v) / len(v) for k, v in hits.items()}
    pq, rq = sums["iq"] / max(sums["pq"], 1e-9), sums["iq"] / sums["tq"]
    pm, rm = sums["im"] / max(sums["pm"], 1e-9), sums["im"] / sums["tm"]
    return VideoBenchReport(
        references=len(refs),
        queries=len(queries),
        top1=top1,
        top1_mean=sum(sum(v) for v in hits.values()) / len(queries),
        segment={"precision_query": pq, "recall_query": rq, "precision_reference": pm, "recall_reference": rm,
                 "precision": pq * pm, "recall": rq * rm},
        boundary_error_s_median=statistics.median(errors) if errors else float("nan"),
        boundary_error_s_max=max(errors) if errors else float("nan"),
        ingest_x_realtime=ingest_x,
        query_ms_median=statistics.median(latencies),
        segment_ap=segment_ap([p for v in seg_preds.values() for p in v], [g for v in seg_truth.values() for g in v]),
        segment_ap_per_edit={k: segment_ap(seg_preds.get(k, []), seg_truth[k]) for k in seg_truth},
        extra={"per_query": per_query},
    )
