"""Image benchmark: how well does an index find edited copies, and how fast?

Protocol (DISC21-like, small): references are photos of a folder, distractors another folder
(both indexed); queries are the references under each edit of
:func:`vecsim.edits.standard_edits`. Reports Recall@1 per edit and overall, the median time to
embed one image (single and batched), and the median end-to-end query time. Runs against any
index URI and index config, so the same numbers can be taken on every backend.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .edits import Edit, standard_edits
from .media import IMAGE_EXTENSIONS, decode_image


def list_images(folder: str | Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def load_rgb(path: Path) -> Image.Image:
    return decode_image(path).read_all()[0].image


@dataclass
class EditedQuery:
    edit: str
    ref: int  # index into the reference list
    image: Image.Image


def make_queries(refs: list[Image.Image], edits: dict[str, Edit]) -> list[EditedQuery]:
    return [EditedQuery(name, i, edit(im)) for name, edit in edits.items() for i, im in enumerate(refs)]


@dataclass
class ImageBenchReport:
    references: int
    distractors: int
    index: dict[str, Any]
    engine: str
    recall_at_1: dict[str, float]
    recall_at_1_mean: float
    embed_ms_single_median: float
    embed_ms_batched_median: float
    embed_images_per_s_batched: float
    query_ms_median: float
    query_ms_p95: float
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_markdown(self) -> str:
        lines = ["| edit | Recall@1 |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in self.recall_at_1.items()]
        lines.append(f"| **mean** | **{self.recall_at_1_mean:.3f}** |")
        lines += [
            "",
            f"- index: {self.engine} {self.index} with {self.references} references + {self.distractors} distractors",
            f"- embed one image: {self.embed_ms_single_median:.1f} ms single, "
            f"{self.embed_ms_batched_median:.1f} ms batched ({self.embed_images_per_s_batched:.1f} images/s)",
            f"- query end to end (decode + embed + PDQ + search + aggregate): median {self.query_ms_median:.1f} ms, "
            f"p95 {self.query_ms_p95:.1f} ms",
        ]
        return "\n".join(lines)


def time_embedding(descriptor: Any, images: list[Image.Image], repeats: int = 3) -> tuple[float, float]:
    """Median ms per image: one at a time, and in batches of the descriptor's batch size."""
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


def run_image_bench(
    references: str | Path,
    distractors: str | Path | None = None,
    *,
    uri: str | None = None,
    index: str = "FLAT",
    index_params: dict[str, Any] | None = None,
    max_references: int | None = None,
    seed: int = 0,
    progress: Callable[[str], None] = lambda _: None,
) -> ImageBenchReport:
    from .index import CustomIndex

    ref_paths = list_images(references)
    if max_references:
        ref_paths = random.Random(seed).sample(ref_paths, min(max_references, len(ref_paths)))
        ref_paths.sort()
    dis_paths = list_images(distractors) if distractors else []
    if not ref_paths:
        raise ValueError(f"no images in {references}")
    with tempfile.TemporaryDirectory(prefix="vecsim-bench-") as tmp:
        with CustomIndex(uri or str(Path(tmp) / "bench.db"), index=index, index_params=index_params,
                         collection=f"bench_{seed}", progress=True) as idx:
            progress(f"indexing {len(ref_paths)} references + {len(dis_paths)} distractors")
            ids = [f"ref{i}" for i in range(len(ref_paths))] + [f"dis{i}" for i in range(len(dis_paths))]
            res = idx.add_many([str(p) for p in ref_paths + dis_paths], task_ids=ids)
            if res.failed:
                raise RuntimeError(f"{len(res.failed)} files failed to index, first: {res.failed[0].message}")

            refs = [load_rgb(p) for p in ref_paths]
            progress("timing the embedding")
            single_ms, batched_ms = time_embedding(idx.descriptor, refs[:64])

            progress("making edited queries")
            queries = make_queries(refs, standard_edits(seed))
            hits: dict[str, list[bool]] = {}
            latencies = []
            from tqdm import tqdm

            for q in tqdm(queries, desc="querying", unit="query"):
                t = time.perf_counter()
                out = idx.query(q.image, top_k=1, threshold=0.0).output
                latencies.append((time.perf_counter() - t) * 1000)
                hits.setdefault(q.edit, []).append(bool(out) and out[0].task_id == f"ref{q.ref}")
            info = idx.info()
    recall = {k: sum(v) / len(v) for k, v in hits.items()}
    latencies.sort()
    return ImageBenchReport(
        references=len(ref_paths),
        distractors=len(dis_paths),
        index=info.index,
        engine=info.engine,
        recall_at_1=recall,
        recall_at_1_mean=statistics.mean(recall.values()),
        embed_ms_single_median=single_ms,
        embed_ms_batched_median=batched_ms,
        embed_images_per_s_batched=1000.0 / batched_ms,
        query_ms_median=statistics.median(latencies),
        query_ms_p95=latencies[int(0.95 * (len(latencies) - 1))],
        seed=seed,
    )


def write_report(report: Any, out_dir: str | Path, stem: str = "image-bench") -> tuple[Path, Path]:
    """Write a benchmark report (a dataclass with ``to_markdown``) as STEM.md and STEM.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / f"{stem}.md", out / f"{stem}.json"
    md.write_text(report.to_markdown() + "\n")
    js.write_text(json.dumps(asdict(report), indent=2) + "\n")
    return md, js
