"""The service under faults, for real: a Milvus 2.3.5 server (this module's own: it is stopped,
killed and restarted) behind a ``vecsim serve`` process under a mixed load of sync and async adds;
and SIGTERM of a service with a request running and tasks queued.

Every loop is bounded in count and time; every server is stopped by its PID however a test ends.
The measured times are printed (``pytest -s`` shows them)."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections import Counter

import pytest

httpx = pytest.importorskip("httpx", reason="the serve extra is not installed")
pytest.importorskip("fastapi", reason="the serve extra is not installed")

from vecsim.testing.serve import start_service, stop_service  # noqa: E402

from .service_helpers import API, auth, jpeg  # noqa: E402

FAULT_ENV = {
    "store_timeout_s": 2, "store_retry_backoff_s": 0.5, "store_retry_max_s": 2, "rate_limit_per_s": 1000,
    "rate_burst": 1000, "request_timeout_s": 30, "workers": 2,
}
#: Longest a sync call may take while the store is stopped or gone (its deadline is 2 s; two
#: calls at once, sync_concurrency = 2, so a third may wait for one of them).
SYNC_BOUND_S = 10.0
THREADS = 3
MAX_PER_THREAD = 30  # requests per load thread at most
#: Pause of a load thread between two requests: while the store is out, one request per thread
#: every few seconds is enough to meet each phase (and keeps the queue to drain short).
PACE_S = {"healthy": 0.1, "stopped": 2.5, "down": 2.5, "restarting": 2.5, "back": 0.1}


@pytest.fixture(scope="module")
def milvus(tmp_path_factory):
    """This module's own Milvus server (the session's one must survive): paused, killed and
    restarted on the same data by the test."""
    from vecsim.testing.milvus_server import MilvusServer, MilvusServerUnavailable

    try:
        server = MilvusServer(tmp_path_factory.mktemp("mf")).__enter__()
    except MilvusServerUnavailable as exc:
        pytest.skip(f"no Milvus server: {exc}")
    try:
        yield server
    finally:
        server.stop()


def _images(photos, n: int) -> list[bytes]:
    """``n`` distinct small JPEGs (crops of the sample photos)."""
    names = sorted(photos)
    out = []
    for i in range(n):
        im = photos[names[i % len(names)]].convert("RGB")
        w, h = im.size
        step = i // len(names)
        box = (step * 7 % (w // 4), step * 5 % (h // 4), w - step * 3 % (w // 4), h - step * 11 % (h // 4))
        out.append(jpeg(im.crop(box).resize((224, 224)), 85))
    return out


class _Load:
    """A few threads, each alternating sync and async adds of its own images (unique task ids)
    until told to stop or MAX_PER_THREAD; every answer recorded with the phase it was sent in."""

    def __init__(self, url: str, key: str, images: list[bytes]):
        self.url, self.key, self.images = url, key, images
        self.phase = "healthy"
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answers: list[dict] = []

    def run(self, n: int) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as c:
            for i in range(MAX_PER_THREAD):
                if self.stop.is_set():
                    return
                mode = "sync" if i % 2 == 0 else "async"
                task_id = f"{mode[0]}{n}-{i}"
                image = self.images[(n * MAX_PER_THREAD + i) % len(self.images)]
                phase, start = self.phase, time.monotonic()
                r = c.post(f"{API}/custom_index/add/{mode}", headers=auth(self.key),
                           files={"media": (f"{task_id}.jpg", image)}, data={"task_id": task_id})
                answer = {"mode": mode, "task_id": task_id, "status": r.status_code, "phase": phase,
                          "seconds": time.monotonic() - start, "retry_after": r.headers.get("retry-after"),
                          "code": r.json().get("error", {}).get("code") if r.status_code >= 400 else None}
                with self.lock:
                    self.answers.append(answer)
                time.sleep(PACE_S[self.phase])

    def accepted(self) -> int:
        with self.lock:
            return sum(a["status"] in (200, 202) for a in self.answers)

    def answered_in(self, phase: str) -> int:
        with self.lock:
            return sum(a["phase"] == phase for a in self.answers)


def _poll(fn, timeout: float, interval: float = 0.2):
    """Call ``fn`` until it returns a true value (returned), at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)


def _readyz(url: str) -> int:
    try:
        return httpx.get(f"{url}/readyz", timeout=5).status_code
    except httpx.HTTPError:
        return 0


def test_store_stopped_killed_and_restarted_under_load(milvus, tmp_path, photos):
    from vecsim.adapters import open_store
    from vecsim.index_config import FlatIndex
    from vecsim.store import CollectionSpec

    svc = start_service(milvus.uri, tmp_path / "data", env=FAULT_ENV)
    try:
        key = svc.create_key("faults")
        load = _Load(svc.url, key, _images(photos, THREADS * MAX_PER_THREAD))
        threads = [threading.Thread(target=load.run, args=(n,), daemon=True) for n in range(THREADS)]
        for t in threads:
            t.start()
        assert _poll(lambda: load.accepted() >= 6, 90), f"the healthy service accepted only {load.accepted()} adds"
        with httpx.Client(base_url=svc.url, timeout=60) as c:  # an asset that a later add will try to take
            first = c.post(f"{API}/custom_index/add/sync", headers=auth(key), files={"media": ("t.jpg", load.images[0])},
                           data={"task_id": "taken", "metadata": '{"v": 1}'})
            assert first.status_code == 200, first.text

        # --- the store stops answering (SIGSTOP: its port accepts, nothing answers) ---------------
        milvus.pause()
        load.phase = "stopped"
        paused_at = time.monotonic()
        assert _poll(lambda: _readyz(svc.url) == 503, 15), "/readyz stayed ready with the store stopped"
        readyz_down_s = time.monotonic() - paused_at
        time.sleep(max(0.0, paused_at + 6 - time.monotonic()))

        # --- it crashes (SIGKILL), stays down a moment, and comes back on the same data -----------
        milvus.kill()
        load.phase = "down"
        with httpx.Client(base_url=svc.url, timeout=60) as c:
            # accepted while the store cannot tell whether "taken" is free: the task checks it once
            # the store is back, and fails with task_exists, the asset untouched
            late = c.post(f"{API}/custom_index/add/async", headers=auth(key),
                          files={"media": ("t.jpg", load.images[1])}, data={"task_id": "taken", "metadata": '{"v": 2}'})
            assert late.status_code == 202, late.text
        time.sleep(2)
        load.phase = "restarting"
        milvus.restart()  # returns once milvus reports healthy
        back_at = time.monotonic()
        assert _poll(lambda: _readyz(svc.url) == 200, 120, 0.1), "the service did not become ready again"
        ready_s = time.monotonic() - back_at
        load.phase = "back"
        _poll(lambda: load.answered_in("back") >= THREADS, 30)  # a few requests on the recovered service
        load.stop.set()
        for t in threads:
            t.join(90)
        assert not any(t.is_alive() for t in threads)

        answers = load.answers
        outage = [a for a in answers if a["phase"] in ("stopped", "down", "restarting")]
        statuses = Counter(a["status"] for a in answers)
        assert set(statuses) <= {200, 202, 503}, statuses  # no 5xx but 503, no other error
        for a in answers:
            if a["status"] == 503:
                assert a["code"] == "store_unavailable" and int(a["retry_after"]) > 0, a
        sync_outage = [a for a in outage if a["mode"] == "sync"]
        assert sync_outage and max(a["seconds"] for a in sync_outage) <= SYNC_BOUND_S, sync_outage
        assert any(a["status"] == 503 for a in sync_outage), "no sync call met the outage"
        async_outage = [a for a in outage if a["mode"] == "async"]
        assert async_outage and all(a["status"] == 202 for a in async_outage), async_outage  # accepted while down
        back = [a for a in answers if a["phase"] == "back"]
        assert back and all(a["status"] in (200, 202) for a in back), back  # once ready, calls run again

        with httpx.Client(base_url=svc.url, timeout=60) as c:
            # a client retries its 503 sync adds (same task_id): 200, or 409 where the add had
            # been committed although its answer was 503 (the store wrote it, then stopped)
            committed_anyway = set()
            for a in answers:
                if a["mode"] == "sync" and a["status"] == 503:
                    def again(a=a):
                        r = c.post(f"{API}/custom_index/add/sync", headers=auth(key), data={"task_id": a["task_id"]},
                                   files={"media": ("again.jpg", load.images[0])})
                        return r.status_code if r.status_code != 503 else None
                    status = _poll(again, 60, 1.0)
                    assert status in (200, 409), (a, status)
                    if status == 409:
                        committed_anyway.add(a["task_id"])
            # every accepted async task completes (none failed), by itself
            pending = {a["task_id"] for a in answers if a["status"] == 202}
            done: dict[str, dict] = {}

            def drained() -> bool:
                for task_id in sorted(pending - set(done)):
                    body = c.get(f"{API}/task/{task_id}", headers=auth(key)).json()
                    if body["status"] in ("completed", "failed"):
                        done[task_id] = body
                return len(done) == len(pending)

            assert _poll(drained, 180, 0.5), f"{len(pending) - len(done)} accepted tasks never finished"
            drained_s = time.monotonic() - back_at
        failed = {t: d["error"] for t, d in done.items() if d["status"] != "completed"}
        assert not failed, failed
        with httpx.Client(base_url=svc.url, timeout=60) as c:
            late_task = _poll(lambda: (lambda b: b if b["status"] in ("completed", "failed") else None)(
                c.get(f"{API}/task/taken", headers=auth(key)).json()), 60, 0.5)
            assert late_task and late_task["status"] == "failed" and late_task["error"]["code"] == "task_exists", late_task
            assert c.get(f"{API}/custom_index/asset/taken", headers=auth(key)).json()["output"]["metadata"] == {"v": 1}
        retried = sum(d["retries"] > 0 for d in done.values())
    finally:
        stop_service(svc)

    # --- the store's own view: every accepted asset there once, nothing else, no stray rows ------
    expected = ({"taken"} | {a["task_id"] for a in answers if a["status"] in (200, 202)}
                | {a["task_id"] for a in answers if a["mode"] == "sync" and a["status"] == 503})
    store = open_store(milvus.uri, "vecsim", CollectionSpec("unused", "0", 8, FlatIndex()), project="faults")
    try:
        committed, present = store.generations()
        n_assets, n_frames = store.count()
    finally:
        store.close()
    lost = expected - set(committed)
    unexpected = set(committed) - expected
    stray = {k: n for k, n in present.items() if committed.get(k[0]) != k[1] or n != 1}
    print(f"\nfault load: {len(answers)} requests sent ({len(outage)} during the outage), "
          f"{statuses[200]} sync 200, {statuses[202]} async 202, {statuses[503]} 503 "
          f"({len(committed_anyway)} of them committed anyway), {len(done)} tasks completed "
          f"({retried} after retries), {len(lost)} lost, {len(unexpected)} unexpected, {len(stray)} stray "
          f"generations; assets {n_assets}, frame rows {n_frames}, expected {len(expected)}")
    print(f"slowest sync answer during the outage {max(a['seconds'] for a in sync_outage):.1f} s; "
          f"recovery: /readyz 503 {readyz_down_s:.1f} s after SIGSTOP; milvus healthy again -> service ready "
          f"{ready_s:.1f} s, -> queue drained {drained_s:.1f} s")
    assert not lost and not unexpected and not stray, (lost, unexpected, stray)
    assert n_assets == len(expected) and n_frames == len(expected)  # one frame per image, each once


def test_sigterm_finishes_the_running_request_and_keeps_queued_tasks(tmp_path, photos):
    """SIGTERM: the listener closes at once (new connections refused), the running sync request
    completes with 200, the process exits within shutdown_timeout_s; the tasks still queued
    stay in the queue, and the next service on the same data completes them, each once."""
    from vecsim import CustomIndex
    from vecsim.video_edits import slideshow, write_video

    names = sorted(photos)
    video = tmp_path / "slow.mp4"  # 60 frames to embed: seconds of work
    write_video(video, slideshow([photos[n] for n in names[:6]], 10, 1, (320, 240)), 1)
    index_uri = f"qdrant-edge:{tmp_path / 'index'}"
    env = {"shutdown_timeout_s": 40, "rate_limit_per_s": 1000, "rate_burst": 1000, "request_timeout_s": 120}
    svc = start_service(index_uri, tmp_path / "data", env=env)
    port = int(svc.url.rsplit(":", 1)[1])
    try:
        key = svc.create_key("alpha")
        h = auth(key)
        with httpx.Client(base_url=svc.url, timeout=120) as c:
            r = c.post(f"{API}/custom_index/add/async", headers=h, data={"task_id": "bg-video"},
                       files={"media": ("bg.mp4", video.read_bytes())})
            assert r.status_code == 202
            queued = ["bg-video"]
            for n in names[:4]:
                r = c.post(f"{API}/custom_index/add/async", headers=h, data={"task_id": n},
                           files={"media": (f"{n}.jpg", jpeg(photos[n]))})
                assert r.status_code == 202
                queued.append(n)
            assert _poll(lambda: c.get(f"{API}/task/bg-video", headers=h).json()["status"] == "running", 30, 0.05)

        answer: dict = {}

        def slow_request() -> None:
            with httpx.Client(base_url=svc.url, timeout=120) as c:
                r = c.post(f"{API}/custom_index/add/sync", headers=h, data={"task_id": "sync-video"},
                           files={"media": ("slow.mp4", video.read_bytes())})
                answer.update(status=r.status_code, at=time.monotonic(), body=r.json())

        request = threading.Thread(target=slow_request, daemon=True)
        request.start()
        time.sleep(1.5)  # the upload is in, the video is being embedded
        assert request.is_alive(), "the slow request finished before SIGTERM: it is not slow enough here"
        term_at = time.monotonic()
        os.kill(svc.pid, signal.SIGTERM)

        def refused() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except ConnectionRefusedError:
                return True
            return False

        assert _poll(refused, 3, 0.05), "new connections still accepted after SIGTERM"
        refused_s = time.monotonic() - term_at
        assert request.is_alive() and svc.process.poll() is None  # refused while the old request still runs
        svc.process.wait(env["shutdown_timeout_s"] + 15)
        exit_s = time.monotonic() - term_at
        request.join(10)
        assert answer.get("status") == 200, answer
        assert answer["at"] > term_at and answer["body"]["output"]["stored_frames"] > 0
        assert exit_s <= env["shutdown_timeout_s"] + 5, exit_s
        print(f"\nSIGTERM: new connections refused {refused_s:.2f} s after it; running request answered 200 "
              f"{answer['at'] - term_at:.1f} s after it; "
              f"process exited after {exit_s:.1f} s (rc {svc.process.returncode})")

        svc = start_service(index_uri, tmp_path / "data", env=env)  # the upgrade: a new process, same data
        with httpx.Client(base_url=svc.url, timeout=60) as c:
            results = {}
            for task_id in queued:
                results[task_id] = _poll(lambda: (body := c.get(f"{API}/task/{task_id}", headers=h).json())
                                         ["status"] in ("completed", "failed") and body, 120, 0.2)
        assert all(r and r["status"] == "completed" for r in results.values()), results
    finally:
        stop_service(svc)
    with CustomIndex(index_uri, project="alpha") as index:
        assert index.count() == len(queued) + 1  # each queued asset once, and the sync one
        assert index.vacuum().removed_frames == 0
    assert list((tmp_path / "data" / "spool").iterdir()) == []
