"""Measure project (tenant) isolation on the embedded engines: what the project filter costs a
search, and what the rejected alternative, one collection per project, costs. docs/tenancy.md
reports the numbers.

    python scripts/measure_tenancy.py                       # both parts, both engines (~5-10 min, 2 cores)
    python scripts/measure_tenancy.py search --rows 50000 --projects 1 10 1000
    python scripts/measure_tenancy.py collections --collections 100
    python scripts/measure_tenancy.py --engines qdrant-edge --json out.json

search: for each engine, ``--rows`` frame rows (random unit 256-d vectors, 5 frames per asset, fake
PDQ hashes; no model) are written through the store API (``open_store(...).for_project(p)``,
``insert_frames`` + ``commit_assets``) into a collection with projects, spread round-robin over
1, 10 and 1 000 projects, and the median latency of ``--searches`` searches (random query vectors,
``limit=5``) scoped to a random project is compared with the same rows in a collection without
projects (no filter at all: what vecsim < 0.4 searched). load_s: writing the rows and building the
index; build_s: the build alone (``build_index``: Qdrant Edge's HNSW, Milvus Lite's flush and
segment indexes). All layouts are loaded first and the
searches interleaved (query i on each layout in turn), so a busy machine slows all alike. recall@5: the share of the exact 5 best
assets of the project (numpy) that the search returned. On Milvus Lite the projects layout is
measured twice: ``project`` as a plain field (what vecsim creates) and as a partition key.

collections: the cost of one collection per project: the time to create (and to reopen) ``--collections``
empty collections, the disk space and files they take, and the open file descriptors and memory
(RSS) of the process with all of them open; ``docs/tenancy.md`` extrapolates to thousands.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 256
FRAMES_PER_ASSET = 5
LIMIT = 5
ENGINES = ("qdrant-edge", "milvus-lite")


def _uri(engine: str, folder: Path, name: str) -> str:
    return f"qdrant-edge:{folder / name}" if engine == "qdrant-edge" else f"milvus-lite:{folder / (name + '.db')}"


def _spec(engine: str, projects: bool):
    from vecsim.adapters import default_index
    from vecsim.store import CollectionSpec

    return CollectionSpec("measure-tenancy", "1", DIM, default_index(f"{engine}:x"), projects=projects)


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _disk(path: Path) -> tuple[int, int, int]:
    """(bytes allocated on disk, apparent bytes, files) under ``path``: engines preallocate sparse
    files (a Qdrant Edge WAL segment is 32 MB of mostly holes), so the two differ."""
    used = size = files = 0
    for root, _, names in os.walk(path):
        for n in names:
            try:
                st = os.lstat(os.path.join(root, n))
            except OSError:
                continue
            used += st.st_blocks * 512
            size += st.st_size
            files += 1
    return used, size, files


# --- search latency ------------------------------------------------------------------------------


def _load(store, vectors: np.ndarray, projects: int, pdq: list[str]) -> tuple[dict[str, np.ndarray], float]:
    """Write the rows, asset ``a`` (frames 5a..5a+4) into project ``a % projects``, then build the
    index; returns each project's asset numbers (for the exact reference) and the build's seconds."""
    from vecsim.store import AssetRecord, FrameRow

    n_assets = len(vectors) // FRAMES_PER_ASSET
    by_project: dict[str, list[int]] = {}
    for a in range(n_assets):
        by_project.setdefault(f"p{a % projects}" if store.spec.projects else "", []).append(a)
    for project, assets in by_project.items():
        scoped = store.for_project(project)
        rows = [FrameRow(f"t{a}", "g", f, float(f), float(f + 1), vectors[FRAMES_PER_ASSET * a + f],
                         pdq[(FRAMES_PER_ASSET * a + f) % len(pdq)])
                for a in assets for f in range(FRAMES_PER_ASSET)]
        for i in range(0, len(rows), 1000):
            scoped.insert_frames(rows[i : i + 1000])
        scoped.commit_assets([AssetRecord(f"t{a}", "g", "video", f"t{a}.mp4", 5.0, FRAMES_PER_ASSET) for a in assets])
    t = time.perf_counter()
    store.build_index()
    return {p: np.array(a) for p, a in by_project.items()}, time.perf_counter() - t


def _exact_top(query: np.ndarray, vectors: np.ndarray, assets: np.ndarray) -> set[str]:
    rows = (assets[:, None] * FRAMES_PER_ASSET + np.arange(FRAMES_PER_ASSET)).ravel()
    best = (vectors[rows] @ query).reshape(len(assets), FRAMES_PER_ASSET).max(axis=1)
    return {f"t{assets[i]}" for i in np.argsort(-best)[:LIMIT]}


def search_latency(engine: str, folder: Path, rows: int, project_counts: list[int], searches: int,
                   seed: int = 0) -> list[dict]:
    """Load every layout first, then time the searches interleaved (query i on every layout in
    turn), so that the load of a shared machine falls on all layouts alike."""
    from vecsim.adapters import milvus, open_store

    rng = np.random.default_rng(seed)
    vectors = _unit(rng, rows)
    queries = _unit(rng, searches)
    pdq = [rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex() for _ in range(64)]
    layouts: list[tuple[str, int, bool]] = [("no projects (no filter)", 1, False)]
    for p in project_counts:
        layouts.append(("projects: plain field" if engine == "milvus-lite" else "projects: tenant index", p, True))
        if engine == "milvus-lite":
            layouts.append(("projects: partition key", p, True))
    loaded = []
    for i, (label, projects, scoped) in enumerate(layouts):
        milvus.LITE_PARTITION_KEY = label.endswith("partition key")
        try:
            t = time.perf_counter()
            store = open_store(_uri(engine, folder, f"s{i}"), "c", _spec(engine, scoped))
            by_project, build_s = _load(store, vectors, projects, pdq)
            load_s = time.perf_counter() - t
        finally:
            milvus.LITE_PARTITION_KEY = False
        names = sorted(by_project)
        pick = random.Random(seed)
        asked = [pick.choice(names) for _ in range(searches)]
        views = {p: store.for_project(p) for p in set(asked)}
        loaded.append((store, views, asked, by_project, (load_s, build_s)))
        print(f"{engine} {label} x{projects}: loaded in {load_s:.1f} s", file=sys.stderr, flush=True)
    for store, views, asked, _, _ in loaded:  # warm-up
        for q, p in zip(queries[:10], asked):
            views[p].search(q[None], limit=LIMIT)
    times: list[list[float]] = [[] for _ in loaded]
    found: list[list[set[str]]] = [[] for _ in loaded]
    for i, q in enumerate(queries):
        for k, (_, views, asked, _, _) in enumerate(loaded):
            t = time.perf_counter()
            [hits] = views[asked[i]].search(q[None], limit=LIMIT)
            times[k].append(time.perf_counter() - t)
            found[k].append({h.task_id for h in hits})
    out = []
    for k, ((label, projects, scoped), (store, _, asked, by_project, load_s)) in enumerate(zip(layouts, loaded)):
        store.close()
        recall = [len(got & _exact_top(q, vectors, by_project[p])) / LIMIT
                  for q, p, got in zip(queries, asked, found[k])]
        disk, _, files = _disk(folder / (f"s{k}" if engine == "qdrant-edge" else f"s{k}.db"))
        ts = sorted(times[k])
        row = {"engine": engine, "layout": label, "rows": rows, "projects": projects if scoped else 0,
               "rows_per_project": rows // projects, "median_ms": round(1000 * statistics.median(ts), 2),
               "p95_ms": round(1000 * ts[int(0.95 * len(ts))], 2),
               "recall_at_5": round(float(np.mean(recall)), 3), "load_s": round(load_s[0], 1),
               "build_s": round(load_s[1], 1),
               "disk_mb": round(disk / 2**20, 1), "files": files}
        print(json.dumps(row), file=sys.stderr, flush=True)
        out.append(row)
    return out


# --- one collection per project ------------------------------------------------------------------


def collection_per_project(engine: str, folder: Path, n: int) -> dict:
    from vecsim.adapters import open_store

    uri = _uri(engine, folder, "many")
    spec = _spec(engine, False)
    rss0, fds0 = _rss_mb(), _open_fds()
    t = time.perf_counter()
    stores = [open_store(uri, f"project_{i:05d}", spec) for i in range(n)]
    create_s = time.perf_counter() - t
    rss_open, fds_open = _rss_mb(), _open_fds()
    t = time.perf_counter()
    for s in stores:
        s.close()
    close_s = time.perf_counter() - t
    t = time.perf_counter()
    stores = [open_store(uri, f"project_{i:05d}", spec) for i in range(n)]
    reopen_s = time.perf_counter() - t
    for s in stores:
        s.close()
    disk, apparent, files = _disk(folder / ("many" if engine == "qdrant-edge" else "many.db"))
    row = {"engine": engine, "collections": n, "create_ms_each": round(1000 * create_s / n, 1),
           "reopen_ms_each": round(1000 * reopen_s / n, 1), "close_ms_each": round(1000 * close_s / n, 1),
           "disk_kb_each": round(disk / n / 1024, 1), "apparent_kb_each": round(apparent / n / 1024, 1),
           "files_each": round(files / n, 1),
           "open_fds_each": round((fds_open - fds0) / n, 1), "rss_mb_each": round((rss_open - rss0) / n, 2)}
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


# --- report --------------------------------------------------------------------------------------


def _table(rows: list[dict]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("part", nargs="?", choices=("all", "search", "collections"), default="all")
    ap.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--projects", type=int, nargs="+", default=[1, 10, 1000])
    ap.add_argument("--searches", type=int, default=200)
    ap.add_argument("--collections", type=int, default=100)
    ap.add_argument("--dir", help="work folder (default: a temporary one, deleted after)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    results: dict[str, list[dict]] = {"search": [], "collections": []}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for engine in args.engines:
            folder = Path(tmp) / engine
            folder.mkdir()
            if args.part in ("all", "search"):
                results["search"] += search_latency(engine, folder, args.rows, args.projects, args.searches)
            if args.part in ("all", "collections"):
                results["collections"].append(collection_per_project(engine, folder, args.collections))
    print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}")
    for part, rows in results.items():
        if rows:
            print(f"\n{part}:\n{_table(rows)}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
