"""Measure bulk ingest into a real Milvus 2.3.5 server (no Docker): ``add_many``, ``vecsim ingest``
in one process, and ``vecsim ingest --ray`` with 1 and 2 workers; then the time to resume after
the whole job is killed mid-way.

    python scripts/bench_ingest.py --photos 1000 --video-minutes 30 --repeat 3 --json ingest.json

Corpus (made in a temporary folder, from ``../shared/data``): ``--photos`` JPEG files (the shared
photos, astro distractors and cut-outs, then cropped and rescaled copies of them until there are
enough: every file has its own bytes) and ``--video-minutes`` of 1280x720 H.264 at 10 fps in
5-minute files (pans and cuts over the shared photos). Each run is a fresh process (model load
included: a real job loads its model too) writing to a fresh collection of one server (dropped
after the run, so that no later run pays for its upkeep); a Ray run joins a cluster started
before the clock starts (``ray.init(num_cpus=2)``, as a backfill joins a running cluster), with
1 CPU per worker. Times are wall clock from opening the index to the end of the call, the final
index build included. ``--repeat N`` runs the modes in turn N times and reports each mode's
median run (the server is given ``SETTLE_S`` after it starts, before the first run).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: Seconds the bench waits after the server started, before the first run.
SETTLE_S = 30

RUN = r"""
import json, os, sys, time
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
mode, manifest, uri, collection, workers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
from vecsim import CustomIndex, ingest
from vecsim.bulk import Manifest
if mode.startswith("ray"):
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    import ray.data  # noqa: F401  (imported before the clock starts, as the local runs import torch)
t0 = time.perf_counter()
with CustomIndex(uri, collection=collection, progress=False) as index:
    if mode == "add_many":
        sources = [row.source for row in Manifest(manifest)]
        r = index.add_many(sources)
        added, failed = len(r.added), len(r.failed)
    else:
        r = ingest(manifest, index, ray="auto" if mode.startswith("ray") else None, workers=workers,
                   failures=manifest + "." + collection + ".failures.jsonl", progress=False)
        added, failed = r.added, r.failed
    assets, frames = index._store.count()
seconds = time.perf_counter() - t0
with CustomIndex(uri, collection=collection, progress=False) as index:  # dropped: later runs pay no upkeep for it
    for name in (index._store.collection, index._store.assets_collection):
        index._store._client.drop_collection(name)
print("RESULT " + json.dumps({"seconds": seconds, "added": added, "failed": failed, "assets": assets, "frames": frames}))
"""


def make_photos(out: Path, n: int) -> Path:
    from PIL import Image

    files = sorted(p for sub in ("photo", "astro", "cutout") for p in (SHARED / "photos" / sub).iterdir()
                   if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for i in range(n):
        src = files[i % len(files)]
        im = Image.open(src).convert("RGB")
        if i >= len(files):  # a distinct copy: a random 80-95 % crop, rescaled
            w, h = im.size
            f = rng.uniform(0.80, 0.95)
            x, y = rng.randint(0, int(w * (1 - f))), rng.randint(0, int(h * (1 - f)))
            im = im.crop((x, y, x + int(w * f), y + int(h * f)))
            im = im.resize((max(64, int(im.width * rng.uniform(0.6, 1.0))), max(64, int(im.height * rng.uniform(0.6, 1.0)))))
        im.save(out / f"p{i:05d}.jpg", quality=90)
    manifest = out.parent / "photos.csv"
    manifest.write_text("source\n" + "".join(f"{out.name}/p{i:05d}.jpg\n" for i in range(n)))
    return manifest


def make_videos(out: Path, minutes: float) -> Path:
    from PIL import Image

    from vecsim.video_edits import slideshow, write_video

    files = sorted((SHARED / "photos" / "photo").iterdir())
    out.mkdir(parents=True, exist_ok=True)
    n = max(1, round(minutes / 5))
    per = minutes * 60 / n
    names = []
    for i in range(n):
        shots = [Image.open(files[(i * 37 + k) % len(files)]).convert("RGB") for k in range(int(per // 10))]
        path = out / f"v{i:02d}.mp4"
        write_video(path, slideshow(shots, 10, 10, (1280, 720), seed=i), 10)
        names.append(path.name)
    manifest = out.parent / "videos.csv"
    manifest.write_text("source\n" + "".join(f"{out.name}/{name}\n" for name in names))
    return manifest


def run(mode: str, manifest: Path, uri: str, collection: str, workers: int = 1) -> dict:
    p = subprocess.run([sys.executable, "-c", RUN, mode, str(manifest), uri, collection, str(workers)],
                       capture_output=True, text=True, timeout=3600)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not lines:
        raise RuntimeError(f"{mode} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    r = json.loads(lines[-1][7:])
    r.update(mode=mode if not mode.startswith("ray") else f"ray, {workers} worker{'s' * (workers > 1)}",
             assets_per_s=r["added"] / r["seconds"], frames_per_s=r["frames"] / r["seconds"])
    return r


def median_run(runs: list[dict]) -> dict:
    """The run of median time (the lower middle of an even count), with every run's seconds."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    return {**ordered[(len(ordered) - 1) // 2], "runs_s": [round(r["seconds"], 1) for r in runs]}


def resume(manifest: Path, uri: str, collection: str, total: int, at: float) -> dict:
    """Start ``vecsim ingest --ray local --workers 2``, SIGKILL its whole process group (driver,
    Ray, actors) once ``at`` of the assets are committed, then rerun it to the end."""
    from vecsim import CustomIndex

    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    cmd = ["vecsim", "--index", uri, "--collection", collection, "ingest", str(manifest), "--ray", "local",
           "--workers", "2", "--failures", str(manifest) + ".resume.failures.jsonl"]
    with CustomIndex(uri, collection=collection, progress=False):
        pass  # the collection exists before the job and this monitor open it
    t0 = time.perf_counter()
    job = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    committed = 0
    with CustomIndex(uri, collection=collection, progress=False) as index:
        while job.poll() is None and time.perf_counter() - t0 < 1800:
            committed = index.count()
            if committed >= at * total:
                os.killpg(job.pid, signal.SIGKILL)
                break
            time.sleep(0.5)
        killed_after = time.perf_counter() - t0
        job.wait()
        time.sleep(2)
        committed = index.count()
    subprocess.run(["pkill", "-9", "-f", "ray::"], check=False)  # the killed job's orphaned workers
    subprocess.run(["ray", "stop", "--force"], env=env, check=False, capture_output=True)
    t1 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    rerun = time.perf_counter() - t1
    summary = json.loads(p.stdout[p.stdout.index("{"):]) if "{" in p.stdout else {}
    with CustomIndex(uri, collection=collection, progress=False) as index:
        assets, frames = index._store.count()
        index.vacuum()
        after_vacuum = index._store.count()
    return {"killed_after_s": killed_after, "committed_at_kill": committed, "rerun_s": rerun,
            "rerun_summary": summary, "assets": assets, "frames": frames, "after_vacuum": after_vacuum}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=1000)
    ap.add_argument("--video-minutes", type=float, default=30)
    ap.add_argument("--modes", default="add_many,local,ray1,ray2")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of each mode, taken in turn (mode after mode, then again); the median is reported")
    ap.add_argument("--no-resume", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--corpus", type=Path, help="keep the generated media here (and reuse them next time)")
    args = ap.parse_args()

    from vecsim.testing.milvus_server import milvus_server

    out: dict = {"photos": [], "videos": []}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        root = args.corpus or Path(tmp)
        corpora = {"photos": root / "photos.csv"}
        if not corpora["photos"].exists() or len(corpora["photos"].read_text().splitlines()) != args.photos + 1:
            make_photos(root / "p", args.photos)
        if args.video_minutes:
            corpora["videos"] = root / "videos.csv"
            if not corpora["videos"].exists():
                make_videos(root / "v", args.video_minutes)
        print(f"corpus made in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        with milvus_server(Path(tmp) / "milvus") as uri:
            time.sleep(SETTLE_S)  # a server just started is busy for a while: the first run would pay for it
            for kind, manifest in corpora.items():
                modes = list(filter(None, args.modes.split(",")))
                runs: dict[str, list[dict]] = {m: [] for m in modes}
                for rep in range(args.repeat):  # in turn, so that a slow spell of the machine hits every mode
                    for mode in modes:
                        workers = int(mode[3:]) if mode.startswith("ray") else 1
                        r = run(mode if not mode.startswith("ray") else "ray", manifest, uri, f"{kind}_{mode}_{rep}",
                                workers)
                        runs[mode].append(r)
                        print(f"{kind:7} {r['mode']:18} {r['added']:5} assets {r['frames']:6} frames "
                              f"{r['seconds']:7.1f} s {r['assets_per_s']:7.2f} assets/s {r['frames_per_s']:7.2f} frames/s",
                              file=sys.stderr)
                for mode in modes:
                    out[kind].append(median_run(runs[mode]))
                by = {r["mode"]: r for r in out[kind]}
                if "ray, 1 worker" in by and "ray, 2 workers" in by:
                    out[f"{kind}_scaling_1_to_2"] = by["ray, 2 workers"]["frames_per_s"] / by["ray, 1 worker"]["frames_per_s"]
                    print(f"{kind} scaling 1 -> 2 workers (medians of {args.repeat}): "
                          f"{out[f'{kind}_scaling_1_to_2']:.2f}x", file=sys.stderr)
            if not args.no_resume:
                out["resume"] = resume(corpora["photos"], uri, "photos_resume", args.photos, 0.5)
                print(f"resume: {json.dumps(out['resume'])}", file=sys.stderr)
    text = json.dumps(out, indent=2)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
