"""RemoteIndex against CustomIndex, in one run: what the service adds to an image add and an
image query, per call, at p50, and whether both give the same answers.

    python scripts/bench_remote.py                      # 60 adds, 120 queries
    python scripts/bench_remote.py --adds 10 --queries 20   # a smoke run

Two indexes of the same kind (Qdrant Edge, its default HNSW, in a temporary folder): one opened
in this process as ``CustomIndex``, one served by ``vecsim serve`` (a subprocess on 127.0.0.1,
rate limit out of the way) and reached with ``RemoteIndex``. Calls alternate between the two
(embedded, then remote, for the same input), one at a time, so that both see the same machine.
Adds: real photos (``--photos DIR``, default ``../shared/data/photos/photo``; else scikit-image's
sample photos) by path, with a task_id and metadata. Queries: edited copies of the added photos
(a crop, a downscale and a JPEG re-encode) as JPEG bytes. Each remote answer is compared with the
embedded one (top asset, scores to 1e-6). Prints a Markdown table; ``--out FILE`` writes JSON too.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def photo_paths(folder: Path | None, n: int, scratch: Path) -> list[Path]:
    if folder and folder.is_dir():
        paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:n]
        if len(paths) >= n:
            return paths
    from vecsim.sample_media import sample_photos

    out = []
    for i, (name, im) in enumerate(list(sample_photos().items()) * (n // 14 + 1)):
        if len(out) == n:
            break
        p = scratch / f"{i:03d}-{name}.jpg"
        im.convert("RGB").save(p, quality=95)
        out.append(p)
    return out


def edited(path: Path, i: int) -> bytes:
    im = Image.open(path).convert("RGB")
    w, h = im.size
    c = 0.08 + 0.02 * (i % 3)
    im = im.crop((int(w * c), int(h * c), int(w * (1 - c)), int(h * (1 - c))))
    im.thumbnail((640, 640))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=70)
    return buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--adds", type=int, default=60)
    ap.add_argument("--queries", type=int, default=120)
    ap.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "photos" / "photo")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    from vecsim import CustomIndex, RemoteIndex
    from vecsim.server.keys import KeyStore
    from vecsim.testing.serve import running_service

    work = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    paths = photo_paths(args.photos, args.adds, work)
    queries = [edited(paths[i % len(paths)], i) for i in range(args.queries)]
    times: dict[str, list[float]] = {"add_sdk": [], "add_remote": [], "query_sdk": [], "query_remote": []}
    mismatches = []
    print(f"{len(paths)} photos, {len(queries)} queries; starting the service ...", file=sys.stderr)
    with running_service(f"qdrant-edge:{work / 'served'}", work / "service",
                         env={"rate_limit_per_s": 10000, "rate_burst": 10000, "access_log": "false"}) as svc, \
            CustomIndex(f"qdrant-edge:{work / 'embedded'}", progress=False) as sdk:
        key = KeyStore(svc.data_dir / "keys.sqlite").create("bench").key
        remote = RemoteIndex(svc.url, api_key=key)
        remote.query(queries[0]), sdk.query(queries[0])  # warm both (model, store, connection)
        for i, path in enumerate(paths):
            meta = {"i": i, "name": path.name}
            for name, idx in (("add_sdk", sdk), ("add_remote", remote)):
                t = time.perf_counter()
                idx.add(path, meta, task_id=f"p{i:04d}")
                times[name].append(time.perf_counter() - t)
        for i, q in enumerate(queries):
            t = time.perf_counter()
            a = sdk.query(q)
            times["query_sdk"].append(time.perf_counter() - t)
            t = time.perf_counter()
            b = remote.query(q)
            times["query_remote"].append(time.perf_counter() - t)
            same = [(x.task_id, round(x.score, 6)) for x in a.output] == [(x.task_id, round(x.score, 6)) for x in b.output]
            if not same:
                mismatches.append(i)
        remote.close()
    ms = {k: {"p50": 1000 * statistics.median(v), "p95": 1000 * percentile(v, 0.95), "n": len(v)}
          for k, v in times.items()}
    rows = ["| call | CustomIndex p50 | RemoteIndex p50 | overhead p50 | CustomIndex p95 | RemoteIndex p95 |",
            "|---|---|---|---|---|---|"]
    report = {"ms": ms, "mismatched_queries": len(mismatches), "adds": len(paths), "queries": len(queries)}
    for op in ("add", "query"):
        s, r = ms[f"{op}_sdk"], ms[f"{op}_remote"]
        over = r["p50"] - s["p50"]
        report[f"{op}_overhead_ms"] = over
        report[f"{op}_overhead_pct"] = 100 * over / s["p50"]
        rows.append(f"| image {op} (n={s['n']}) | {s['p50']:.1f} ms | {r['p50']:.1f} ms | {over:+.1f} ms "
                    f"({100 * over / s['p50']:+.1f} %) | {s['p95']:.1f} ms | {r['p95']:.1f} ms |")
    print("\n".join(rows))
    print(f"\nqueries whose answer differed (top assets, scores to 1e-6): {len(mismatches)} of {len(queries)}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
