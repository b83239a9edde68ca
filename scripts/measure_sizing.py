"""Measure the per-frame figures of docs/sizing.md that no other benchmark gives: what a frame row
and an asset record cost on disk and in memory for each index type of each embedded engine, and
how many frames one CPU core turns into rows per second. vecsim/sizing.py holds the results.

    python scripts/measure_sizing.py store                       # every engine and index type (~3 min, 2 cores)
    python scripts/measure_sizing.py store --configs qdrant-edge:HNSW --sizes 10000 30000
    python scripts/measure_sizing.py embed --frames 96           # one core: embedding, PDQ, keypoints
    python scripts/measure_sizing.py ... --json out.json

store: each engine / index type runs in a fresh process. It writes frame rows of the default
descriptor's shape (random unit 256-d float32 vectors, random PDQ hashes, and random 5,176-byte
keypoint blobs, the average measured in docs/benchmark.md; random bytes, so nothing compresses
them better than real ORB data; ``--no-local`` leaves them out) through the store API
(``open_store``, ``insert_frames``, ``commit_assets``: 10 frames per asset, a 40-character source
and a small metadata object per record), builds the index, closes, reopens and searches once,
at each of ``--sizes`` in turn (one collection grown). Reported per size: disk bytes allocated
(``du``) of the frame rows and of the asset records separately, the process's RSS after the
reopen and search (minus its RSS with the empty collection open), and the median search time.
The per-row figures are the *slopes* between the first and the last size (the engines'
fixed costs, such as preallocated write-ahead logs, cancel out).

embed: ``--frames`` frames (scikit-image's photos, cropped and scaled to 512x288 as a 1280x720
video frame is before embedding) through what ``add`` runs per frame: the default descriptor's
embedding (batches of 16, as ``CustomIndex``), the PDQ hash and the keypoint extraction, torch
and OpenCV limited to ``--threads`` (1): frames per second per core, per stage and together.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 256
FRAMES_PER_ASSET = 10
LOCAL_BYTES = 5176  # docs/benchmark.md: keypoints stored, bytes per indexed frame on average
CONFIGS = ("qdrant-edge:FLAT", "qdrant-edge:HNSW", "qdrant-edge:HNSW_SQ8", "qdrant-edge:HNSW_PQ",
           "milvus-lite:FLAT", "milvus-lite:IVF_FLAT", "milvus-lite:IVF_SQ8", "milvus-lite:HNSW")


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _du(path: Path) -> int:
    """Bytes allocated on disk under ``path`` (sparse files count what they hold, as ``du``)."""
    if path.is_file():
        return path.stat().st_blocks * 512
    return sum((Path(root) / n).lstat().st_blocks * 512 for root, _, names in os.walk(path) for n in names)


def _parts(engine: str, root: Path, collection: str) -> tuple[Path, Path]:
    """The folders holding the frame rows and the asset records of ``collection``."""
    if engine == "qdrant-edge":
        return root / collection / "frames", root / collection / "assets"
    # Milvus Lite: <db>/collections/<name>/ and <db>/collections/<name>_assets/
    return root / "collections" / collection, root / "collections" / f"{collection}_assets"


def store_one(config: str, sizes: list[int], local: bool, searches: int, seed: int) -> dict:
    from vecsim.adapters import open_store
    from vecsim.descriptors.local import FORMAT as LOCAL_FORMAT
    from vecsim.index_config import parse_index_config
    from vecsim.store import AssetRecord, CollectionSpec, FrameRow

    engine, index_type = config.split(":")
    rng = np.random.default_rng(seed)
    spec = CollectionSpec("measure-sizing", "1", DIM, parse_index_config(index_type),
                          local_features=LOCAL_FORMAT if local else "", projects=True)
    with tempfile.TemporaryDirectory(prefix="vecsim-sizing-", dir=os.environ.get("SIZING_TMP")) as tmp:
        root = Path(tmp) / ("edge" if engine == "qdrant-edge" else "lite.db")
        uri = f"{engine}:{root}"
        store = open_store(uri, "frames", spec)
        queries = rng.normal(size=(searches, DIM)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        store.search(queries[:1], limit=10, per_asset=5)
        rss0 = _rss_bytes()
        written, out = 0, []
        for size in sizes:
            t = time.perf_counter()
            for start in range(written, size, 1000):
                n = min(1000, size - start)
                v = rng.normal(size=(n, DIM)).astype(np.float32)
                v /= np.linalg.norm(v, axis=1, keepdims=True)
                rows = []
                for i in range(n):
                    r = start + i
                    a, f = divmod(r, FRAMES_PER_ASSET)
                    blob = rng.integers(0, 256, LOCAL_BYTES, dtype=np.uint8).tobytes() if local else b""
                    rows.append(FrameRow(f"asset-{a:09d}", "g1", f, float(f), float(f + 1), v[i],
                                         rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex(), blob))
                store.insert_frames(rows)
                assets = sorted({r.task_id for r in rows if r.frame == FRAMES_PER_ASSET - 1})
                store.commit_assets([AssetRecord(t_id, "g1", "video", f"/media/uploads/2026/{t_id}.mp4", 10.0,
                                                 FRAMES_PER_ASSET, {"customer": "acme", "id": t_id}) for t_id in assets])
            load_s = time.perf_counter() - t
            t = time.perf_counter()
            store.build_index()
            build_s = time.perf_counter() - t
            store.close()
            store = open_store(uri, "frames", spec)
            times = []
            for q in queries:
                t = time.perf_counter()
                store.search(q[None], limit=10, per_asset=5)
                times.append((time.perf_counter() - t) * 1000)
            frames_dir, assets_dir = _parts(engine, root, "frames")
            out.append({"rows": size, "assets": size // FRAMES_PER_ASSET, "load_s": round(load_s, 2),
                        "build_s": round(build_s, 2), "search_ms_p50": round(statistics.median(times), 2),
                        "disk_frames": _du(frames_dir), "disk_assets": _du(assets_dir), "disk_all": _du(root),
                        "rss_over_empty": _rss_bytes() - rss0})
            written = size
        store.close()
    first, last = out[0], out[-1]
    rows = last["rows"] - first["rows"]
    assets = last["assets"] - first["assets"]
    slope = {
        "disk_per_frame_row": round((last["disk_frames"] - first["disk_frames"]) / rows),
        "disk_per_asset_record": round((last["disk_assets"] - first["disk_assets"]) / assets),
        "disk_per_row_all": round((last["disk_all"] - first["disk_all"]) / rows),
        "rss_per_row": round((last["rss_over_empty"] - first["rss_over_empty"]) / rows),
    }
    return {"config": config, "local_features": local, "sizes": out, "per_row": slope}


def run_store(configs: list[str], sizes: list[int], local: bool, searches: int, seed: int) -> list[dict]:
    """Each config in a fresh interpreter, so that one engine's memory does not count for the next."""
    results = []
    for config in configs:
        cmd = [sys.executable, __file__, "_store_one", config, "--sizes", *map(str, sizes),
               "--searches", str(searches), "--seed", str(seed)] + ([] if local else ["--no-local"])
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"{config} failed:\n{proc.stderr[-3000:]}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        res["wall_s"] = round(time.perf_counter() - t, 1)
        print(json.dumps(res), flush=True)
        results.append(res)
    return results


def run_embed(frames: int, threads: int = 1) -> dict:
    import cv2
    import skimage.data
    import torch
    from PIL import Image

    from vecsim.descriptors import load_descriptor
    from vecsim.descriptors.local import extract
    from vecsim.descriptors.pdq import pdq_hashes

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    photos = [getattr(skimage.data, n)() for n in ("astronaut", "coffee", "chelsea", "rocket", "cat", "immunohistochemistry")]
    images = []
    for i in range(frames):
        p = Image.fromarray(photos[i % len(photos)]).convert("RGB")
        w, h = p.size
        top = (i * 7) % max(1, h - w * 9 // 16)  # a 16:9 crop, a different band each time
        images.append(p.crop((0, top, w, top + w * 9 // 16)).resize((512, 288)))
    descriptor = load_descriptor(threads=threads)  # it sets torch's threads when it loads
    descriptor.embed(images[:16])  # load the weights, warm up
    torch.set_num_threads(threads)
    stage = {}
    t = time.perf_counter()
    for i in range(0, frames, 16):
        descriptor.embed(images[i : i + 16])
    stage["embed"] = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(0, frames, 16):
        pdq_hashes(images[i : i + 16])
    stage["pdq"] = time.perf_counter() - t
    t = time.perf_counter()
    for im in images:
        extract(im)
    stage["keypoints"] = time.perf_counter() - t
    total = sum(stage.values())
    return {"frames": frames, "descriptor": f"{descriptor.name}/{descriptor.version}", "frame_size": "512x288",
            "threads": threads, "ms_per_frame": {k: round(v / frames * 1000, 2) for k, v in stage.items()},
            "frames_per_s": round(frames / total, 1), "frames_per_s_per_core": round(frames / total / threads, 1),
            "frames_per_s_per_core_no_keypoints": round(frames / (stage["embed"] + stage["pdq"]) / threads, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("part", choices=["store", "embed", "_store_one"])
    p.add_argument("config", nargs="?")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS))
    p.add_argument("--sizes", nargs="+", type=int, default=[10_000, 30_000])
    p.add_argument("--no-local", action="store_true", help="frame rows without keypoint blobs")
    p.add_argument("--searches", type=int, default=100)
    p.add_argument("--frames", type=int, default=96)
    p.add_argument("--threads", type=int, default=1, help="embed: torch / OpenCV threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    if a.part == "_store_one":
        print(json.dumps(store_one(a.config, a.sizes, not a.no_local, a.searches, a.seed)))
        return
    res = run_store(a.configs, a.sizes, not a.no_local, a.searches, a.seed) if a.part == "store" else run_embed(a.frames, a.threads)
    if a.part == "embed":
        print(json.dumps(res, indent=1))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
