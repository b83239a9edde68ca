"""Load benchmark of the HTTP service ``vecsim serve``: what HTTP costs over the SDK, how many
queries a second it answers, and whether a bounded mixed load loses or duplicates anything.

    python scripts/bench_serve.py --out bench-serve/                       # the full measurement
    python scripts/bench_serve.py --frames 3000 --queries 20 --mixed-requests 100   # a smoke run

Needs the serve extra (``pip install -e '.[serve]'``). Everything runs on 127.0.0.1, in one run:

1. **Setup**: an embedded index (Qdrant Edge, ``qdrant-edge:PATH``, its default HNSW) holding
   ``--frames`` frame rows in project ``p1``: ``--photo-count`` real photos (``--photos DIR``,
   default ``../shared/data/photos`` next to the repository; else scikit-image's sample photos)
   added with the SDK, plus filler assets written through the store API (random unit vectors,
   random PDQ hashes, about 10 frames each, no local features), committed in groups, then one
   ``build_index()``.
2. **SDK baseline**: ``--queries`` sync image queries (edited copies of the indexed photos: a crop,
   a downscale and a JPEG re-encode, as bytes) through ``CustomIndex.query`` in this process:
   p50 / p95 latency. The index is closed afterwards (Qdrant Edge is open in one process at a time).
3. **HTTP sync**: ``vecsim serve`` on that index (a subprocess; rate limit out of the way, access
   log off, ``--sync-concurrency``), the same queries sent one after the other on one keep-alive
   ``httpx.Client`` to ``/api/v2/custom_index/query/sync``: p50 / p95, and the overhead at p50 over
   the SDK against the target "HTTP adds at most 15 % or 5 ms at p50".
4. **Throughput**: ``--clients`` (default 8) threads, each with its own client, sending
   ``queries / clients`` sync queries each at once: requests per second, p50 / p95 under load.
5. **Mixed load**: ``--mixed-clients`` (default 16) threads, ``--mixed-requests`` requests in all,
   half the clients in project ``p1``, half in ``p2``, each a seeded random mix of add sync, add
   async (with a client-chosen ``task_id``), query sync, and remove sync / async of assets that
   client added earlier (a client removes only its own assets, so the final state is known
   exactly). Every status code is recorded; a 429 is retried after its ``Retry-After`` and
   counted. Then every accepted async task is followed to its end (``GET /api/v2/task/{id}``),
   the service is stopped, and each project is checked with the SDK: every asset expected present
   is there (``get``) with the metadata and frame rows its add reported, nothing else is there
   (a full scan of the committed assets and their frame rows), and ``count()`` is what is expected.
   With ``--mixed-rate-limit R`` the service is restarted for this phase with a rate limit of R
   requests per second per project, so that 429s and their retries are exercised.

Every loop is bounded in count and by a global deadline (``--deadline-s``; the async tasks accepted
before it are still followed for up to a minute, so that they can be checked); every request has a
timeout. The latency rows also split the mean query time as the service's ``/metrics`` and the
SDK's :mod:`vecsim.timing` stages see it.

The result is a Markdown table on stdout (progress goes to stderr) and, with ``--out DIR``,
``DIR/bench_serve.json`` and ``DIR/bench_serve.md``. The exit status is 1 when the mixed load lost,
duplicated or left over anything, answered a 5xx, failed a request on the transport (time-out,
reset), failed or did not finish an async task, when a query phase got an answer other than 200,
or when the run passed the deadline; 2 when the benchmark could not run. The latency target is
reported, not enforced.

``--work-dir``: where the index and the service's data go (an empty or new folder, kept); by
default a temporary folder, deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = REPO.parent / "shared" / "data" / "photos"
API = "/api/v2"
PROJECTS = ("p1", "p2")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
FILLER_FRAMES = 10  # frame rows per filler asset
FILLER_GROUP = 500  # filler assets per insert + commit
WARMUP = 3  # queries before each latency phase, not counted
HTTP_TIMEOUT = 180.0  # seconds, every request (the service's own request_timeout_s is 120)
MAX_ATTEMPTS = 30  # tries of one request that keeps answering 429
TASK_WAIT_S = 900.0  # longest the mixed phase waits for its async tasks (within the deadline)
TASK_GRACE_S = 60.0  # ... or past it, so that what was accepted before the deadline can still be checked
MIXED_OPS = {"add_sync": 0.25, "add_async": 0.20, "query_sync": 0.30, "remove_sync": 0.125, "remove_async": 0.125}
SERVE_MODULES = {"fastapi": ("fastapi",), "uvicorn": ("uvicorn",), "python-multipart": ("python_multipart", "multipart"),
                 "pydantic-settings": ("pydantic_settings",), "prometheus-client": ("prometheus_client",),
                 "huey": ("huey",), "httpx": ("httpx",)}


class BenchError(Exception):
    """The benchmark cannot run (exit status 2)."""


_T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[{time.monotonic() - _T0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def check_serve_extra() -> None:
    missing = [pkg for pkg, mods in SERVE_MODULES.items() if not any(importlib.util.find_spec(m) for m in mods)]
    if missing:
        raise BenchError(f"the serve extra is not installed (missing: {', '.join(missing)}); "
                         "install it with: pip install -e '.[serve]'")
    try:
        import vecsim.server  # noqa: F401
        import vecsim.testing.serve  # noqa: F401
    except ImportError as exc:
        raise BenchError(f"this vecsim has no HTTP service (vecsim.server): {exc}") from exc


class Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds
        self.hit: list[str] = []  # the phases that stopped early because of it
        self._lock = threading.Lock()

    def left(self) -> float:
        return self.end - time.monotonic()

    def passed(self, phase: str | None = None) -> bool:
        if time.monotonic() < self.end:
            return False
        with self._lock:
            if phase and phase not in self.hit:
                self.hit.append(phase)
                log(f"deadline reached during {phase}")
        return True


def percentiles(ms: list[float]) -> dict[str, float | int | None]:
    import numpy as np

    if not ms:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "mean_ms": None, "max_ms": None}
    p50, p95 = np.percentile(np.asarray(ms), [50, 95])
    return {"n": len(ms), "p50_ms": round(float(p50), 1), "p95_ms": round(float(p95), 1),
            "mean_ms": round(sum(ms) / len(ms), 1), "max_ms": round(max(ms), 1)}


def peak_rss_mb(pid: int | None = None) -> float | None:
    """Peak resident memory of this process (or of ``pid``, on Linux), in MiB."""
    if pid is None:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


# --- media ---------------------------------------------------------------------------------------


@dataclass
class Photo:
    name: str
    media: Any  # what the SDK adds: a path, or a PIL image (the sample photos)

    def image(self):
        from PIL import Image

        if isinstance(self.media, Image.Image):
            return self.media
        with Image.open(self.media) as im:
            im.load()
            return im


def load_photos(folder: Path | None, count: int, rng: random.Random) -> tuple[list[Photo], str]:
    if folder is not None:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise BenchError(f"no photos ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}")
        picked = sorted(rng.sample(files, min(count, len(files))))
        return [Photo(str(p.relative_to(folder)), str(p)) for p in picked], str(folder)
    from vecsim.sample_media import sample_photos

    photos = sample_photos()
    names = sorted(photos)[:count]
    return [Photo(n, photos[n]) for n in names], "scikit-image sample photos (vecsim.sample_media)"


def edited_copy(im, rng: random.Random, max_side: int = 640) -> bytes:
    """A copy as an uploader would make it: cropped to 80-95 % each way, at most ``max_side``
    pixels, re-encoded as JPEG at quality 70-85."""
    im = im.convert("RGB")
    w, h = im.size
    f = rng.uniform(0.80, 0.95)
    cw, ch = max(1, int(w * f)), max(1, int(h * f))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    im = im.crop((x, y, x + cw, y + ch))
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=rng.randint(70, 85))
    return buf.getvalue()


def edited_copies(photos: list[Photo], ids: list[str], n: int, rng: random.Random) -> list[tuple[bytes, str]]:
    """``n`` edited copies, cycling over the photos: (JPEG bytes, the task_id of the original)."""
    out: list[tuple[bytes, str]] = []
    for start in range(0, n, len(photos)):
        for photo, task_id in list(zip(photos, ids))[: n - start]:
            out.append((edited_copy(photo.image(), rng), task_id))
    return out


# --- the SDK side --------------------------------------------------------------------------------


def open_index(uri: str, project: str):
    from vecsim import CustomIndex

    try:
        return CustomIndex(uri, project=project, progress=False)
    except TypeError as exc:
        if "project" in str(exc):
            raise BenchError(f"this vecsim ({_version()}) has no projects (CustomIndex(..., project=...)); the "
                             "benchmark needs a version with multi-project indexes") from exc
        raise


def _version() -> str:
    import vecsim

    return getattr(vecsim, "__version__", "?")


@dataclass
class Setup:
    uri: str
    photo_ids: list[str]
    filler_ids: list[str]
    frames_by_id: dict[str, int]  # stored frame rows of every asset of p1 before the load
    info: dict[str, Any]


def build_index(uri: str, photos: list[Photo], frames: int, seed: int, deadline: Deadline):
    """The p1 index: the photos through the SDK, fillers through the store. Returns (index, Setup)."""
    import numpy as np

    from vecsim.store import AssetRecord, FrameRow

    t0 = time.perf_counter()
    index = open_index(uri, "p1")  # the collection is created by the SDK: its spec is the SDK's
    try:
        photo_ids = [f"photo-{i:04d}" for i in range(len(photos))]
        added = index.add_many([p.media for p in photos], metadata=[{"photo": p.name} for p in photos],
                               task_ids=photo_ids)
        if added.failed:
            raise BenchError(f"{len(added.failed)} photos could not be added, e.g. {added.failed[0]}")
        frames_by_id = {r.task_id: r.stored_frames for r in added.added}
        t_photos = time.perf_counter() - t0
        log(f"setup: {len(photos)} photos added in {t_photos:.1f} s ({sum(frames_by_id.values())} frame rows)")

        store = index._store  # scoped to p1
        dim = store.spec.dim
        rng = np.random.default_rng(seed)
        todo = max(0, frames - sum(frames_by_id.values()))
        sizes = [FILLER_FRAMES] * (todo // FILLER_FRAMES) + ([todo % FILLER_FRAMES] if todo % FILLER_FRAMES else [])
        filler_ids = [f"filler-{i:06d}" for i in range(len(sizes))]
        t1 = time.perf_counter()
        for g in range(0, len(sizes), FILLER_GROUP):
            if deadline.passed("setup"):
                raise BenchError("the deadline passed while writing the filler assets")
            rows: list[FrameRow] = []
            records: list[AssetRecord] = []
            group = list(zip(filler_ids[g : g + FILLER_GROUP], sizes[g : g + FILLER_GROUP]))
            n_rows = sum(s for _, s in group)
            vectors = rng.standard_normal((n_rows, dim), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            hashes = rng.integers(0, 256, size=(n_rows, 32), dtype=np.uint8)
            k = 0
            for task_id, size in group:
                generation = uuid.uuid4().hex[:16]
                for f in range(size):
                    rows.append(FrameRow(task_id=task_id, generation=generation, frame=f, timestamp=float(f),
                                         span_end=float(f + 1), vector=vectors[k], pdq=hashes[k].tobytes().hex(),
                                         local=b""))
                    k += 1
                records.append(AssetRecord(task_id=task_id, generation=generation, media_type="video",
                                           source=f"{task_id}.mp4", duration=float(size), frames=size,
                                           metadata={"filler": True}))
                frames_by_id[task_id] = size
            store.insert_frames(rows)
            store.commit_assets(records)
        t_fill = time.perf_counter() - t1
        t2 = time.perf_counter()
        store.build_index()
        t_build = time.perf_counter() - t2
        assets, rows_now = store.count()
        info = {
            "photos": len(photos), "photo_frames": sum(frames_by_id[t] for t in photo_ids),
            "filler_assets": len(filler_ids), "filler_frames": todo, "assets": assets, "frame_rows": rows_now,
            "photos_s": round(t_photos, 1), "fillers_s": round(t_fill, 1), "build_index_s": round(t_build, 1),
            "total_s": round(time.perf_counter() - t0, 1),
        }
        log(f"setup: {len(filler_ids)} filler assets ({todo} rows) in {t_fill:.1f} s, build_index {t_build:.1f} s; "
            f"p1 holds {assets} assets, {rows_now} frame rows")
        return index, Setup(uri, photo_ids, filler_ids, frames_by_id, info)
    except BaseException:
        index.close()
        raise


def sdk_baseline(index, queries: list[tuple[bytes, str]], deadline: Deadline) -> dict[str, Any]:
    from vecsim import timing

    for data, _ in queries[:WARMUP]:
        index.query(data)
    ms, top1 = [], 0
    stages: Counter = Counter()
    for data, expected in queries:
        if deadline.passed("sdk baseline"):
            break
        with timing.collect() as spent:  # the stages the service's metrics report too
            t = time.perf_counter()
            result = index.query(data)
            ms.append((time.perf_counter() - t) * 1000)
        stages.update(spent)
        top1 += bool(result.output) and result.output[0].task_id == expected
    mean_stages = {k: round(1000 * v / len(ms), 1) for k, v in sorted(stages.items())} if ms else {}
    return {**percentiles(ms), "top1_correct": top1, "stages_mean_ms": mean_stages}


_METRIC = re.compile(r"^(vecsim_stage_duration_seconds|vecsim_http_request_duration_seconds)_(sum|count)"
                     r"\{([^}]*)\} (\S+)$")


def scrape(url: str) -> Counter:
    """The service's time sums and counts: per stage, and of POST query/sync requests."""
    import httpx

    out: Counter = Counter()
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        m = _METRIC.match(line)
        if not m:
            continue
        labels = dict(kv.split("=", 1) for kv in m.group(3).split(","))
        labels = {k: v.strip('"') for k, v in labels.items()}
        if m.group(1).startswith("vecsim_stage"):
            name = labels.get("stage", "?")
        elif labels.get("route") == f"{API}/custom_index/query/sync" and labels.get("method") == "POST":
            name = "request"
        else:
            continue
        out[(name, m.group(2))] += float(m.group(4))
    return out


def server_means(before: Counter, after: Counter) -> dict[str, float]:
    """Mean ms per call of each stage and of the request, between two scrapes."""
    names = sorted({n for n, _ in after})
    out = {}
    for n in names:
        count = after[(n, "count")] - before[(n, "count")]
        if count > 0:
            out[n] = round(1000 * (after[(n, "sum")] - before[(n, "sum")]) / count, 1)
    return out


# --- the HTTP side -------------------------------------------------------------------------------


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Token {key}"}


def _upload(data: bytes, name: str) -> dict[str, Any]:
    return {"media": (name, data, "image/jpeg")}


def http_sequential(url: str, key: str, queries: list[tuple[bytes, str]], deadline: Deadline) -> dict[str, Any]:
    import httpx

    statuses: Counter = Counter()
    ms, top1 = [], 0
    with httpx.Client(base_url=url, timeout=HTTP_TIMEOUT, headers=_auth(key)) as client:
        for i, (data, _) in enumerate(queries[:WARMUP]):
            client.post(f"{API}/custom_index/query/sync", files=_upload(data, f"warm{i}.jpg")).raise_for_status()
        before = scrape(url)
        for i, (data, expected) in enumerate(queries):
            if deadline.passed("http sync"):
                break
            t = time.perf_counter()
            try:
                r = client.post(f"{API}/custom_index/query/sync", files=_upload(data, f"q{i}.jpg"))
            except httpx.HTTPError as exc:
                statuses[f"transport:{type(exc).__name__}"] += 1
                continue
            elapsed = (time.perf_counter() - t) * 1000
            statuses[r.status_code] += 1
            if r.status_code == 200:
                ms.append(elapsed)
                out = r.json()["output"]
                top1 += bool(out) and out[0]["task_id"] == expected
    return {**percentiles(ms), "top1_correct": top1, "statuses": dict(statuses),
            "server_mean_ms": server_means(before, scrape(url))}


def http_throughput(url: str, key: str, queries: list[tuple[bytes, str]], clients: int,
                    deadline: Deadline) -> dict[str, Any]:
    import httpx

    per = max(1, len(queries) // clients)
    barrier = threading.Barrier(clients + 1)
    results: list[tuple[list[float], Counter, float]] = [([], Counter(), 0.0) for _ in range(clients)]

    def run(c: int) -> None:
        ms: list[float] = []
        statuses: Counter = Counter()
        mine = [queries[(c * per + j) % len(queries)] for j in range(per)]
        with httpx.Client(base_url=url, timeout=HTTP_TIMEOUT, headers=_auth(key)) as client:
            client.get("/livez")  # the connection is open before the clock starts
            try:
                barrier.wait(timeout=60)
            except threading.BrokenBarrierError:
                return
            for j, (data, _) in enumerate(mine):
                if deadline.passed("throughput"):
                    break
                t = time.perf_counter()
                try:
                    r = client.post(f"{API}/custom_index/query/sync", files=_upload(data, f"t{c}-{j}.jpg"))
                    statuses[r.status_code] += 1
                    if r.status_code == 200:
                        ms.append((time.perf_counter() - t) * 1000)
                except httpx.HTTPError as exc:
                    statuses[f"transport:{type(exc).__name__}"] += 1
            results[c] = (ms, statuses, time.perf_counter())

    threads = [threading.Thread(target=run, args=(c,), name=f"tput-{c}", daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    barrier.wait(timeout=60)
    start = time.perf_counter()
    for t in threads:
        t.join(max(1.0, deadline.left() + HTTP_TIMEOUT))
    wall = max((end for _, _, end in results), default=start) - start
    ms = [m for r in results for m in r[0]]
    statuses = sum((r[1] for r in results), Counter())
    ok = statuses.get(200, 0)
    return {"clients": clients, "requests": sum(statuses.values()), "ok": ok, "wall_s": round(wall, 2),
            "rps": round(ok / wall, 2) if wall > 0 else None, **percentiles(ms), "statuses": dict(statuses)}


# --- the mixed load ------------------------------------------------------------------------------


@dataclass
class ClientState:
    """What one mixed-load client did, and so what it expects of the index."""

    index: int
    project: str
    statuses: Counter = field(default_factory=Counter)  # (op, status or "transport:Error")
    errors: Counter = field(default_factory=Counter)  # (status, error code) of every 4xx / 5xx answer
    retried: Counter = field(default_factory=Counter)  # error code of each 429 that was retried
    gave_up: int = 0  # requests still 429 after MAX_ATTEMPTS, or cut by the deadline while waiting
    ms: dict[str, list[float]] = field(default_factory=dict)
    sent: int = 0  # requests of the budget (retries and task polls not counted)
    present: dict[str, int] = field(default_factory=dict)  # confirmed added, not removed: task_id -> frames
    pending_adds: list[str] = field(default_factory=list)  # async adds accepted, outcome not seen yet
    removing: dict[str, int] = field(default_factory=dict)  # async removes accepted: task_id -> frames
    removed: set[str] = field(default_factory=set)  # removed by a completed remove
    uncertain: set[str] = field(default_factory=set)  # outcome unknown: transport error, 5xx, unfinished task
    async_tasks: dict[str, tuple[str, str]] = field(default_factory=dict)  # task id -> (kind, asset)
    metadata: dict[str, dict] = field(default_factory=dict)  # task_id -> metadata sent with its add


class MixedClient:
    def __init__(self, state: ClientState, url: str, key: str, budget: int, queries: list[tuple[bytes, str]],
                 uploads: list[bytes], seed: int, deadline: Deadline):
        self.s, self.url, self.key, self.budget = state, url, key, budget
        self.queries, self.uploads, self.deadline = queries, uploads, deadline
        self.rng = random.Random(seed)
        self.seq = 0

    def request(self, op: str, method: str, path: str, **kwargs: Any):
        """One request, retried after each 429's Retry-After; None on a transport error or when
        it could not be sent (deadline, too many 429s)."""
        import httpx

        for _ in range(MAX_ATTEMPTS):
            if self.deadline.passed("mixed load"):
                self.s.gave_up += 1
                return None
            t = time.perf_counter()
            try:
                r = self.client.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                self.s.statuses[(op, f"transport:{type(exc).__name__}")] += 1
                return None
            self.s.statuses[(op, r.status_code)] += 1
            if r.status_code >= 400:
                try:
                    code = r.json()["error"]["code"]
                except (ValueError, KeyError, TypeError):
                    code = "?"
                self.s.errors[(r.status_code, code)] += 1
                if r.status_code == 429:
                    self.s.retried[code] += 1
                    try:
                        wait = float(r.headers.get("retry-after", "1"))
                    except ValueError:
                        wait = 1.0
                    time.sleep(max(0.0, min(wait + self.rng.uniform(0, 0.25), self.deadline.left())))
                    continue
            else:
                self.s.ms.setdefault(op, []).append((time.perf_counter() - t) * 1000)
            return r
        self.s.gave_up += 1
        return None

    def _new_id(self) -> str:
        self.seq += 1
        return f"{self.s.project}-c{self.s.index:02d}-{self.seq:05d}"

    def add(self, sync: bool) -> None:
        task_id = self._new_id()
        meta = {"client": self.s.index, "seq": self.seq, "project": self.s.project}
        self.s.metadata[task_id] = meta
        data = self.rng.choice(self.uploads)
        op = "add_sync" if sync else "add_async"
        r = self.request(op, "POST", f"{API}/custom_index/add/{'sync' if sync else 'async'}",
                         files=_upload(data, f"{task_id}.jpg"), data={"task_id": task_id, "metadata": json.dumps(meta)})
        if r is None or r.status_code >= 500:  # a 504's call may still finish in the service
            self.s.uncertain.add(task_id)
        elif sync and r.status_code == 200:
            self.s.present[task_id] = r.json()["output"]["stored_frames"]
        elif not sync and r.status_code == 202:
            self.s.pending_adds.append(task_id)
            self.s.async_tasks[task_id] = ("add", task_id)

    def query(self) -> None:
        data, _ = self.rng.choice(self.queries)
        self.request("query_sync", "POST", f"{API}/custom_index/query/sync", files=_upload(data, "q.jpg"))

    def poll_oldest_add(self) -> None:
        """Learn whether the oldest pending async add is done (so that its asset may be removed)."""
        task_id = self.s.pending_adds[0]
        r = self.request("task_get", "GET", f"{API}/task/{task_id}")
        if r is not None and r.status_code == 200 and r.json()["status"] in ("completed", "failed"):
            self.s.pending_adds.pop(0)
            if r.json()["status"] == "completed":
                self.s.present[task_id] = r.json()["output"]["stored_frames"]

    def remove(self, sync: bool) -> bool:
        if self.s.pending_adds and (not self.s.present or self.rng.random() < 0.5):
            self.poll_oldest_add()
        if not self.s.present:
            return False
        target = self.rng.choice(sorted(self.s.present))
        frames = self.s.present.pop(target)
        op = "remove_sync" if sync else "remove_async"
        r = self.request(op, "DELETE", f"{API}/custom_index/remove/{'sync' if sync else 'async'}",
                         params={"task_id": target})
        if r is None or r.status_code >= 500:
            self.s.uncertain.add(target)
        elif sync and r.status_code == 200:
            self.s.removed.add(target)
        elif not sync and r.status_code == 202:
            self.s.async_tasks[r.json()["task_id"]] = ("remove", target)
            self.s.removing[target] = frames  # present until its task is seen completed; not removed twice
        else:  # refused: the asset stays (a 404 here means it was lost: the check will say so)
            self.s.present[target] = frames
        return True

    def run(self) -> None:
        import httpx

        ops, weights = list(MIXED_OPS), list(MIXED_OPS.values())
        with httpx.Client(base_url=self.url, timeout=HTTP_TIMEOUT, headers=_auth(self.key)) as self.client:
            while self.s.sent < self.budget and not self.deadline.passed("mixed load"):
                self.s.sent += 1
                op = self.rng.choices(ops, weights)[0]
                if op == "add_sync":
                    self.add(True)
                elif op == "add_async":
                    self.add(False)
                elif op.startswith("remove") and self.remove(op == "remove_sync"):
                    pass
                else:  # a query, or a remove with nothing to remove yet
                    self.query()


def wait_tasks(url: str, keys: dict[str, str], states: list[ClientState], deadline: Deadline) -> dict[str, Any]:
    """Follow every accepted async task to its end (bounded); apply the outcomes to the states."""
    import httpx

    todo = {(s.index, tid): s for s in states for tid in s.async_tasks}
    final: dict[tuple[int, str], dict] = {}
    transport = Counter()
    stop = time.monotonic() + min(TASK_WAIT_S, max(TASK_GRACE_S, deadline.left()))
    t0 = time.perf_counter()
    clients = {p: httpx.Client(base_url=url, timeout=30, headers=_auth(k)) for p, k in keys.items()}
    try:
        while todo and time.monotonic() < stop:
            for key, s in list(todo.items()):
                try:
                    r = clients[s.project].get(f"{API}/task/{key[1]}")
                except httpx.HTTPError as exc:
                    transport[type(exc).__name__] += 1
                    continue
                if r.status_code == 429:
                    time.sleep(min(float(r.headers.get("retry-after", "1")), 5))
                    continue
                if r.status_code != 200:
                    final[key] = {"status": f"http {r.status_code}", "error": None}
                    del todo[key]
                    continue
                body = r.json()
                if body["status"] in ("completed", "failed"):
                    final[key] = body
                    del todo[key]
            if todo:
                time.sleep(0.5)
    finally:
        for c in clients.values():
            c.close()
    outcomes: Counter = Counter()
    for (_, tid), s in todo.items():  # not finished in time: the asset's state is unknown
        kind, asset = s.async_tasks[tid]
        outcomes[(kind, "unfinished")] += 1
        s.uncertain.add(asset)
        if asset in s.pending_adds:
            s.pending_adds.remove(asset)
        s.removing.pop(asset, None)
    states_by_index = {s.index: s for s in states}
    for (ci, tid), body in final.items():
        s = states_by_index[ci]
        kind, asset = s.async_tasks[tid]
        error = body.get("error") if isinstance(body.get("error"), dict) else None
        outcomes[(kind, body["status"] + (f" ({error.get('code')})" if error else ""))] += 1
        if kind == "add":
            if asset in s.pending_adds:
                s.pending_adds.remove(asset)
                if body["status"] == "completed":
                    s.present[asset] = body["output"]["stored_frames"]
        elif asset in s.removing:
            frames = s.removing.pop(asset)
            if body["status"] == "completed":
                s.removed.add(asset)
            else:  # not removed: still expected (if it failed as task_not_found, the check finds it lost)
                s.present[asset] = frames
    return {"tasks": len(final) + len(todo), "finished": len(final), "unfinished": len(todo),
            "wait_s": round(time.perf_counter() - t0, 1), "transport_errors": dict(transport),
            "outcomes": {f"{k} {st}": n for (k, st), n in sorted(outcomes.items())}}


def verify_project(uri: str, project: str, expected: dict[str, int], metadata: dict[str, dict],
                   removed: set[str], uncertain: set[str]) -> dict[str, Any]:
    """Check one project with the SDK against what the load expects: ``expected`` (task_id ->
    stored frame rows) present with their metadata, nothing else, no stray frame rows."""
    from vecsim.errors import TaskNotFoundError

    index = open_index(uri, project)
    try:
        lost, wrong_meta, wrong_frames = [], [], []
        for task_id in sorted(metadata):  # the load's own assets: get, as a user would
            if task_id not in expected:
                continue
            try:
                info = index.get(task_id)
            except TaskNotFoundError:
                lost.append(task_id)
                continue
            if info.metadata != metadata[task_id]:
                wrong_meta.append(task_id)
        committed, rows = index.store.generations()  # a full scan of the project's assets and rows
        lost += sorted(t for t in expected if t not in committed and t not in metadata)
        unexpected = sorted(t for t in committed if t not in expected and t not in uncertain)
        resurrected = sorted(t for t in unexpected if t in removed)
        per_asset: Counter = Counter()
        orphan_rows = 0
        for (task_id, generation), n in rows.items():
            if committed.get(task_id) == generation:
                per_asset[task_id] += n
            else:
                orphan_rows += n
        for task_id, n in expected.items():
            if task_id in committed and per_asset[task_id] != n:
                wrong_frames.append(task_id)
        count = index.count()
        assets, frame_rows = index.store.count()
    finally:
        index.close()
    present_uncertain = sum(1 for t in uncertain if t in committed)
    return {
        "expected": len(expected), "count": count, "count_ok": count == len(expected) + present_uncertain,
        "store_assets": assets, "frame_rows": frame_rows,
        "expected_frame_rows": sum(expected.values()) + sum(per_asset[t] for t in uncertain if t in committed),
        "lost": len(lost), "unexpected": len(unexpected), "resurrected": len(resurrected),
        "wrong_metadata": len(wrong_meta), "wrong_frame_rows": len(wrong_frames), "orphan_frame_rows": orphan_rows,
        "uncertain": len(uncertain), "uncertain_present": present_uncertain,
        "examples": {"lost": lost[:5], "unexpected": unexpected[:5], "wrong_metadata": wrong_meta[:5],
                     "wrong_frame_rows": wrong_frames[:5]},
    }


def mixed_load(svc, keys: dict[str, str], queries: list[tuple[bytes, str]], uploads: list[bytes],
               clients: int, total: int, seed: int, deadline: Deadline) -> tuple[dict[str, Any], list[ClientState]]:
    budgets = [total // clients + (1 if c < total % clients else 0) for c in range(clients)]
    states = [ClientState(c, PROJECTS[c % len(PROJECTS)]) for c in range(clients)]
    runners = [MixedClient(states[c], svc.url, keys[states[c].project], budgets[c], queries, uploads,
                           seed * 1000 + c, deadline) for c in range(clients)]
    errors: list[str] = []

    def run(r: MixedClient) -> None:
        try:
            r.run()
        except Exception as exc:  # noqa: BLE001 - reported, and the run fails
            errors.append(f"client {r.s.index}: {type(exc).__name__}: {exc}")
            log(errors[-1])

    threads = [threading.Thread(target=run, args=(r,), name=f"mixed-{r.s.index}", daemon=True) for r in runners]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1.0, deadline.left() + HTTP_TIMEOUT * 2))
    wall = time.perf_counter() - t0
    stuck = sum(t.is_alive() for t in threads)
    log(f"mixed load: {sum(s.sent for s in states)} requests in {wall:.1f} s; following the async tasks")
    tasks = wait_tasks(svc.url, keys, states, deadline)
    statuses: Counter = sum((s.statuses for s in states), Counter())
    errs: Counter = sum((s.errors for s in states), Counter())
    retried: Counter = sum((s.retried for s in states), Counter())
    by_op: dict[str, dict] = {}
    for (op, status), n in sorted(statuses.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        by_op.setdefault(op, {})[str(status)] = n
    latency = {op: percentiles([m for s in states for m in s.ms.get(op, [])]) for op in [*MIXED_OPS, "task_get"]}
    return {
        "clients": clients, "projects": list(PROJECTS), "requests_budget": total,
        "requests_sent": sum(s.sent for s in states), "http_calls": sum(statuses.values()), "wall_s": round(wall, 1),
        "statuses_by_op": by_op,
        "status_totals": {str(k): v for k, v in sorted(_totals(statuses).items(), key=lambda kv: str(kv[0]))},
        "errors_by_code": {f"{st} {code}": n for (st, code), n in sorted(errs.items())},
        "http_5xx": sum(n for (_, st), n in statuses.items() if isinstance(st, int) and st >= 500),
        "http_4xx": sum(n for (_, st), n in statuses.items() if isinstance(st, int) and 400 <= st < 500),
        "retried_429": dict(retried), "gave_up": sum(s.gave_up for s in states),
        "transport_errors": sum(n for (_, st), n in statuses.items() if isinstance(st, str)),
        "client_errors": errors, "stuck_clients": stuck, "latency": latency, "async": tasks,
    }, states


def _totals(statuses: Counter) -> Counter:
    totals: Counter = Counter()
    for (_, status), n in statuses.items():
        totals[status] += n
    return totals


def expectations(setup: Setup, states: list[ClientState]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for project in PROJECTS:
        mine = [s for s in states if s.project == project]
        expected = dict(setup.frames_by_id) if project == "p1" else {}
        for s in mine:
            expected.update(s.present)
        uncertain = set().union(*(s.uncertain for s in mine)) if mine else set()
        for t in uncertain:
            expected.pop(t, None)
        out[project] = {
            "expected": expected, "uncertain": uncertain,
            "removed": set().union(*(s.removed for s in mine)) if mine else set(),
            "metadata": {t: m for s in mine for t, m in s.metadata.items()},
        }
    return out


# --- the report ----------------------------------------------------------------------------------


def _ms(v: Any) -> str:
    return "-" if v is None else f"{v:,.1f}"


def markdown(r: dict[str, Any]) -> str:
    m, s = r["machine"], r["setup"]
    lines = [
        "## vecsim serve: load benchmark",
        "",
        f"{m['cpus']} CPU cores ({m['platform']}), Python {m['python']}, vecsim {m['vecsim']}, "
        f"engine {m['engine']} ({m['engine_version']}, index {m['index']}), descriptor {m['descriptor']}; "
        f"started {m['started']}, seed {r['args']['seed']}.",
        "",
        "| measurement | value |",
        "|---|---|",
        f"| setup: p1 | {s['assets']:,} assets, {s['frame_rows']:,} frame rows ({s['photos']} photos via the SDK + "
        f"{s['filler_assets']:,} filler assets via the store) |",
        f"| setup: wall time | {s['total_s']} s (photos {s['photos_s']} s, fillers {s['fillers_s']} s, "
        f"build_index {s['build_index_s']} s) |",
    ]
    sdk, http = r.get("sdk"), r.get("http_sync")
    if sdk:
        lines.append(f"| SDK in-process query, p50 / p95 | {_ms(sdk['p50_ms'])} / {_ms(sdk['p95_ms'])} ms "
                     f"(n={sdk['n']}, top-1 correct {sdk['top1_correct']}) |")
    if http:
        lines.append(f"| HTTP sync query, 1 client, p50 / p95 | {_ms(http['p50_ms'])} / {_ms(http['p95_ms'])} ms "
                     f"(n={http['n']}, top-1 correct {http['top1_correct']}) |")
    o = r.get("overhead")
    if o:
        lines.append(f"| HTTP overhead at p50 | {o['ms']:+.1f} ms ({o['pct']:+.1f} %): "
                     f"{'PASS' if o['pass'] else 'FAIL'} (target: at most 15 % or 5 ms) |")
    if sdk and http and http.get("server_mean_ms"):
        sv = dict(http["server_mean_ms"])
        req = sv.pop("request", None)

        def stages(d: dict) -> str:
            return " (" + ", ".join(f"{k} {v}" for k, v in d.items()) + ")" if d else ""

        lines.append(f"| mean per query: where the time goes | SDK call {_ms(sdk['mean_ms'])} ms"
                     f"{stages(sdk['stages_mean_ms'])}; HTTP client {_ms(http['mean_ms'])} ms, in the service "
                     f"{_ms(req)} ms{stages(sv)}"
                     + ("" if sdk["stages_mean_ms"] or sv else "; no stage times (none recorded by vecsim.timing)")
                     + " |")
    t = r.get("throughput")
    if t:
        lines.append(f"| throughput, {t['clients']} clients | {t['rps']} queries/s ({t['ok']} in {t['wall_s']} s), "
                     f"p50 / p95 {_ms(t['p50_ms'])} / {_ms(t['p95_ms'])} ms |")
    x = r.get("mixed")
    if x:
        lines += [
            f"| mixed load | {x['requests_sent']} requests ({x['http_calls']} HTTP calls with retries and polls), "
            f"{x['clients']} clients, projects {', '.join(x['projects'])}, {x['wall_s']} s"
            + (f", rate limit {r['args']['mixed_rate_limit']}/s per project" if r['args']['mixed_rate_limit'] else "")
            + " |",
            "| mixed: status codes | " + (", ".join(f"{k}: {v}" for k, v in x["status_totals"].items()) or "none")
            + " |",
            "| mixed: by operation | " + "; ".join(f"{op} " + ", ".join(f"{k}: {v}" for k, v in st.items())
                                                  for op, st in x["statuses_by_op"].items()) + " |",
            "| mixed: latency p50 / p95 | " + "; ".join(
                f"{op} {_ms(v['p50_ms'])} / {_ms(v['p95_ms'])} ms" for op, v in x["latency"].items() if v["n"]) + " |",
            f"| mixed: 5xx / 4xx | {x['http_5xx']} / {x['http_4xx']}"
            + (" (" + ", ".join(f"{k}: {v}" for k, v in x["errors_by_code"].items()) + ")" if x["errors_by_code"] else "")
            + " |",
            f"| mixed: 429 retried / given up / transport errors | {sum(x['retried_429'].values())}"
            + (" (" + ", ".join(f"{k}: {v}" for k, v in x["retried_429"].items()) + ")" if x["retried_429"] else "")
            + f" / {x['gave_up']} / {x['transport_errors']} |",
            f"| mixed: async tasks | {x['async']['tasks']} accepted, followed to the end in {x['async']['wait_s']} s: "
            + (", ".join(f"{k}: {v}" for k, v in x["async"]["outcomes"].items()) or "none") + " |",
        ]
        for project, v in r.get("verify", {}).items():
            lines.append(
                f"| verify {project} (SDK) | expected {v['expected']:,}, count() {v['count']:,} "
                f"({'ok' if v['count_ok'] else 'WRONG'}); lost {v['lost']}, unexpected {v['unexpected']}, "
                f"wrong metadata {v['wrong_metadata']}, wrong frame rows {v['wrong_frame_rows']}, orphan rows "
                f"{v['orphan_frame_rows']}; frame rows {v['frame_rows']:,} of {v['expected_frame_rows']:,} expected"
                + (f"; outcome unknown {v['uncertain']}" if v["uncertain"] else "") + " |")
    mem = r["memory"]
    lines += [
        f"| peak memory | benchmark {mem.get('bench_mb')} MiB, service {mem.get('service_mb')} MiB |",
        "| wall times | " + ", ".join(f"{k} {v} s" for k, v in r["wall_s"].items()) + " |",
        f"| result | {'PASS' if r['ok'] else 'FAIL: ' + '; '.join(r['failures'])} |",
    ]
    return "\n".join(lines) + "\n"


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=50_000, help="frame rows in p1 before the load (default 50000)")
    p.add_argument("--queries", type=int, default=200, help="queries per latency phase (default 200)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients of the throughput phase (default 8)")
    p.add_argument("--mixed-clients", type=int, default=16, help="concurrent clients of the mixed load (default 16)")
    p.add_argument("--mixed-requests", type=int, default=2000, help="requests of the mixed load in all (default 2000)")
    p.add_argument("--mixed-rate-limit", type=float, default=None, metavar="R",
                   help="restart the service for the mixed load with R requests/s per project (burst 2R), "
                        "so that 429s occur (default: no limit in the way)")
    p.add_argument("--photos", type=Path, default=None,
                   help=f"folder of photos to index and query (default {DEFAULT_PHOTOS} if it exists, "
                        "else scikit-image's sample photos)")
    p.add_argument("--photo-count", type=int, default=100, help="photos indexed and queried (default 100)")
    p.add_argument("--sync-concurrency", type=int, default=2, help="the service's sync_concurrency (default 2)")
    p.add_argument("--deadline-s", type=float, default=1800.0, help="the whole run's deadline (default 1800)")
    p.add_argument("--out", type=Path, default=None, help="write bench_serve.json and bench_serve.md here")
    p.add_argument("--work-dir", type=Path, default=None, help="index and service data (default: a temp folder)")
    p.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for name in ("frames", "queries", "clients", "mixed_clients", "photo_count", "sync_concurrency"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.mixed_requests < 0 or args.deadline_s <= 0:
        p.error("--mixed-requests must be >= 0 and --deadline-s > 0")
    if args.mixed_rate_limit is not None and args.mixed_rate_limit <= 0:
        p.error("--mixed-rate-limit must be > 0")
    return args


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import gc

    from vecsim.testing.serve import start_service, stop_service

    deadline = Deadline(args.deadline_s)
    rng = random.Random(args.seed)
    wall: dict[str, float] = {}
    report: dict[str, Any] = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                              "failures": [], "memory": {}, "wall_s": wall}
    folder = args.photos if args.photos is not None else (DEFAULT_PHOTOS if DEFAULT_PHOTOS.is_dir() else None)
    photos, source = load_photos(folder, args.photo_count, rng)
    uri = f"qdrant-edge:{work / 'index'}"
    log(f"work folder {work}; {len(photos)} photos from {source}")

    t = time.perf_counter()
    index, setup = build_index(uri, photos, args.frames, args.seed, deadline)
    wall["setup"] = round(time.perf_counter() - t, 1)
    try:
        store = index.store
        report["machine"] = {
            "cpus": os.cpu_count(), "platform": f"{platform.system()} {platform.machine()}",
            "python": platform.python_version(), "vecsim": _version(), "engine": store.engine,
            "engine_version": store.engine_version, "index": store.spec.index.model_dump(mode="json"),
            "descriptor": f"{store.spec.descriptor_name} {store.spec.descriptor_version} ({store.spec.dim}-d)",
            "local_features": store.spec.local_features or None, "uri": uri,
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        }
        report["machine"]["index"] = report["machine"]["index"].get("type", report["machine"]["index"])
        report["setup"] = {**setup.info, "photo_source": source}
        t = time.perf_counter()
        queries = edited_copies(photos, setup.photo_ids, args.queries, rng)
        uploads = [q for q, _ in edited_copies(photos, setup.photo_ids, min(64, 2 * len(photos)), rng)]
        wall["media"] = round(time.perf_counter() - t, 1)
        log(f"{len(queries)} query copies and {len(uploads)} upload copies made; SDK baseline")
        t = time.perf_counter()
        report["sdk"] = sdk_baseline(index, queries, deadline)
        wall["sdk"] = round(time.perf_counter() - t, 1)
        log(f"SDK: p50 {report['sdk']['p50_ms']} ms, p95 {report['sdk']['p95_ms']} ms")
    finally:
        index.close()
        del index
        gc.collect()

    env = {"rate_limit_per_s": 100000, "rate_burst": 100000, "access_log": False,
           "sync_concurrency": args.sync_concurrency, "request_timeout_s": 120}
    data = work / "service"
    t = time.perf_counter()
    svc = start_service(uri, data, env=env, ready_timeout=300)
    service_peak: list[float] = []
    states: list[ClientState] = []
    try:
        keys = {p: svc.create_key(p) for p in PROJECTS}
        wall["service_start"] = round(time.perf_counter() - t, 1)
        log(f"service up at {svc.url} (pid {svc.pid}); HTTP sync queries")
        t = time.perf_counter()
        report["http_sync"] = http_sequential(svc.url, keys["p1"], queries, deadline)
        wall["http_sync"] = round(time.perf_counter() - t, 1)
        h, s = report["http_sync"], report["sdk"]
        if h["p50_ms"] is not None and s["p50_ms"]:
            over = h["p50_ms"] - s["p50_ms"]
            pct = 100 * over / s["p50_ms"]
            report["overhead"] = {"ms": round(over, 1), "pct": round(pct, 1), "pass": over <= 5 or pct <= 15}
        log(f"HTTP: p50 {h['p50_ms']} ms, p95 {h['p95_ms']} ms; throughput with {args.clients} clients")
        t = time.perf_counter()
        report["throughput"] = http_throughput(svc.url, keys["p1"], queries, args.clients, deadline)
        wall["throughput"] = round(time.perf_counter() - t, 1)
        log(f"throughput: {report['throughput']['rps']} queries/s")

        if args.mixed_requests:
            if args.mixed_rate_limit is not None:
                service_peak.append(peak_rss_mb(svc.pid) or 0)
                stop_service(svc)
                env = {**env, "rate_limit_per_s": args.mixed_rate_limit,
                       "rate_burst": max(1, math.ceil(2 * args.mixed_rate_limit))}
                svc = start_service(uri, data, env=env, ready_timeout=300)
                log(f"service restarted with a rate limit of {args.mixed_rate_limit:g}/s per project")
            log(f"mixed load: {args.mixed_requests} requests, {args.mixed_clients} clients")
            t = time.perf_counter()
            report["mixed"], states = mixed_load(svc, keys, queries, uploads, args.mixed_clients,
                                                 args.mixed_requests, args.seed, deadline)
            wall["mixed"] = round(time.perf_counter() - t, 1)
        service_peak.append(peak_rss_mb(svc.pid) or 0)
    finally:
        code = stop_service(svc)
        if code == -signal.SIGTERM:  # uvicorn shuts down gracefully, then ends by the signal it got
            code = 0
        report["service_exit_code"] = code
        report["memory"]["service_mb"] = max(service_peak) if service_peak else None
        if code not in (0, None):
            log(f"the service exited with {code}; the end of its log:\n{svc.log_text()[-2000:]}")

    if args.mixed_requests:
        t = time.perf_counter()
        report["verify"] = {}
        for project, exp in expectations(setup, states).items():
            report["verify"][project] = verify_project(uri, project, exp["expected"], exp["metadata"],
                                                       exp["removed"], exp["uncertain"])
            log(f"verify {project}: {report['verify'][project]}")
        wall["verify"] = round(time.perf_counter() - t, 1)
        x, f = report["mixed"], report["failures"]
        for what, n in (("5xx answers", x["http_5xx"]), ("transport errors", x["transport_errors"]),
                        ("requests given up", x["gave_up"]), ("stuck clients", x["stuck_clients"]),
                        ("client crashes", len(x["client_errors"])), ("async tasks unfinished", x["async"]["unfinished"])):
            if n:
                f.append(f"{n} {what}")
        failed = sum(n for k, n in x["async"]["outcomes"].items() if " failed" in k)
        if failed:
            f.append(f"{failed} async tasks failed")
        for project, v in report["verify"].items():
            for what in ("lost", "unexpected", "wrong_metadata", "wrong_frame_rows", "orphan_frame_rows"):
                if v[what]:
                    f.append(f"{project}: {v[what]} {what.replace('_', ' ')}")
            if not v["count_ok"]:
                f.append(f"{project}: count() {v['count']} != expected {v['expected']}")
    for phase in ("http_sync", "throughput"):
        bad = {k: v for k, v in report.get(phase, {}).get("statuses", {}).items() if k != 200}
        if bad:
            report["failures"].append(f"{phase}: answers other than 200: {bad}")
    if report["service_exit_code"] not in (0, None):
        report["failures"].append(f"the service exited with {report['service_exit_code']}")
    if deadline.hit:
        report["failures"].append(f"the deadline ({args.deadline_s:g} s) cut {', '.join(deadline.hit)}")
    report["memory"]["bench_mb"] = peak_rss_mb()
    wall["total"] = round(time.monotonic() - _T0, 1)
    report["ok"] = not report["failures"]
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    temp = args.work_dir is None
    work = Path(tempfile.mkdtemp(prefix="vecsim-bench-serve-")) if temp else args.work_dir.resolve()
    try:
        check_serve_extra()
        if not temp:
            work.mkdir(parents=True, exist_ok=True)
            if any(work.iterdir()):
                raise BenchError(f"--work-dir {work} is not empty (the benchmark builds a new index there)")
        report = run(args, work)
    except BenchError as exc:
        print(f"bench_serve: {exc}", file=sys.stderr)
        return 2
    finally:
        if temp and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif temp:
            log(f"kept {work}")
    table = markdown(report)
    print(table)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_serve.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        (args.out / "bench_serve.md").write_text(table)
        log(f"wrote {args.out / 'bench_serve.json'} and {args.out / 'bench_serve.md'}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
