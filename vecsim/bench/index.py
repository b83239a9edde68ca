"""Index benchmark: the same edited-copy benchmark on every backend and index config.

For one index URI and one index config it loads the descriptor corpus of
:mod:`vecsim.bench.corpus` (references, distractor images and tens of thousands of distractor
frames) straight into the store, and measures:

- **build time**: writing every frame row and asset record, then :meth:`VectorStore.build_index`
  (the engine's index build, flush or optimization);
- **bytes per vector**: what the searched representation of one vector costs (codes only, see
  :func:`vector_bytes`), plus the graph links of an HNSW index;
- **Recall@1** per edit and on average, through the query path of :class:`~vecsim.CustomIndex`
  (:func:`vecsim.search.search_frames`, then :func:`vecsim.search.match_assets`) with the cached
  query descriptors;
- **search latency**: one query vector, the store's search call as a query makes it
  (``CANDIDATES_PER_FRAME`` assets, ``FRAMES_PER_ASSET`` frames each), median and p95;
- **end-to-end latency**: ``CustomIndex.query`` of an edited image (decode, embed, PDQ, search,
  aggregate), median and p95.
"""

from __future__ import annotations

import contextlib
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..descriptors import Descriptor, load_descriptor
from ..descriptors.local import FORMAT as LOCAL_FORMAT
from ..descriptors.local import unpack
from ..descriptors.pdq import DihedralHash
from ..edits import standard_edits
from ..errors import IndexConfigError, InvalidRequestError
from ..index_config import IndexConfig
from ..search import CANDIDATES_PER_FRAME, FRAMES_PER_ASSET, QueryBatch, asset_records, match_assets, search_frames
from ..store import AssetRecord, CollectionSpec, FrameRow, VectorStore
from .corpus import Corpus, list_images, load_rgb
from .report import percentile, table

if TYPE_CHECKING:
    from ..index import CustomIndex

GENERATION = "bench"
WRITE_BATCH = 1000


def vector_bytes(index: IndexConfig, dim: int) -> tuple[float, float]:
    """(code bytes, graph bytes) per vector of the searched index: float32 = 4 per dimension,
    int8 scalar quantization = 1, product quantization = ``m * nbits / 8``; an HNSW graph keeps
    about ``2 * M`` 4-byte links per vector on its base layer. Exact vectors that a re-ranking
    step reads (on disk on Qdrant, in the collection's raw data on Milvus) are not counted."""
    t = index.type
    if t in ("FLAT", "IVF_FLAT", "HNSW"):
        code = 4.0 * dim
    elif t in ("IVF_SQ8", "HNSW_SQ8"):
        code = float(dim)
    elif t == "IVF_PQ":
        code = index.m * index.nbits / 8  # type: ignore[union-attr]
    elif t == "HNSW_PQ":
        code = float(index.m)  # type: ignore[union-attr]
    else:
        raise IndexConfigError(f"index type {t!r} is unknown to the benchmark")
    graph = 2 * 4 * index.M if t.startswith("HNSW") else 0  # type: ignore[union-attr]
    return code, float(graph)


@dataclass
class IndexBenchReport:
    engine: str
    engine_version: str
    index: dict[str, Any]
    vectors: int
    assets: int
    build_s: float
    code_bytes_per_vector: float
    graph_bytes_per_vector: float
    recall_at_1: dict[str, float]
    recall_at_1_mean: float
    search_ms_p50: float
    search_ms_p95: float
    query_ms_p50: float
    query_ms_p95: float
    queries: int
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.index.items() if k not in ("type", "metric"))
        return (f"| {self.engine} | {self.index['type']} | {params} | {self.vectors} | {self.build_s:.1f} | "
                f"{self.code_bytes_per_vector:.0f} + {self.graph_bytes_per_vector:.0f} | "
                f"{self.recall_at_1_mean:.3f} | {self.search_ms_p50:.2f} / {self.search_ms_p95:.2f} | "
                f"{self.query_ms_p50:.1f} / {self.query_ms_p95:.1f} |")

    def to_markdown(self) -> str:
        lines = [TABLE_HEADER, self.row(), ""]
        lines += table(["edit", "Recall@1"], [(k, f"{v:.3f}") for k, v in self.recall_at_1.items()])
        return "\n".join(lines)


TABLE_HEADER = ("| engine | index | params | vectors | build s | bytes/vector (codes + graph) | Recall@1 | "
                "search ms p50 / p95 | query ms p50 / p95 |\n|---|---|---|---|---|---|---|---|---|")


def load_corpus_into(store: VectorStore, corpus: Corpus, progress: Callable[[str], None]) -> int:
    """Write the corpus as assets into an empty collection made for the corpus's descriptor: each
    reference and distractor image an image asset, each group of distractor frames a video asset
    (1 s per frame). Returns the number of assets. ``store``: a writable store, as
    ``vecsim.adapters.open_store`` opens it (:func:`open_bench_index` does it all)."""
    if store.count() != (0, 0):
        raise InvalidRequestError(f"store: collection {store.collection!r} at {store.uri} is not empty; "
                                  "the benchmark needs a fresh one")
    made_for = f"{store.spec.descriptor_name}/{store.spec.descriptor_version}"
    if made_for != corpus.descriptor:
        raise InvalidRequestError(f"store: the corpus was made with {corpus.descriptor}, the collection uses {made_for}")
    keep_local = bool(store.spec.local_features)

    def rows(task_id: str, vectors: np.ndarray, hashes: list[str], local: list[bytes]) -> list[FrameRow]:
        return [FrameRow(task_id, GENERATION, i, float(i), float(i + 1), v, h, b if keep_local else b"")
                for i, (v, h, b) in enumerate(zip(vectors, hashes, local))]

    pending: list[FrameRow] = []
    records: list[AssetRecord] = []

    def asset(task_id: str, vectors: np.ndarray, hashes: list[str], local: list[bytes], media_type: str) -> None:
        pending.extend(rows(task_id, vectors, hashes, local))
        records.append(AssetRecord(task_id, GENERATION, media_type, task_id,
                                   0.0 if media_type == "image" else float(len(vectors)), len(vectors)))
        while len(pending) >= WRITE_BATCH:
            store.insert_frames(pending[:WRITE_BATCH])
            del pending[:WRITE_BATCH]

    for prefix, vectors, hashes, local in (
        ("ref", corpus.ref_vectors, corpus.ref_pdq, corpus.ref_local),
        ("dis", corpus.image_distractor_vectors, corpus.image_distractor_pdq, corpus.image_distractor_local),
        ("vref", corpus.vref_vectors, corpus.vref_pdq, corpus.vref_local),
    ):
        for i in range(len(vectors)):
            asset(f"{prefix}{i}", vectors[i : i + 1], hashes[i : i + 1], local[i : i + 1], "image")
    groups = corpus.frame_group
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        asset(f"frames{g}", corpus.frame_vectors[idx], [corpus.frame_pdq[j] for j in idx],
              [corpus.frame_local[j] for j in idx], "video")
    if pending:
        store.insert_frames(pending)
    progress(f"committing {len(records)} assets")
    for record in records:
        store.commit_asset(record)
    return len(records)


@dataclass(frozen=True)
class Loaded:
    """What :func:`open_bench_index` wrote: ``assets`` asset records, in ``build_s`` seconds
    (every frame row and asset record, then the engine's index build)."""

    assets: int
    build_s: float


@contextlib.contextmanager
def open_bench_index(
    corpus: Corpus,
    *,
    uri: str,
    index: IndexConfig,
    collection: str,
    descriptor: str | Descriptor | None = None,
    local_features: bool = True,
    progress: Callable[[str], None] = lambda _: None,
    **store_options: Any,
) -> Iterator[tuple[CustomIndex, Loaded]]:
    """A :class:`~vecsim.CustomIndex` on a fresh collection holding the corpus (for its queries and
    read-only ``store``), and what loading it took. The corpus is bulk-written into a store opened
    with ``vecsim.adapters.open_store`` (:func:`load_corpus_into`), which the index owns (and
    closes), and the engine's index is built. ``local_features``: store the frames' local
    features, so that queries verify their candidates geometrically (as a collection made by
    ``CustomIndex`` does by default)."""
    from vecsim.adapters import open_store

    from ..index import CustomIndex

    desc = load_descriptor(descriptor)
    spec = CollectionSpec(descriptor_name=desc.name, descriptor_version=desc.version, dim=desc.dim, index=index,
                          local_features=LOCAL_FORMAT if local_features else "")
    store = open_store(uri, collection, spec, **store_options)
    with CustomIndex(store=store, descriptor=desc, index=index, local_features=local_features) as idx:  # checks the spec, closes the store
        progress(f"loading {corpus.vectors_indexed} vectors into {store.engine} {index.type}")
        t = time.perf_counter()
        assets = load_corpus_into(store, corpus, progress)
        store.build_index()
        yield idx, Loaded(assets, time.perf_counter() - t)


def query_batches(corpus: Corpus, *, rotations: bool = True, chunk: int = 256) -> Iterator[QueryBatch]:
    """The corpus queries as :class:`~vecsim.search.QueryBatch` es of ``chunk`` (one image each,
    timestamp 0): the cached query vectors, with ``rotations`` their quarter turns too (else the
    image alone, as ``query(..., rotations=False)``), and their dihedral PDQ hashes."""
    variants = [corpus.query_vectors, *(corpus.query_vectors_turned if rotations else [])]
    hashes = [DihedralHash(tuple(pdq), int(quality)) for pdq, quality in zip(corpus.query_pdq, corpus.query_pdq_quality)]
    for i in range(0, len(corpus.query_vectors), chunk):
        part = hashes[i : i + chunk]
        blobs = corpus.query_local[2 * i : 2 * (i + len(part))]
        local = [(unpack(blobs[k]), unpack(blobs[k + 1])) for k in range(0, len(blobs), 2)]
        yield QueryBatch([0.0] * len(part), [v[i : i + chunk] for v in variants], part, local)


def search_queries(idx: CustomIndex, corpus: Corpus, top_k: int = 5, chunk: int = 256, rotations: bool = True
                   ) -> list[list[Any]]:
    """Every corpus query through the query path of ``CustomIndex.query`` for an image (the image
    and its quarter turns searched, per-asset aggregation, threshold 0, ``top_k`` assets), fed the
    cached query descriptors (``rotations=False``: the image alone, as ``query(..., rotations=False)``)
    and, where the collection keeps local features, verified geometrically as ``query`` does.
    Searches are batched for speed, which gives each query vector the same hits as alone; each
    query is aggregated on its own (the asset records are read once for all)."""
    floor = idx.descriptor.calibration.verify_floor() if idx.verifies else None
    frames = search_frames(idx.store, query_batches(corpus, rotations=rotations, chunk=chunk), top_k=top_k,
                           verify_floor=floor)
    records = asset_records(idx.store, frames)
    return [match_assets(idx.store, [qf], idx.descriptor.calibration, threshold=0.0, top_k=top_k,
                         interval=1.0 / idx.fps, query_duration=0.0, records=records)
            for qf in frames]


def recall_at_1_per_edit(results: list[list[Any]], corpus: Corpus) -> dict[str, float]:
    """Per edit, the fraction of copy queries whose first asset is their reference.

    Note: the image benchmark computes Recall@1 another way (:func:`vecsim.metrics.top1_per_query`
    over the pooled predictions, ties pessimistic); the two are kept as they are so that the
    published numbers of each benchmark do not change."""
    found: dict[str, list[bool]] = {}
    for edit, ref, out in zip(corpus.query_edit, corpus.query_ref, results):
        if ref >= 0:
            found.setdefault(edit, []).append(bool(out) and out[0].task_id == f"ref{ref}")
    return {k: sum(v) / len(v) for k, v in found.items()}


def end_to_end_query_ms(idx: CustomIndex, photos: list[Path], n: int, seed: int = 0, rotations: bool = True) -> list[float]:
    """Milliseconds of ``n`` ``CustomIndex.query`` calls (decode, embed, PDQ, search, aggregate),
    each of a random photo under a random standard edit (the edit is applied before timing)."""
    rng = random.Random(seed)
    edits = list(standard_edits(seed).values())
    query_ms = []
    for _ in range(n):
        image = rng.choice(edits)(load_rgb(rng.choice(photos)))
        t = time.perf_counter()
        idx.query(image, top_k=5, rotations=rotations)
        query_ms.append((time.perf_counter() - t) * 1000)
    return query_ms


def run_index_bench(
    corpus: Corpus,
    references: Path,
    *,
    uri: str,
    index: IndexConfig,
    collection: str = "bench_index",
    e2e_queries: int = 100,
    search_samples: int = 500,
    seed: int = 0,
    progress: Callable[[str], None] = lambda _: None,
    descriptor: Any = None,
    **store_options: Any,
) -> IndexBenchReport:
    with open_bench_index(corpus, uri=uri, index=index, collection=collection, descriptor=descriptor,
                          progress=progress, **store_options) as (idx, loaded):
        store = idx.store
        build_s, assets = loaded.build_s, loaded.assets

        progress(f"Recall@1 over {len(corpus.query_edit)} queries")
        recall = recall_at_1_per_edit(search_queries(idx, corpus, top_k=1), corpus)

        rng = random.Random(seed)
        search_ms = []
        for i in rng.sample(range(len(corpus.query_vectors)), min(search_samples, len(corpus.query_vectors))):
            t = time.perf_counter()
            store.search(corpus.query_vectors[i : i + 1], limit=CANDIDATES_PER_FRAME, per_asset=FRAMES_PER_ASSET)
            search_ms.append((time.perf_counter() - t) * 1000)

        progress(f"{e2e_queries} end-to-end queries")
        query_ms = end_to_end_query_ms(idx, list_images(references), e2e_queries, seed)
        code, graph = vector_bytes(store.spec.index, store.spec.dim)
        return IndexBenchReport(
            engine=store.engine, engine_version=store.engine_version,
            index=store.spec.index.model_dump(mode="json"), vectors=corpus.vectors_indexed, assets=assets,
            build_s=build_s, code_bytes_per_vector=code, graph_bytes_per_vector=graph,
            recall_at_1=recall, recall_at_1_mean=statistics.mean(recall.values()),
            search_ms_p50=statistics.median(search_ms), search_ms_p95=percentile(search_ms, 0.95),
            query_ms_p50=statistics.median(query_ms), query_ms_p95=percentile(query_ms, 0.95),
            queries=len(corpus.query_edit),
        )
