"""Capacity estimate of an index: frames, memory, disk, nodes, query throughput and ingest time.

Every constant below is a per-frame figure measured on this repository's 2-core CPU machine (no
GPU), or computed from measured ones; its comment names the run. docs/sizing.md quotes the same
constants, and its tables are this module's output (tests/test_sizing.py checks that they agree).
Nothing was measured past 1 M frames: larger figures are extrapolations (``Estimate.extrapolated``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .errors import InvalidRequestError
from .index_config import INDEX_TYPES, parse_index_config

ENGINES = ("qdrant", "milvus")
GIB = 1024**3

# --- what one frame row costs ----------------------------------------------------------------------


@dataclass(frozen=True)
class RowCost:
    """Bytes per frame row of the default 256-d descriptor, without keypoints: ``ram`` what the
    engine keeps in memory to search (vectors or codes, graph, ids, the small payload), ``disk``
    what it writes; ``measured`` False where computed from measured parts (``source`` says how)."""

    ram: int
    disk: int
    measured: bool
    source: str


#: Qdrant: Qdrant Edge (the embedded default) is the engine a Qdrant server runs. HNSW is measured
#: at 1 M rows by ``vecsim bench scale`` (docs/benchmark.md: RSS per row after reopening and one
#: search, the benchmark's own copy of the vectors subtracted, and ``du`` per row). The other types
#: are computed from it: disk, plus the difference ``scripts/measure_sizing.py store --no-local``
#: measured between that type and HNSW at 10 k -> 30 k rows (FLAT 2,381, HNSW 2,474, HNSW_SQ8
#: 2,747, HNSW_PQ 2,557 B/row); RAM, minus the 128-byte graph (FLAT) or with the 1,024-byte float32
#: vector replaced by its code (SQ8 256 B, PQ 64 B), the originals staying on disk for re-scoring.
QDRANT: dict[str, RowCost] = {
    "FLAT": RowCost(ram=2_061 - 128, disk=1_793 + 2_381 - 2_474, measured=False,
                    source="bench scale HNSW at 1 M, less the graph; disk difference measured"),
    "HNSW": RowCost(ram=2_061, disk=1_793, measured=True, source="vecsim bench scale, Qdrant Edge, 1 M rows"),
    "HNSW_SQ8": RowCost(ram=2_061 - 1_024 + 256, disk=1_793 + 2_747 - 2_474, measured=False,
                        source="bench scale HNSW at 1 M, 256-byte codes in RAM; disk difference measured"),
    "HNSW_PQ": RowCost(ram=2_061 - 1_024 + 64, disk=1_793 + 2_557 - 2_474, measured=False,
                       source="bench scale HNSW at 1 M, 64-byte codes in RAM; disk difference measured"),
}
#: Estimated from the schema, not measured: task_id, generation, project, pdq (64 hex chars),
#: frame, timestamp, span_end and the primary key, about 200 bytes a row as Milvus holds them.
MILVUS_SCALAR_BYTES = 200
#: Milvus Lite's disk per frame row with keypoints, 9,281 B (scripts/measure_sizing.py store,
#: milvus-lite:FLAT, 5 k -> 15 k rows), less the keypoints (KEYPOINT_DISK_BYTES): the raw row.
MILVUS_RAW_ROW_DISK = 9_281 - 7_181
#: Bytes per vector of each index (docs/index-configs.md, "The types"; graph links 2·M·4 = 128 B).
MILVUS_INDEX_BYTES = {"FLAT": 1024, "IVF_FLAT": 1024, "IVF_SQ8": 256, "IVF_PQ": 64, "HNSW": 1024 + 128,
                      "HNSW_SQ8": 256 + 128, "HNSW_PQ": 64 + 128}
#: Milvus server: computed. Its memory holds the loaded index plus every scalar field (Milvus loads
#: a collection's fields into memory): the index's bytes per vector (docs/index-configs.md, "The
#: types") plus MILVUS_SCALAR_BYTES. Disk (object storage): the raw rows as Milvus Lite writes them
#: (measured) plus the index file (the index's bytes per vector).
MILVUS: dict[str, RowCost] = {
    name: RowCost(ram=b + MILVUS_SCALAR_BYTES, disk=MILVUS_RAW_ROW_DISK + b, measured=False,
                  source="index bytes per vector + scalar fields; raw rows as Milvus Lite writes them")
    for name, b in MILVUS_INDEX_BYTES.items()
}

#: Keypoints of one frame (geometric verification, on by default): 5,176 bytes packed on average
#: (docs/benchmark.md, "Look-alikes"), stored as base64 text. Disk: measured, du growth per row with
#: keypoints minus without (qdrant-edge HNSW); RAM: Qdrant Edge warms the payload into memory at open
#: (RSS 8,296 with, 1,791 B/row without: page cache, not counted below); a Qdrant server keeps
#: payload on disk (``on_disk_payload``, its default); a Milvus server loads every field into
#: memory, so there the base64 text (KEYPOINT_TEXT_BYTES) counts in RAM unless mmap is enabled.
KEYPOINT_DISK_BYTES = 9_655 - 2_474  # measure_sizing.py store, qdrant-edge:HNSW with and without
KEYPOINT_TEXT_BYTES = 5176 * 4 // 3
#: One asset record (metadata, source, counts): du growth per record of the assets shard
#: (scripts/measure_sizing.py store, qdrant-edge, 1k->3k records of a 40-character source and a
#: 2-key metadata object). Held in memory too (warmed on Qdrant Edge, loaded on Milvus).
ASSET_RECORD_BYTES = 635

# --- speed -----------------------------------------------------------------------------------------

#: Frames one CPU core turns into rows per second: embedding (default descriptor, batches of 16),
#: PDQ hash and keypoints of a 512x288 frame, one thread: ``scripts/measure_sizing.py embed
#: --threads 1``, median of 3 runs of 96 frames (17.9 / 18.8 / 19.7; without keypoints 20.3) on
#: the shared 2-core machine under a load of ~4, so conservative: on an idle machine the embedding
#: alone ran at 103 images/s on 2 cores (docs/benchmark.md).
FRAMES_PER_CORE_S = 18.8
FRAMES_PER_CORE_S_NO_KEYPOINTS = 20.3
#: Decoding video for 1 fps sampling, core-seconds per second of video: generated 1280x720 h264
#: decoded at 46x real time on 2 cores (docs/video.md, "Measurements"); smaller videos decode
#: 2-3x faster there. Decode cost follows the video's length, not the sampling rate.
DECODE_CORE_S_PER_VIDEO_S = 2 / 46
#: Query vectors searched per image query: the image and its two quarter turns (docs/concepts.md).
VECTORS_PER_QUERY = 3

#: Store search of one query vector (10 assets x 5 frames), ms p50, at measured sizes:
#: (rows, ms) points, and the exponent used past the last point (ms ~ rows ** exponent).
_HNSW_POINTS = ((10_000, 1.60), (100_000, 3.57), (1_000_000, 9.18))
_HNSW_EXP = math.log10(9.18 / 3.57)  # the growth per decade between 100 k and 1 M rows: 0.41
SEARCH_CURVES: dict[tuple[str, str], tuple[tuple[tuple[int, float], ...], float, str]] = {
    # vecsim bench scale, Qdrant Edge HNSW M=16 ef=1024 (docs/benchmark.md); HNSW_SQ8 searched as
    # fast at 50 k rows (1.8 vs 1.9 ms, docs/index-configs.md), so it shares the curve.
    ("qdrant", "HNSW"): (_HNSW_POINTS, _HNSW_EXP, "bench scale, Qdrant Edge HNSW, 10 k / 100 k / 1 M"),
    # HNSW_PQ: twice HNSW's time at 50 k rows (3.8 vs 1.9 ms, docs/index-configs.md).
    ("qdrant", "HNSW_PQ"): (tuple((r, 2 * ms) for r, ms in _HNSW_POINTS), _HNSW_EXP, "HNSW curve x 2"),
    # measure_sizing.py store --no-local, qdrant-edge:FLAT at 10 k and 30 k rows; exact: linear past.
    ("qdrant", "FLAT"): (((10_000, 2.95), (30_000, 4.68)), 1.0, "measure_sizing.py, Qdrant Edge FLAT"),
    # vecsim bench scale, Milvus 2.3.5 server FLAT (docs/benchmark.md); exact: linear past 1 M.
    ("milvus", "FLAT"): (((10_000, 17.2), (100_000, 80.8), (1_000_000, 167.5)), 1.0, "bench scale, Milvus 2.3.5 FLAT"),
}


#: Milvus 2.3.5 server, one store search at 50,154 1280-d vectors, ms p50 (docs/index-configs.md,
#: "Measured"): IVF_FLAT nlist 256 nprobe 16, IVF_PQ m=64 with rerank, HNSW M=16. Mostly fixed
#: costs at that size (the test launcher's relay, 2.3's client-side grouping of 800 rows, the
#: re-ranking round trip). IVF_SQ8, HNSW_SQ8 and HNSW_PQ were not measured: they take the figure
#: of their unquantized type. Past 50 k rows the growth is added to it: IVF scans
#: ``nprobe · N / nlist + nlist`` vectors with ``nlist = max(1024, 4·sqrt(N))`` (the advice of
#: docs/index-configs.md), each at faiss flat's measured cost (FLAT_MS_PER_ROW); HNSW grows as
#: Qdrant's graph did from 50 k rows (the curve above).
MILVUS_AT_50K = {"IVF_FLAT": 10.3, "IVF_SQ8": 10.3, "IVF_PQ": 33.6, "HNSW": 14.6, "HNSW_SQ8": 14.6, "HNSW_PQ": 14.6}
MILVUS_MEASURED_ROWS = 50_154
#: faiss IndexFlatIP, one 256-d query vector over 1 M rows: 48.22 ms (vecsim bench scale).
FLAT_MS_PER_ROW = 48.22 / 1_000_000


def _ivf_scanned(rows: int, nprobe: int) -> float:
    nlist = max(1024.0, 4 * math.sqrt(rows))
    return nprobe * rows / nlist + nlist


def _curve(key: tuple[str, str], rows: int) -> tuple[float, bool]:
    points, exponent, _ = SEARCH_CURVES[key]
    if rows <= points[0][0]:
        return points[0][1], False
    for (r0, m0), (r1, m1) in zip(points, points[1:]):
        if rows <= r1:
            return m0 * (m1 / m0) ** (math.log(rows / r0) / math.log(r1 / r0)), False
    r_last, m_last = points[-1]
    return m_last * (rows / r_last) ** exponent, True


# --- the estimate ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """The machine the index runs on; ``ram_usable`` / ``disk_usable``: the share the index may
    fill (the rest: the OS, the engine's working memory, compaction, growth)."""

    ram_gib: float = 64.0
    cores: int = 16
    disk_gib: float = 1024.0
    ram_usable: float = 0.75
    disk_usable: float = 0.8


@dataclass(frozen=True)
class Estimate:
    engine: str
    index: str
    frames: int
    assets: int
    keypoints: bool
    ram_bytes: int
    disk_bytes: int
    nodes: int
    shards: int
    replicas: int
    search_ms: float  # one image query's store searches on one shard (VECTORS_PER_QUERY vectors)
    queries_per_s: float  # image queries per second of all nodes' cores, searches only
    ingest_core_hours: float
    ingest_hours: float
    workers: int
    cores_per_worker: int
    extrapolated: bool  # a figure rests on a size past the largest measured one (1 M rows a shard)
    measured_row_cost: bool  # the per-row bytes were measured (False: computed, see the constants)

    def to_dict(self) -> dict:
        return asdict(self)


def frames_for(images: int = 0, video_hours: float = 0.0, fps: float = 1.0, keep: float = 1.0) -> int:
    """Frame rows of ``images`` images (one each) and ``video_hours`` of video sampled at ``fps``,
    of which ``keep`` (0-1] survive deduplication of still stretches (``--dedupe``)."""
    _check(images=images, video_hours=video_hours)
    if not 0 < fps <= 60:
        raise InvalidRequestError(f"fps must be in (0, 60], got {fps}")
    if not 0 < keep <= 1:
        raise InvalidRequestError(f"keep must be in (0, 1], got {keep}")
    return images + round(video_hours * 3600 * fps * keep)


def row_cost(engine: str, index: str) -> RowCost:
    engine, index = _engine_index(engine, index)
    return (QDRANT if engine == "qdrant" else MILVUS)[index]


def search_ms(engine: str, index: str, rows: int) -> tuple[float, bool]:
    """One query vector's store search at ``rows`` rows a shard (ms), and whether that is past the
    largest measured size (extrapolated). Between measured points: log-log interpolation; past the
    last, the curve's exponent (FLAT: linear), or for Milvus's approximate types the growth above
    their 50 k-row measurement (MILVUS_AT_50K)."""
    engine, index = _engine_index(engine, index)
    rows = max(rows, 1)
    if engine == "qdrant":
        return _curve((engine, "HNSW" if index == "HNSW_SQ8" else index), rows)
    if index == "FLAT":
        return _curve((engine, index), rows)
    base, past = MILVUS_AT_50K[index], rows > MILVUS_MEASURED_ROWS
    if index.startswith("IVF"):
        nprobe = parse_index_config(index).nprobe  # vecsim's default for the type
        grown = FLAT_MS_PER_ROW * (_ivf_scanned(rows, nprobe) - _ivf_scanned(MILVUS_MEASURED_ROWS, nprobe))
    else:
        grown = _curve(("qdrant", "HNSW"), rows)[0] - _curve(("qdrant", "HNSW"), MILVUS_MEASURED_ROWS)[0]
    return base + max(0.0, grown), past


def estimate(frames: int, assets: int | None = None, engine: str = "qdrant", index: str = "HNSW",
             keypoints: bool = True, workers: int = 1, cores_per_worker: int = 16, video_hours: float = 0.0,
             replicas: int = 1, node: Node | None = None) -> Estimate:
    """The estimate for ``frames`` frame rows in ``assets`` assets (default: one per frame, as for
    images). ``video_hours`` adds the decoding to the ingest time. Raises ``InvalidRequestError``
    on a bad value or an index type the engine does not build."""
    node = node or Node()
    assets = frames if assets is None else assets
    _check(frames=frames, assets=assets, video_hours=video_hours)
    _check_positive(workers=workers, cores_per_worker=cores_per_worker, replicas=replicas)
    if frames == 0:
        raise InvalidRequestError("nothing to size: give images, video hours or frames")
    engine, index = _engine_index(engine, index)
    cost = row_cost(engine, index)
    ram_row, disk_row = cost.ram, cost.disk
    if keypoints:
        disk_row += KEYPOINT_DISK_BYTES
        ram_row += KEYPOINT_TEXT_BYTES if engine == "milvus" else 0  # Qdrant: payload on disk
    ram = frames * ram_row + assets * ASSET_RECORD_BYTES
    disk = frames * disk_row + assets * ASSET_RECORD_BYTES
    shards = max(1, math.ceil(ram / (node.ram_gib * GIB * node.ram_usable)),
                 math.ceil(disk / (node.disk_gib * GIB * node.disk_usable)))
    ms, extrapolated = search_ms(engine, index, math.ceil(frames / shards))
    query_ms = VECTORS_PER_QUERY * ms
    nodes = shards * replicas
    qps = nodes * node.cores * 1000 / (query_ms * shards)
    core_s = frames / (FRAMES_PER_CORE_S if keypoints else FRAMES_PER_CORE_S_NO_KEYPOINTS)
    core_s += video_hours * 3600 * DECODE_CORE_S_PER_VIDEO_S
    return Estimate(engine=engine, index=index, frames=frames, assets=assets, keypoints=keypoints,
                    ram_bytes=ram, disk_bytes=disk, nodes=nodes, shards=shards, replicas=replicas,
                    search_ms=round(query_ms, 1), queries_per_s=round(qps, 1),
                    ingest_core_hours=round(core_s / 3600, 1),
                    ingest_hours=round(core_s / 3600 / (workers * cores_per_worker), 1),
                    workers=workers, cores_per_worker=cores_per_worker,
                    extrapolated=extrapolated or frames / shards > 1_000_000, measured_row_cost=cost.measured)


def recommend(frames: int, engine: str = "qdrant") -> str:
    """The index type docs/sizing.md recommends for ``frames`` frame rows on ``engine``."""
    engine, _ = _engine_index(engine, "FLAT")
    if engine == "qdrant":
        return "HNSW" if frames <= 20_000_000 else "HNSW_SQ8"
    if frames <= 1_000_000:
        return "FLAT"
    return "HNSW" if frames <= 20_000_000 else "IVF_SQ8"


def _engine_index(engine: str, index: str) -> tuple[str, str]:
    e = engine.strip().lower()
    if e not in ENGINES:
        raise InvalidRequestError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    name = index.strip().upper()
    if name not in INDEX_TYPES:
        raise InvalidRequestError(f"unknown index type {index!r}; choose one of {', '.join(INDEX_TYPES)}")
    table = QDRANT if e == "qdrant" else MILVUS
    if name not in table:
        raise InvalidRequestError(f"{e} does not build {name}; on {e} choose one of "
                                  f"{', '.join(table)} (docs/index-configs.md)")
    return e, name


def _check(**values: float) -> None:
    for name, v in values.items():
        if v < 0 or (isinstance(v, float) and not math.isfinite(v)):
            raise InvalidRequestError(f"{name.replace('_', ' ')} must be a finite number >= 0, got {v}")


def _check_positive(**values: int) -> None:
    for name, v in values.items():
        if v < 1:
            raise InvalidRequestError(f"{name.replace('_', ' ')} must be at least 1, got {v}")


# --- docs/sizing.md's tables -------------------------------------------------------------------------

#: The sizes, workers and columns of the tables in docs/sizing.md (tests/test_sizing.py regenerates
#: them with :func:`markdown_row` and finds each row in the doc).
DOC_SCALES = (1_000_000, 100_000_000, 1_000_000_000, 10_000_000_000)
DOC_WORKERS = 10
DOC_HEADER = ("| frames | index | memory | disk | nodes | search ms / query | queries/s | ingest, 10 x 16 cores | figures |\n"
              "|---|---|---|---|---|---|---|---|---|")


def _human(n: float, unit: str = "") -> str:
    for scale, suffix in ((1e12, " T"), (1e9, " B"), (1e6, " M"), (1e3, " k")):
        if n >= scale:
            return f"{n / scale:.3g}{suffix}{unit}"
    return f"{n:.3g}{' ' + unit if unit else ''}"


def _bytes(n: int) -> str:
    for scale, suffix in ((1024**4, "TiB"), (GIB, "GiB"), (1024**2, "MiB")):
        if n >= scale:
            return f"{n / scale:,.1f} {suffix}"
    return f"{n:,} B"


def _hours(h: float) -> str:
    return f"{h:,.1f} h" if h < 48 else f"{h / 24:,.1f} days"


def markdown_row(est: Estimate) -> str:
    """One row of docs/sizing.md's tables for ``est``."""
    figures = "extrapolated" if est.extrapolated else "measured"
    if not est.measured_row_cost:
        figures += ", bytes computed"
    return (f"| {_human(est.frames)} | {est.index} | {_bytes(est.ram_bytes)} | {_bytes(est.disk_bytes)} | {est.nodes} | "
            f"{est.search_ms:,.1f} | {est.queries_per_s:,.0f} | {_hours(est.ingest_hours)} | {figures} |")


def doc_table(engine: str) -> str:
    """docs/sizing.md's table for ``engine``: each of DOC_SCALES as images (one asset per frame),
    the recommended index, keypoints kept, the default node, DOC_WORKERS x 16 cores ingesting."""
    rows = [markdown_row(estimate(n, n, engine, recommend(n, engine), workers=DOC_WORKERS)) for n in DOC_SCALES]
    return "\n".join([DOC_HEADER, *rows])
