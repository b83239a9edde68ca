"""Scaling benchmark (``vecsim bench scale``): how loading, building, searching and memory grow
with the number of frame rows, on one backend and index config.

It needs no media: the rows are synthetic vectors clustered around real descriptors.

- **Centres**: scikit-image's 8 bundled colour photos and 3 edits of each (mirror, 2 crops),
  embedded with the descriptor (:func:`real_centres`): 32 real unit vectors.
- **Assets**: each asset vector is a centre turned towards a random direction, at a cosine of
  0.6-0.8 to it; each of its ``frames_per_asset`` frames is the asset vector turned the same way
  by less (cosine 0.85-0.95). A PDQ hash per frame is 32 random bytes. float32, seeded.
- **Growing one collection**: one fresh collection is loaded up to each size of ``rows`` in turn
  through the store protocol (``insert_frames`` of :data:`WRITE_ROWS` rows, then
  ``commit_assets`` of their assets; ``build_index`` once per size), and measured at each size.
- **Queries**: random frames of the first size (seeded), each turned to a cosine of 0.85 from
  the original; the same queries at every size.

Measured at each size (:class:`ScaleStep`): load rate (rows written in the step / seconds spent in
the store's write calls), build seconds, the store's search call as a query makes it and a whole
query from vectors (:func:`vecsim.search.search_frames` + :func:`vecsim.search.match_assets`),
recall@10 of assets against exact search, how often the query's own asset is in the top 10 and
first, faiss ``IndexFlatIP`` and ``IndexHNSWFlat`` latency on the same vectors, reopen seconds,
the process's RSS and the index's bytes on disk. The store's RSS is measured before faiss builds
anything at that size (faiss indexes of the previous size are freed by then).
"""

from __future__ import annotations

import datetime
import gc
import itertools
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..descriptors import Descriptor, load_descriptor
from ..descriptors.pdq import DihedralHash
from ..errors import InvalidRequestError, MissingDependencyError
from ..index_config import IndexConfig
from ..search import (
    CANDIDATES_PER_FRAME,
    FRAMES_PER_ASSET,
    QueryBatch,
    match_assets,
    search_frames,
)
from ..store import AssetRecord, CollectionSpec, FrameRow, Hit, StoreReader
from .report import percentile, table

GENERATION = "scale"
#: Frame rows per ``insert_frames`` call; their assets are then committed in one ``commit_assets``.
WRITE_ROWS = 5000
#: scikit-image's bundled colour photos (no download), the centres' sources.
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "stereo_motorcycle")
#: Cosine of an asset vector to its centre, and of a frame to its asset vector (uniform in the range).
ASSET_COSINE = (0.6, 0.8)
FRAME_COSINE = (0.85, 0.95)
#: Cosine of a query vector to the stored frame it copies.
QUERY_COSINE = 0.85
#: Cosine of a query's stand-in quarter-turn vectors to the query vector (a turned photo embeds far
#: from the photo; these only make the query search as many vectors as ``query`` does).
TURN_COSINE = 0.3
#: PDQ bits flipped between a stored frame's hash and its query's hash (exact_score 0.875).
PDQ_FLIPPED_BITS = 16
#: faiss HNSW parameters (``IndexHNSWFlat(dim, M, METRIC_INNER_PRODUCT)``, efSearch).
FAISS_HNSW_M = 32
FAISS_HNSW_EF_SEARCH = 128
#: Rows asked of faiss per query vector: what the store is asked (assets x frames per asset).
FAISS_ROWS = CANDIDATES_PER_FRAME * FRAMES_PER_ASSET
#: Assets compared for recall@10.
RECALL_AT = 10
#: Key of the query stream in the seed (the asset chunks use their first asset number, below it).
_QUERY_STREAM = 2**31 - 1


def faiss_module() -> Any:
    """faiss, imported on first use; a :class:`MissingDependencyError` where it is not installed."""
    try:
        import faiss
    except ImportError as exc:
        raise MissingDependencyError("vecsim bench scale needs faiss-cpu: pip install 'vecsim[bench]'") from exc
    return faiss


def parse_rows(text: str | Sequence[int]) -> list[int]:
    """``"10000,100000"`` -> ``[10000, 100000]``: the sizes to measure, increasing positive integers."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        rows = [int(str(p).strip().replace("_", "")) for p in parts]
    except ValueError:
        rows = []
    if not rows or any(r <= 0 for r in rows) or any(b <= a for a, b in itertools.pairwise(rows)):
        raise InvalidRequestError(f"--rows must be increasing positive integers, comma-separated "
                                  f"(e.g. 10000,100000,1000000), got {text!r}")
    return rows


# --- synthetic vectors ---------------------------------------------------------------------------

_CENTRES: dict[tuple[str, str], np.ndarray] = {}


def _photo_variants(image: Image.Image) -> list[Image.Image]:
    """The photo, mirrored, and two crops (70 % of each side, top left and bottom right)."""
    image = image.copy()
    image.thumbnail((384, 384))  # the descriptor downsizes anyway; this only makes it quicker
    w, h = image.size
    return [image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), image.crop((0, 0, w * 7 // 10, h * 7 // 10)),
            image.crop((w * 3 // 10, h * 3 // 10, w, h))]


def real_centres(descriptor: Descriptor) -> np.ndarray:
    """The descriptor's vectors of scikit-image's colour photos and edits of them (4 each: 32
    for the 8 photos), unit float32 rows; computed once per descriptor and process."""
    key = (descriptor.name, descriptor.version)
    if key not in _CENTRES:
        from ..sample_media import sample_photo

        images = [v for name in PHOTOS for v in _photo_variants(sample_photo(name))]
        vectors = np.asarray(descriptor.embed(images), dtype=np.float32)
        _CENTRES[key] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return _CENTRES[key].copy()


def turned(base: np.ndarray, cosine: np.ndarray | float, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors at ``cosine`` from each unit row of ``base``: the row turned towards a random
    direction orthogonal to it."""
    g = rng.standard_normal(base.shape, dtype=np.float32)
    g -= np.sum(g * base, axis=1, keepdims=True) * base
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    c = np.broadcast_to(np.asarray(cosine, dtype=np.float32), (len(base),))[:, None]
    out = c * base + np.sqrt(1 - c * c) * g
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def task_id(asset: int) -> str:
    return f"s{asset:09d}"


class Corpus:
    """The synthetic rows written so far, in one preallocated copy: vectors (float32), PDQ hashes
    (32 bytes) and the asset of each row. Chunks are generated into it in place."""

    def __init__(self, centres: np.ndarray, max_rows: int, frames_per_asset: int, seed: int):
        self.centres = centres
        self.frames_per_asset = frames_per_asset
        self.seed = seed
        self.vectors = np.empty((max_rows, centres.shape[1]), dtype=np.float32)
        self.pdq = np.empty((max_rows, 32), dtype=np.uint8)
        self.asset_of = np.empty(max_rows, dtype=np.int32)
        self.rows = 0
        self.assets = 0

    @property
    def bytes_per_row(self) -> int:
        """What this copy holds per row (subtracted from the RSS growth to estimate the store's)."""
        return self.vectors.itemsize * self.vectors.shape[1] + self.pdq.shape[1] + self.asset_of.itemsize

    def chunk(self, max_rows: int) -> tuple[list[FrameRow], list[AssetRecord]]:
        """Generate the next assets, ``max_rows`` frame rows at most (whole assets of
        ``frames_per_asset`` frames, the last one shorter where ``max_rows`` cuts it)."""
        fpa = self.frames_per_asset
        n_assets = math.ceil(max_rows / fpa)
        counts = np.full(n_assets, fpa, dtype=np.int64)
        counts[-1] = max_rows - fpa * (n_assets - 1)
        n = int(counts.sum())
        r0, a0 = self.rows, self.assets
        rng = np.random.default_rng([self.seed, a0])
        centre = self.centres[rng.integers(len(self.centres), size=n_assets)]
        assets = turned(centre, rng.uniform(*ASSET_COSINE, n_assets).astype(np.float32), rng)
        base = np.repeat(assets, counts, axis=0)
        self.vectors[r0 : r0 + n] = turned(base, rng.uniform(*FRAME_COSINE, n).astype(np.float32), rng)
        self.pdq[r0 : r0 + n] = rng.integers(0, 256, (n, 32), dtype=np.uint8)
        self.asset_of[r0 : r0 + n] = np.repeat(np.arange(a0, a0 + n_assets, dtype=np.int32), counts)
        frame = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
        rows = [FrameRow(task_id(int(self.asset_of[r0 + i])), GENERATION, int(f), float(f), float(f + 1),
                         self.vectors[r0 + i], self.pdq[r0 + i].tobytes().hex())
                for i, f in enumerate(frame)]
        records = [AssetRecord(task_id(a0 + j), GENERATION, "video" if fpa > 1 else "image", task_id(a0 + j),
                               float(c) if fpa > 1 else 0.0, int(c)) for j, c in enumerate(counts)]
        self.rows += n
        self.assets += n_assets
        return rows, records


@dataclass
class Queries:
    """Query vectors (each a noisy copy of a stored frame), the stand-ins of their quarter turns,
    their dihedral PDQ hashes, and the asset each copies."""

    vectors: np.ndarray
    turns: list[np.ndarray]
    hashes: list[DihedralHash]
    asset: np.ndarray


def make_queries(corpus: Corpus, n: int, seed: int, turns: int) -> Queries:
    """``n`` queries from random frames of the rows written so far (seeded): the vector turned to
    :data:`QUERY_COSINE` from the frame's, ``turns`` vectors far from it for its quarter turns, and
    the frame's PDQ hash with :data:`PDQ_FLIPPED_BITS` bits flipped as the first of 8 dihedral
    hashes (the other 7 random)."""
    rng = np.random.default_rng([seed, _QUERY_STREAM])
    src = rng.choice(corpus.rows, size=n, replace=n > corpus.rows)
    vectors = turned(corpus.vectors[src], QUERY_COSINE, rng)
    turn_vectors = [turned(vectors, TURN_COSINE, rng) for _ in range(turns)]
    hashes = []
    for s in src:
        bits = np.unpackbits(corpus.pdq[s])
        bits[rng.choice(bits.size, PDQ_FLIPPED_BITS, replace=False)] ^= 1
        others = rng.integers(0, 256, (7, 32), dtype=np.uint8)
        hashes.append(DihedralHash((np.packbits(bits).tobytes().hex(), *(o.tobytes().hex() for o in others)), 100))
    return Queries(vectors, turn_vectors, hashes, corpus.asset_of[src].copy())


# --- measuring -----------------------------------------------------------------------------------


def ranked_assets(hits: list[Hit], n: int = RECALL_AT) -> list[str]:
    """The first ``n`` distinct assets of a store's hits, best frame first."""
    best: dict[str, float] = {}
    for h in hits:
        best[h.task_id] = max(h.raw_score, best.get(h.task_id, -math.inf))
    return sorted(best, key=best.__getitem__, reverse=True)[:n]


def first_assets(rows: np.ndarray, asset_of: np.ndarray, n: int = RECALL_AT) -> list[str]:
    """The first ``n`` distinct assets of faiss result rows (best first; -1 = no row)."""
    out: list[str] = []
    for r in rows:
        if r < 0:
            break
        t = task_id(int(asset_of[r]))
        if t not in out:
            out.append(t)
            if len(out) == n:
                break
    return out


def recall(found: list[list[str]], exact: list[list[str]]) -> float:
    """Mean over queries of the share of the exact top assets that were found."""
    return statistics.mean(len(set(f) & set(e)) / len(e) for f, e in zip(found, exact))


def rss_bytes() -> int | None:
    """VmRSS of this process (None where /proc is not there)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def local_path(uri: str) -> Path | None:
    """The folder or file of a local index URI (None for a server)."""
    from vecsim.adapters import engine_of

    if engine_of(uri) not in ("milvus-lite", "qdrant-edge", "qdrant-local"):
        return None
    for scheme in ("milvus-lite:", "qdrant-edge:", "qdrant-local:"):
        uri = uri.removeprefix(scheme)
    return Path(uri).expanduser()


def disk_bytes(path: Path) -> int:
    """Bytes allocated on disk under ``path`` (as ``du``: blocks, each hard-linked file once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    files = [path] if path.is_file() else [Path(d) / f for d, _, fs in os.walk(path) for f in fs]
    for f in files:
        try:
            st = f.lstat()
        except OSError:
            continue  # removed meanwhile
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def one_by_one_ms(faiss: Any, index: Any, vectors: np.ndarray, k: int = FAISS_ROWS) -> list[float]:
    """Milliseconds of a faiss search of each vector alone, for ``k`` rows, on one thread: faiss
    splits even one query's flat scan over its OpenMP threads, which on a busy machine turns
    0.7 ms into 20+ ms of waiting at 20 000 rows (measured on 2 cores)."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        out = []
        for v in vectors:
            t = time.perf_counter()
            index.search(v[None], k)
            out.append((time.perf_counter() - t) * 1000)
        return out
    finally:
        faiss.omp_set_num_threads(threads)


def search_one(store: StoreReader, vector: np.ndarray) -> list[Hit]:
    """The store's search of one query vector, as a query makes it (``CANDIDATES_PER_FRAME``
    assets, ``FRAMES_PER_ASSET`` frames each)."""
    return store.search(vector[None], limit=CANDIDATES_PER_FRAME, per_asset=FRAMES_PER_ASSET)[0]


def time_store(store: StoreReader, qs: Queries, descriptor: Descriptor
               ) -> tuple[list[float], list[list[str]], list[float], list[bool]]:
    """Each query's store search (ms, and its top assets), then each query as a whole from its
    vectors (ms, and whether its asset comes first): :func:`~vecsim.search.search_frames` of the
    vector and its quarter-turn stand-ins, :func:`~vecsim.search.match_assets` with the
    descriptor's calibration and ``query``'s default threshold and top_k."""
    from ..index import DEFAULT_THRESHOLD, DEFAULT_TOP_K
    from ..media.options import DEFAULT_FPS

    search_ms, top = [], []
    for v in qs.vectors:
        t = time.perf_counter()
        hits = search_one(store, v)
        search_ms.append((time.perf_counter() - t) * 1000)
        top.append(ranked_assets(hits))
    query_ms, first = [], []
    for i in range(len(qs.vectors)):
        batch = QueryBatch([0.0], [qs.vectors[i : i + 1], *(tv[i : i + 1] for tv in qs.turns)], [qs.hashes[i]])
        t = time.perf_counter()
        frames = search_frames(store, [batch], top_k=DEFAULT_TOP_K)
        out = match_assets(store, frames, descriptor.calibration, threshold=DEFAULT_THRESHOLD, top_k=DEFAULT_TOP_K,
                           interval=1.0 / DEFAULT_FPS, query_duration=0.0)
        query_ms.append((time.perf_counter() - t) * 1000)
        first.append(bool(out) and out[0].task_id == task_id(int(qs.asset[i])))
    return search_ms, top, query_ms, first


@dataclass
class FaissTimes:
    exact_top: list[list[str]]  # per query, the exact top assets (IndexFlatIP, best frame per asset)
    flat_ms: list[float]
    hnsw_ms: list[float]
    hnsw_build_s: float
    hnsw_top: list[list[str]]


def time_faiss(faiss: Any, corpus: Corpus, qs: Queries, hnsw: bool = True) -> FaissTimes:
    """faiss on the rows written so far: the exact top assets of each query and the latency of
    ``IndexFlatIP``, then the build time, latency and top assets of ``IndexHNSWFlat``; each index
    is freed before the next is built. Builds and the batched top-asset searches use every
    thread, the timed searches one (:func:`one_by_one_ms`). ``hnsw=False`` skips the HNSW part
    (its figures are then NaN): it is the same for every engine measured on the same seed."""
    xb = corpus.vectors[: corpus.rows]
    dim = xb.shape[1]
    k = min(corpus.rows, RECALL_AT * corpus.frames_per_asset)  # any 10 x fpa rows hold >= 10 assets
    flat = faiss.IndexFlatIP(dim)
    flat.add(xb)
    _, rows = flat.search(qs.vectors, k)
    exact_top = [first_assets(r, corpus.asset_of) for r in rows]
    flat_ms = one_by_one_ms(faiss, flat, qs.vectors)
    del flat
    if not hnsw:
        return FaissTimes(exact_top, flat_ms, [math.nan], math.nan, [[] for _ in exact_top])
    graph = faiss.IndexHNSWFlat(dim, FAISS_HNSW_M, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efSearch = FAISS_HNSW_EF_SEARCH
    t = time.perf_counter()
    graph.add(xb)
    build_s = time.perf_counter() - t
    hnsw_ms = one_by_one_ms(faiss, graph, qs.vectors)
    _, rows = graph.search(qs.vectors, k)
    hnsw_top = [first_assets(r, corpus.asset_of) for r in rows]
    return FaissTimes(exact_top, flat_ms, hnsw_ms, build_s, hnsw_top)


@dataclass
class ScaleStep:
    """What one size measured. Latencies in ms; ``*_p50`` / ``*_p95`` over the queries."""

    rows: int
    assets: int
    load_s: float  # seconds in insert_frames + commit_assets for this step's rows
    load_rows_per_s: float
    build_s: float
    search_ms_p50: float  # store.search of one query vector, as a query makes it
    search_ms_p95: float
    query_ms_p50: float  # a whole image query from vectors: search_frames + match_assets
    query_ms_p95: float
    recall_at_10: float  # assets of the store's top 10 also in the exact top 10, mean
    right_asset_top10: float  # the query's asset among the store's top 10 assets
    right_asset_first: float  # the query's asset first in the query's answer
    faiss_flat_ms_p50: float
    faiss_hnsw_ms_p50: float
    faiss_hnsw_build_s: float
    faiss_hnsw_recall_at_10: float
    reopen_s: float  # close, open_store, first search
    rss_mb: float | None  # VmRSS after reopen + one search, before faiss
    rss_bytes_per_row: float | None  # (RSS - RSS of the empty store - the bench's own copy) / rows
    disk_bytes: int | None  # du of the index path (None: a server)
    disk_bytes_per_row: float | None

    def row(self) -> list[str]:
        def opt(v: float | None, fmt: str) -> str:
            return "n/a" if v is None else format(v, fmt)

        return [f"{self.rows:,}", f"{self.assets:,}", f"{self.load_rows_per_s:,.0f}", f"{self.build_s:.1f}",
                f"{self.search_ms_p50:.2f} / {self.search_ms_p95:.2f}", f"{self.query_ms_p50:.1f} / {self.query_ms_p95:.1f}",
                f"{self.recall_at_10:.3f}", f"{self.right_asset_top10:.3f} / {self.right_asset_first:.3f}",
                f"{self.faiss_flat_ms_p50:.2f}",
                "not run" if math.isnan(self.faiss_hnsw_ms_p50)
                else f"{self.faiss_hnsw_ms_p50:.2f} ({self.faiss_hnsw_build_s:.1f})",
                f"{self.reopen_s:.2f}", opt(self.rss_mb, ",.0f"),
                f"{opt(self.rss_bytes_per_row, ',.0f')} / {opt(self.disk_bytes_per_row, ',.0f')}",
                opt(None if self.disk_bytes is None else self.disk_bytes / 2**20, ",.1f")]


TABLE_HEADER = ["rows", "assets", "load rows/s", "build s", "search ms p50 / p95", "query ms p50 / p95", "recall@10",
                "right asset top 10 / first", "faiss flat ms p50", "faiss HNSW ms p50 (build s)", "reopen s", "RSS MB",
                "bytes/row RSS / disk", "disk MB"]


@dataclass
class ScaleBenchReport:
    engine: str
    engine_version: str
    uri: str
    collection: str
    index: dict[str, Any]
    descriptor: str
    dim: int
    frames_per_asset: int
    queries: int
    seed: int
    centres: int
    baseline_rss_mb: float | None  # the process with the empty store open, before loading
    machine: dict[str, Any]
    date: str
    steps: list[ScaleStep] = field(default_factory=list)

    def to_markdown(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.index.items() if k not in ("type", "metric"))
        head = (f"Scaling: {self.engine} {self.engine_version}, {self.index['type']}"
                f"{f' ({params})' if params else ''}, {self.index.get('metric', '')}; descriptor {self.descriptor} "
                f"({self.dim}-d, {self.centres} real centres); {self.frames_per_asset} frames per asset; "
                f"{self.queries} queries; seed {self.seed}; {self.machine.get('cpus')} CPUs; {self.date}")
        lines = [head, ""]
        lines += table(TABLE_HEADER, [s.row() for s in self.steps])
        return "\n".join(lines)


def machine(faiss: Any) -> dict[str, Any]:
    """CPU count (and the CPUs this process may use), platform, Python and faiss versions."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"cpus": os.cpu_count(), "cpus_usable": usable, "platform": platform.platform(),
            "processor": platform.processor(), "python": platform.python_version(),
            "faiss": getattr(faiss, "__version__", "?")}


def run_scale_bench(
    *,
    uri: str,
    rows: Sequence[int] | str,
    index: IndexConfig,
    collection: str = "bench_scale",
    queries: int = 200,
    frames_per_asset: int = 10,
    seed: int = 0,
    descriptor: str | Descriptor | None = None,
    faiss_hnsw: bool = True,
    progress: Callable[[str], None] = lambda _: None,
    **store_options: Any,
) -> ScaleBenchReport:
    """Grow one fresh collection at ``uri`` through the sizes ``rows`` and measure each size
    (see the module docstring). The collection is left in place."""
    from vecsim.adapters import open_store

    from ..embedding import QUARTER_TURNS

    sizes = parse_rows(rows)
    if queries < 1 or frames_per_asset < 1:
        raise InvalidRequestError(f"queries and frames per asset must be at least 1, got {queries} and {frames_per_asset}")
    faiss = faiss_module()
    desc = load_descriptor(descriptor)
    progress(f"embedding the centres ({len(PHOTOS)} photos, {desc.name})")
    centres = real_centres(desc)
    spec = CollectionSpec(descriptor_name=desc.name, descriptor_version=desc.version, dim=desc.dim, index=index)
    path = local_path(uri)

    store = open_store(uri, collection, spec, **store_options)
    try:
        if store.count() != (0, 0):
            raise InvalidRequestError(f"store: collection {collection!r} at {uri} is not empty; the scaling "
                                      "benchmark needs a fresh one")
        if (store.spec.descriptor_name, store.spec.dim) != (desc.name, desc.dim):
            raise InvalidRequestError(f"store: collection {collection!r} was made for {store.spec.descriptor_name} "
                                      f"({store.spec.dim}-d), the benchmark uses {desc.name} ({desc.dim}-d)")
        gc.collect()
        baseline = rss_bytes()
        report = ScaleBenchReport(
            engine=store.engine, engine_version=store.engine_version, uri=uri, collection=collection,
            index=store.spec.index.model_dump(mode="json"), descriptor=f"{desc.name}/{desc.version}", dim=desc.dim,
            frames_per_asset=frames_per_asset, queries=queries, seed=seed, centres=len(centres),
            baseline_rss_mb=None if baseline is None else baseline / 2**20,
            machine=machine(faiss),
            date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        )
        corpus = Corpus(centres, sizes[-1], frames_per_asset, seed)
        qs: Queries | None = None
        for size in sizes:
            start = corpus.rows
            progress(f"{size:,} rows: loading {size - start:,}")
            load_s = 0.0
            frame_rows: list[FrameRow] = []
            records: list[AssetRecord] = []
            while corpus.rows < size:
                chunk_rows = min(size - corpus.rows, max(1, WRITE_ROWS // frames_per_asset) * frames_per_asset)
                frame_rows, records = corpus.chunk(chunk_rows)
                t = time.perf_counter()
                store.insert_frames(frame_rows)
                store.commit_assets(records)
                load_s += time.perf_counter() - t
            del frame_rows, records
            progress(f"{size:,} rows: building the index")
            t = time.perf_counter()
            store.build_index()
            build_s = time.perf_counter() - t
            if qs is None:
                qs = make_queries(corpus, queries, seed, len(QUARTER_TURNS))

            progress(f"{size:,} rows: {queries} searches and queries")
            search_ms, store_top, query_ms, first = time_store(store, qs, desc)

            progress(f"{size:,} rows: close, reopen, search")
            store.close()
            gc.collect()
            t = time.perf_counter()
            store = open_store(uri, collection, spec, **store_options)
            search_one(store, qs.vectors[0])
            reopen_s = time.perf_counter() - t
            rss = rss_bytes()
            disk = disk_bytes(path) if path is not None else None

            progress(f"{size:,} rows: faiss flat and HNSW")
            fx = time_faiss(faiss, corpus, qs, hnsw=faiss_hnsw)
            gc.collect()

            n = corpus.rows
            own = rss - baseline - n * corpus.bytes_per_row if rss is not None and baseline is not None else None
            step = ScaleStep(
                rows=n, assets=corpus.assets, load_s=load_s, load_rows_per_s=(n - start) / load_s if load_s else 0.0,
                build_s=build_s,
                search_ms_p50=statistics.median(search_ms), search_ms_p95=percentile(search_ms, 0.95),
                query_ms_p50=statistics.median(query_ms), query_ms_p95=percentile(query_ms, 0.95),
                recall_at_10=recall(store_top, fx.exact_top),
                right_asset_top10=float(np.mean([task_id(int(a)) in top for a, top in zip(qs.asset, store_top)])),
                right_asset_first=float(np.mean(first)),
                faiss_flat_ms_p50=statistics.median(fx.flat_ms), faiss_hnsw_ms_p50=statistics.median(fx.hnsw_ms),
                faiss_hnsw_build_s=fx.hnsw_build_s,
                faiss_hnsw_recall_at_10=recall(fx.hnsw_top, fx.exact_top) if faiss_hnsw else math.nan,
                reopen_s=reopen_s, rss_mb=None if rss is None else rss / 2**20,
                rss_bytes_per_row=None if own is None else own / n,
                disk_bytes=disk, disk_bytes_per_row=None if disk is None else disk / n,
            )
            report.steps.append(step)
            progress("| " + " | ".join(step.row()) + " |")
        return report
    finally:
        store.close()
