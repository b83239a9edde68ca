"""Measure video ingest: real-time factor against FFmpeg's plain decode, and peak memory.

    python scripts/measure_video_ingest.py speed ../shared/data/videos/WolfgangLanger_Pexels.mp4 ...
    python scripts/measure_video_ingest.py memory --minutes 5 30

speed: for each file, the median of several runs of (1) `ffmpeg -i FILE -f null -` on the video
stream, looped to at least 60 s so process start-up does not count (every frame decoded, nothing
else: the limit), (2) vecsim's decoding at 1 fps (open_media,
frames scaled and converted), (3) a full `CustomIndex.add` into a fresh Milvus Lite index
(decode + embedding + PDQ + write). Reported as seconds of video per wall-clock second.

memory: generates 1280x720 h264 videos of the given lengths (pans over real photos, 10 fps) and,
in a fresh process each, runs the decode + embedding pipeline alone ("pipeline") and a full add
into Milvus Lite ("store"), reporting the process's peak RSS. The pipeline must not grow with
duration; Milvus Lite keeps the stored rows in the same process, so "store" also carries the
index's own data.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def speed(files: list[str], runs: int) -> list[dict]:
    import av

    from vecsim import CustomIndex
    from vecsim.media import open_media

    out = []
    ffmpeg = shutil.which("ffmpeg")
    with tempfile.TemporaryDirectory() as tmp, CustomIndex(str(Path(tmp) / "m.db"), progress=False) as idx:
        idx.add(files[0], task_id="warmup")  # load the model once
        for f in files:
            with av.open(f) as c:
                duration = c.duration / 1e6
                s = c.streams.video[0]
                desc = f"{s.codec_context.name} {s.codec_context.width}x{s.codec_context.height} {float(s.average_rate):.2f} fps"
            row = {"file": Path(f).name, "video": desc, "duration_s": round(duration, 2)}
            if ffmpeg:
                loops = max(1, int(60 // duration))  # >= 60 s of video, so process start-up does not count
                cmd = [ffmpeg, "-v", "error", "-stream_loop", str(loops - 1), "-i", f, "-map", "0:v:0", "-f", "null", "-"]
                t = _median_time(lambda: subprocess.run(cmd, check=True), runs)
                row["ffmpeg_decode_x"] = round(loops * duration / t, 1)
            t = _median_time(lambda: sum(1 for _ in open_media(f).frames), runs)
            row["vecsim_decode_1fps_x"] = round(duration / t, 1)
            n = [0]

            def add():
                n[0] += 1
                idx.add(f, task_id=f"{Path(f).stem}-run{n[0]}")

            t = _median_time(add, runs)
            row["vecsim_ingest_with_embedding_x"] = round(duration / t, 1)
            out.append(row)
            print(json.dumps(row), flush=True)
    return out


CHILD = """
import resource, sys, time, json
from vecsim import CustomIndex
idx = CustomIndex(sys.argv[1], progress=False)
t = time.perf_counter()
if sys.argv[3] == "store":
    res = idx.add(sys.argv[2])
    frames, duration = res.frames, res.duration
else:  # the same decode + embedding + PDQ pipeline, without writing to the store
    stream = idx._open(sys.argv[2])
    frames = sum(len(batch) for batch, _, _ in idx._embedded_batches(stream))
    duration = stream.duration
wall = time.perf_counter() - t
print(json.dumps({"mode": sys.argv[3], "frames": frames, "duration_s": duration, "wall_s": round(wall, 1),
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""


def memory(minutes: list[float]) -> list[dict]:
    from vecsim.sample_media import SAMPLE_PHOTOS, sample_photo
    from vecsim.video_edits import slideshow, write_video

    photos = [sample_photo(n) for n in SAMPLE_PHOTOS]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for m in minutes:
            shots = int(m * 60 / 10)
            path = Path(tmp) / f"v{m:g}min.mp4"
            t = time.perf_counter()
            write_video(path, slideshow([photos[i % len(photos)] for i in range(shots)], 10, 10, (1280, 720), seed=0),
                        10, options={"preset": "ultrafast"})
            made = time.perf_counter() - t
            for mode in ("pipeline", "store"):
                p = subprocess.run([sys.executable, "-c", CHILD, str(Path(tmp) / f"m{m:g}-{mode}.db"), str(path), mode],
                                   capture_output=True, text=True, check=True)
                row = {"minutes": m, "size_mib": round(path.stat().st_size / 2**20, 1),
                       "generated_in_s": round(made, 1), **json.loads(p.stdout.strip().splitlines()[-1])}
                out.append(row)
                print(json.dumps(row), flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("files", nargs="+")
    sp.add_argument("--runs", type=int, default=5)
    mp = sub.add_parser("memory")
    mp.add_argument("--minutes", type=float, nargs="+", default=[5, 30])
    args = ap.parse_args()
    speed(args.files, args.runs) if args.cmd == "speed" else memory(args.minutes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
