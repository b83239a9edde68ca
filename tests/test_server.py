"""The HTTP service, for real: ``vecsim serve`` processes on 127.0.0.1 (free ports, own data
folders, stopped by PID), driven over HTTP with httpx, on Qdrant Edge and Milvus Lite.

Media URLs come from loopback servers on 127.0.0.2, the one range the test services allow
(``url_allow``); 127.0.0.1 stays forbidden, so the SSRF cases run against the strict policy."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import pytest

httpx = pytest.importorskip("httpx", reason="the serve extra is not installed")
pytest.importorskip("fastapi", reason="the serve extra is not installed")

from vecsim.testing.serve import running_service, start_service, stop_service  # noqa: E402

from .service_helpers import (  # noqa: E402
    API,
    auth,
    callback_sink,
    endless,
    jpeg,
    redirect,
    send_bytes,
    serving,
    signature_ok,
    slow,
    wait_task,
)

ALLOWED_HOST = "127.0.0.2"
SERVICE_ENV = {
    "url_allow": [f"{ALLOWED_HOST}/32"], "max_url_bytes": 3_000_000, "url_deadline_s": 3, "url_timeout_s": 2,
    "max_upload_bytes": 6_000_000, "rate_limit_per_s": 1000, "rate_burst": 1000, "callback_backoff_s": 0.5,
}


def _loopback_alias_works() -> bool:
    try:
        with socket.socket() as s:
            s.bind((ALLOWED_HOST, 0))
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _loopback_alias_works(), reason=f"{ALLOWED_HOST} is not a loopback address here")


@pytest.fixture(scope="session")
def media(photos):
    """JPEG bytes of the sample photos, and a loopback server on 127.0.0.2 serving them."""
    files = {name: jpeg(im) for name, im in photos.items()}
    crop = photos["astronaut"].crop((40, 40, 460, 460))
    files["astronaut_crop"] = jpeg(crop, 80)
    routes = {f"/{name}.jpg": send_bytes(data) for name, data in files.items()}
    with serving(ALLOWED_HOST, routes) as server:
        yield files, server


def _service(tmp_path_factory, index_scheme: str, suffix: str = ""):
    d = tmp_path_factory.mktemp(f"service-{index_scheme}")
    svc = start_service(f"{index_scheme}:{d / ('index' + suffix)}", d / "data", env=SERVICE_ENV)
    svc.keys = {p: svc.create_key(p) for p in ("alpha", "beta")}
    return svc


@pytest.fixture(scope="session")
def edge_service(tmp_path_factory):
    svc = _service(tmp_path_factory, "qdrant-edge")
    try:
        yield svc
    finally:
        stop_service(svc)


@pytest.fixture(scope="session")
def lite_service(tmp_path_factory):
    svc = _service(tmp_path_factory, "milvus-lite", ".db")
    try:
        yield svc
    finally:
        stop_service(svc)


@pytest.fixture(params=["qdrant-edge", "milvus-lite"])
def any_service(request):
    return request.getfixturevalue("edge_service" if request.param == "qdrant-edge" else "lite_service")


def _client(svc) -> httpx.Client:
    return httpx.Client(base_url=svc.url, timeout=60)


def test_every_endpoint(any_service, media):
    files, server = media
    key = any_service.keys["alpha"]
    h = auth(key)
    with _client(any_service) as c:
        # add: sync (multipart, metadata) and async (JSON with a url)
        r = c.post(f"{API}/custom_index/add/sync", headers=h, files={"media": ("astro.jpg", files["astronaut"])},
                   data={"metadata": json.dumps({"listing": 1, "tags": ["ü"]}), "task_id": "astro"})
        assert r.status_code == 200, r.text
        assert r.json() == {**r.json(), "task_id": "astro", "status": "completed", "kind": "add"}
        assert r.json()["output"]["source"] == "astro.jpg" and r.json()["output"]["stored_frames"] == 1
        r = c.post(f"{API}/custom_index/add/async", headers=h,
                   json={"url": f"{server.base}/coffee.jpg", "metadata": {"listing": 2}})
        assert r.status_code == 202, r.text
        assert r.json()["status"] in ("queued", "running", "completed")
        coffee = r.json()["task_id"]
        done = wait_task(c, key, coffee)
        assert done["status"] == "completed", done
        assert done["output"]["task_id"] == coffee and done["output"]["media_type"] == "image"
        # an existing task_id: 409 at once (sync and async)
        r = c.post(f"{API}/custom_index/add/async", headers=h, files={"media": ("a.jpg", files["astronaut"])},
                   data={"task_id": "astro"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "task_exists"

        # query: sync multipart, sync GET with url=, async
        r = c.post(f"{API}/custom_index/query/sync", headers=h, files={"media": ("q.jpg", files["astronaut_crop"])})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "completed" and body["query"]["source"] == "q.jpg"
        best = body["output"][0]
        assert best["task_id"] == "astro" and best["metadata"] == {"listing": 1, "tags": ["ü"]}
        assert best["matches"][0]["similarity_score"] >= 0.9 and best["matched_ratio"] == 1.0
        assert {"query_timestamp", "matching_timestamp", "exact_score"} <= set(best["matches"][0])
        r = c.get(f"{API}/custom_index/query/sync", headers=h, params={"url": f"{server.base}/coffee.jpg", "top_k": 1})
        assert r.status_code == 200, r.text
        assert [a["task_id"] for a in r.json()["output"]] == [coffee]
        r = c.post(f"{API}/custom_index/query/async", headers=h, files={"media": ("q.jpg", files["astronaut_crop"])},
                   data={"threshold": "0.9"})
        assert r.status_code == 202
        done = wait_task(c, key, r.json()["task_id"])
        assert done["kind"] == "query" and done["output"][0]["task_id"] == "astro", done

        # remove: async, then sync; afterwards the asset is gone
        r = c.request("DELETE", f"{API}/custom_index/remove/async", headers=h, params={"task_id": coffee})
        assert r.status_code == 202
        done = wait_task(c, key, r.json()["task_id"])
        assert done["status"] == "completed" and done["output"] == {"task_id": coffee, "removed_frames": 1}
        r = c.request("DELETE", f"{API}/custom_index/remove/sync", headers=h, params={"task_id": "astro"})
        assert r.status_code == 200 and r.json()["output"]["removed_frames"] == 1
        r = c.request("DELETE", f"{API}/custom_index/remove/sync", headers=h, params={"task_id": "astro"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "task_not_found"
        r = c.post(f"{API}/custom_index/query/sync", headers=h, files={"media": ("q.jpg", files["astronaut"])})
        assert r.json()["output"] == []
        # a failed async task reports a typed error
        r = c.request("DELETE", f"{API}/custom_index/remove/async", headers=h, params={"task_id": "never-added"})
        done = wait_task(c, key, r.json()["task_id"])
        assert done["status"] == "failed" and done["error"]["code"] == "task_not_found"
        assert c.get(f"{API}/task/no-such-task", headers=h).status_code == 404


def test_callback_is_signed_and_delivered(edge_service, media):
    files, _ = media
    routes, got = callback_sink()
    key = edge_service.keys["alpha"]
    from vecsim.server.keys import KeyStore

    secret = KeyStore(edge_service.data_dir / "keys.sqlite").webhook_secret("alpha")
    with serving(ALLOWED_HOST, routes) as hook, _client(edge_service) as c:
        r = c.post(f"{API}/custom_index/add/async", headers=auth(key),
                   files={"media": ("rocket.jpg", files["rocket"])},
                   data={"task_id": "cb-rocket", "callback_url": f"{hook.base}/hook"})
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            time.sleep(0.1)
        assert got, "no callback within 30 s"
        headers, body = got[0]
        assert signature_ok(secret, body, headers.get("X-Vecsim-Signature"))
        assert not signature_ok("another secret", body, headers.get("X-Vecsim-Signature"))
        sent = json.loads(body)
        assert sent["task_id"] == "cb-rocket" and sent["status"] == "completed"
        assert sent == wait_task(c, key, "cb-rocket")  # the callback is the task's own envelope
        # a callback_url the policy forbids is refused before the task is accepted
        r = c.post(f"{API}/custom_index/add/async", headers=auth(key), files={"media": ("r.jpg", files["rocket"])},
                   data={"callback_url": "http://127.0.0.1:9/hook"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "url_not_allowed"


def test_auth(edge_service, media):
    files, _ = media
    key = edge_service.keys["alpha"]
    url = f"{API}/custom_index/query/sync"
    up = {"media": ("q.jpg", files["coffee"])}
    with _client(edge_service) as c:
        for headers in ({}, auth("vsk_000000000000_" + "x" * 43), auth(key + "x"), {"Authorization": key},
                        auth(key, "Basic")):
            r = c.post(url, headers=headers, files=up)
            assert r.status_code == 401, (headers, r.text)
            assert r.json()["error"]["code"] == "unauthorized"
        assert c.post(url, headers=auth(key, "Bearer"), files=up).status_code == 200
        # a second key of the project works on every endpoint; revoked, it answers 401
        extra = edge_service.create_key("alpha")
        assert c.post(url, headers=auth(extra), files=up).status_code == 200
        key_id = extra.split("_")[1]
        subprocess.run([sys.executable, "-m", "vecsim.cli", "keys", "revoke", key_id, "--data-dir",
                        str(edge_service.data_dir)], check=True, capture_output=True)
        assert c.post(url, headers=auth(extra), files=up).status_code == 401
    assert key not in edge_service.log_text() and extra not in edge_service.log_text()


def test_projects_never_see_each_other(edge_service, media):
    files, _ = media
    a, b = auth(edge_service.keys["alpha"]), auth(edge_service.keys["beta"])
    with _client(edge_service) as c:
        for h, photo, meta in ((a, "chelsea", {"owner": "alpha"}), (b, "clock", {"owner": "beta"})):
            r = c.post(f"{API}/custom_index/add/sync", headers=h, files={"media": ("x.jpg", files[photo])},
                       data={"task_id": "same-id", "metadata": json.dumps(meta)})
            assert r.status_code == 200, r.text
        # beta's photo queried in alpha: nothing of beta's, and alpha's own asset is not a copy of it
        r = c.post(f"{API}/custom_index/query/sync", headers=a, files={"media": ("q.jpg", files["clock"])})
        assert all(m["metadata"].get("owner") != "beta" for m in r.json()["output"])
        r = c.post(f"{API}/custom_index/query/sync", headers=b, files={"media": ("q.jpg", files["clock"])},
                   data={"top_k": "5", "threshold": "0"})
        assert [(m["task_id"], m["metadata"]) for m in r.json()["output"]][0] == ("same-id", {"owner": "beta"})
        assert all(m["metadata"].get("owner") == "beta" for m in r.json()["output"] if "owner" in m["metadata"])
        # alpha's async task ids are not beta's: 404, as for a task that does not exist
        r = c.post(f"{API}/custom_index/query/async", headers=a, files={"media": ("q.jpg", files["chelsea"])})
        alpha_task = r.json()["task_id"]
        wait_task(c, edge_service.keys["alpha"], alpha_task)
        r = c.get(f"{API}/task/{alpha_task}", headers=b)
        assert r.status_code == 404 and r.json()["error"]["code"] == "task_not_found"
        # beta removes its own "same-id": alpha's is still there
        r = c.request("DELETE", f"{API}/custom_index/remove/sync", headers=b, params={"task_id": "same-id"})
        assert r.status_code == 200
        r = c.post(f"{API}/custom_index/query/sync", headers=a, files={"media": ("q.jpg", files["chelsea"])})
        assert r.json()["output"][0]["task_id"] == "same-id" and r.json()["output"][0]["metadata"] == {"owner": "alpha"}
        r = c.request("DELETE", f"{API}/custom_index/remove/sync", headers=b, params={"task_id": "same-id"})
        assert r.status_code == 404
        metrics = c.get("/metrics").text
        assert 'vecsim_assets{project="beta"} 0.0' in metrics


def test_url_inputs_are_ssrf_safe(edge_service, media):
    files, server = media
    h = auth(edge_service.keys["alpha"])
    with serving("127.0.0.1", {"/secret.jpg": send_bytes(files["coins"])}) as inner:
        routes = {
            "/to-loopback": redirect(f"{inner.base}/secret.jpg"),
            "/to-metadata": redirect("http://169.254.169.254/latest/meta-data/"),
            "/to-file": redirect("file:///etc/passwd"),
            "/loop": redirect("/loop"),
            "/endless": endless,
            "/slow": slow,
        }
        with serving(ALLOWED_HOST, routes) as outer, _client(edge_service) as c:
            def query(url: str) -> httpx.Response:
                return c.post(f"{API}/custom_index/query/sync", headers=h, json={"url": url})

            cases = [
                (f"{inner.base}/secret.jpg", 400, "url_not_allowed"),
                (f"http://localhost:{inner.server_address[1]}/secret.jpg", 400, "url_not_allowed"),
                ("http://169.254.169.254/latest/meta-data/", 400, "url_not_allowed"),
                ("file:///etc/passwd", 400, "url_not_allowed"),
                ("/etc/passwd", 400, "url_not_allowed"),
                (f"{outer.base}/to-loopback", 400, "url_not_allowed"),
                (f"{outer.base}/to-metadata", 400, "url_not_allowed"),
                (f"{outer.base}/to-file", 400, "url_not_allowed"),
                (f"{outer.base}/loop", 422, "url_fetch_failed"),
                (f"{outer.base}/endless", 413, "media_too_large"),
            ]
            for url, status, code in cases:
                r = query(url)
                assert r.status_code == status, (url, r.text)
                if code:
                    assert r.json()["error"]["code"] == code, (url, r.text)
                assert "Traceback" not in r.text
            start = time.monotonic()
            r = query(f"{outer.base}/slow")
            assert r.status_code == 422 and r.json()["error"]["code"] == "url_fetch_failed", r.text
            assert time.monotonic() - start < 10  # cut at url_deadline_s = 3, not after the 30 s drip
        assert inner.requests == []  # nothing ever reached the loopback server


def test_errors_are_json_with_stable_codes(edge_service, media):
    files, _ = media
    h = auth(edge_service.keys["alpha"])
    add = f"{API}/custom_index/add/sync"
    with _client(edge_service) as c:
        cases = [
            (dict(files={"media": ("x.txt", b"hello, not an image")}), 415, "unsupported_media"),
            (dict(files={"media": ("x.jpg", b"")}), 400, "empty_media"),
            (dict(files={"media": ("x.jpg", files["coins"][:3000])}), 422, "corrupt_media"),
            (dict(files={"media": ("x.jpg", files["coins"])}, data={"metadata": "[1, 2]"}), 400, "invalid_request"),
            (dict(files={"media": ("x.jpg", files["coins"])}, data={"metadata": "{nope"}), 400, "invalid_request"),
            (dict(files={"media": ("x.jpg", files["coins"])}, data={"colour": "red"}), 400, "invalid_request"),
            (dict(files={"media": ("x.jpg", files["coins"])}, data={"task_id": "a\"b"}), 400, "invalid_request"),
            (dict(files={"media": ("x.jpg", files["coins"])}, data={"url": "http://127.0.0.2/x.jpg"}), 400,
             "invalid_request"),
            (dict(data={"metadata": "{}"}), 400, "invalid_request"),
            (dict(content=b"\x00" * 7_000_000, headers={**h, "Content-Type": "application/octet-stream"}), 413,
             "request_too_large"),
            (dict(files={"media": ("big.jpg", b"\xff" * 7_000_000)}), 413, "request_too_large"),
        ]
        for kwargs, status, code in cases:
            kwargs.setdefault("headers", h)
            r = c.post(add, **kwargs)
            assert r.status_code == status, (code, r.text)
            assert r.json()["error"]["code"] == code and r.json()["request_id"] == r.headers["x-request-id"]
            assert "Traceback" not in r.text and "File \"" not in r.text
        r = c.get("/api/v2/nothing-here", headers=h)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = c.post(f"{API}/custom_index/query/sync", headers=h, files={"media": ("q.jpg", files["coins"])},
                   data={"top_k": "0"})
        assert r.status_code == 400 and "top_k" in r.json()["error"]["message"]
        r = c.get("/livez", headers={"X-Request-ID": "my-req-42"})
        assert r.headers["x-request-id"] == "my-req-42"


def test_openapi_schema_is_complete(edge_service):
    with _client(edge_service) as c:
        spec = c.get("/openapi.json").json()
    paths = spec["paths"]
    for path, methods in {
        "/api/v2/custom_index/add/sync": {"post"}, "/api/v2/custom_index/add/async": {"post"},
        "/api/v2/custom_index/query/sync": {"post", "get"}, "/api/v2/custom_index/query/async": {"post", "get"},
        "/api/v2/custom_index/remove/sync": {"delete"}, "/api/v2/custom_index/remove/async": {"delete"},
        "/api/v2/task/{task_id}": {"get"}, "/livez": {"get"}, "/readyz": {"get"}, "/metrics": {"get"},
    }.items():
        assert methods <= set(paths[path]), path
        for method in methods:
            op = paths[path][method]
            if path.startswith("/api/"):
                assert "401" in op["responses"] and "429" in op["responses"], (path, method)
                for status, resp in op["responses"].items():
                    ref = json.dumps(resp)
                    assert ("ErrorResponse" in ref) == (status[0] in "45"), (path, method, status)
            if method == "post" and path.startswith("/api/"):
                content = op["requestBody"]["content"]
                assert {"multipart/form-data", "application/json"} <= set(content)
    schemas = spec["components"]["schemas"]
    for name in ("AddResponse", "QueryResponse", "RemoveResponse", "ErrorResponse", "AssetMatch", "Match",
                 "Segment", "AddResult", "RemoveResult"):
        assert name in schemas, name


def test_metrics_and_access_log(edge_service, media):
    files, _ = media
    key = edge_service.keys["alpha"]
    with _client(edge_service) as c:
        c.post(f"{API}/custom_index/query/sync", headers=auth(key), files={"media": ("q.jpg", files["coffee"])})
        text = c.get("/metrics").text
    for name in ("vecsim_http_requests_total", "vecsim_http_request_duration_seconds_bucket", "vecsim_queue_depth",
                 "vecsim_queue_oldest_age_seconds", "vecsim_tasks_total", "vecsim_assets", "vecsim_ready 1.0"):
        assert name in text, name
    assert 'route="/api/v2/custom_index/query/sync"' in text
    for stage in ("embed", "search", "aggregate"):
        assert f'vecsim_stage_duration_seconds_count{{stage="{stage}"}}' in text, stage
    lines = [json.loads(line) for line in edge_service.log_text().splitlines() if line.startswith("{")]
    access = [entry for entry in lines if "request_id" in entry and entry.get("route", "").endswith("/query/sync")]
    assert access and {"request_id", "status", "ms", "project", "method"} <= set(access[-1])
    assert key not in edge_service.log_text()


def test_full_queue_and_rate_limit_answer_429(tmp_path, media):
    files, _ = media
    env = {**SERVICE_ENV, "workers": 0, "max_queue": 2, "rate_limit_per_s": 0.2, "rate_burst": 6}
    with running_service(f"qdrant-edge:{tmp_path / 'index'}", tmp_path / "data", env=env) as svc:
        h = auth(svc.create_key("alpha"))
        with _client(svc) as c:
            codes = [c.post(f"{API}/custom_index/add/async", headers=h,
                            files={"media": ("x.jpg", files["coins"])}).status_code for _ in range(3)]
            assert codes[:2] == [202, 202]
            r = c.post(f"{API}/custom_index/add/async", headers=h, files={"media": ("x.jpg", files["coins"])})
            assert r.status_code == 429 and r.json()["error"]["code"] == "queue_full"
            assert int(r.headers["retry-after"]) > 0
            statuses = [c.get(f"{API}/task/x", headers=h) for _ in range(4)]
            limited = [r for r in statuses if r.status_code == 429]
            assert limited and limited[0].json()["error"]["code"] == "rate_limited"
            assert int(limited[0].headers["retry-after"]) >= 1
        # nothing was lost: the accepted tasks are still queued, their uploads on disk
        spooled = list((svc.data_dir / "spool").iterdir())
        assert len(spooled) == 2


def test_sigkill_with_tasks_queued_and_running_loses_nothing(tmp_path, photos):
    """Accepted tasks survive a SIGKILL of the service: after a restart each completes, once."""
    from vecsim import CustomIndex
    from vecsim.video_edits import slideshow, write_video

    video = tmp_path / "long.mp4"
    write_video(video, slideshow([photos[n] for n in ("astronaut", "rocket", "coffee")], 10, 1, (320, 240)), 1)
    index_uri = f"qdrant-edge:{tmp_path / 'index'}"
    svc = start_service(index_uri, tmp_path / "data", env=SERVICE_ENV)
    try:
        key = svc.create_key("alpha")
        h = auth(key)
        names = ["chelsea", "camera", "clock", "coins", "immunohistochemistry"]
        accepted = []
        with _client(svc) as c:
            r = c.post(f"{API}/custom_index/add/async", headers=h, files={"media": ("long.mp4", video.read_bytes())},
                       data={"task_id": "video"})
            assert r.status_code == 202
            accepted.append("video")
            for n in names:
                r = c.post(f"{API}/custom_index/add/async", headers=h, files={"media": (f"{n}.jpg", jpeg(photos[n]))},
                           data={"task_id": n})
                assert r.status_code == 202
                accepted.append(n)
            deadline = time.monotonic() + 30
            while c.get(f"{API}/task/video", headers=h).json()["status"] != "running":
                assert time.monotonic() < deadline
                time.sleep(0.05)
        svc.kill(signal.SIGKILL)  # the video is being embedded, the photos wait in the queue
        svc = start_service(index_uri, tmp_path / "data", env=SERVICE_ENV)
        with _client(svc) as c:
            done = {t: wait_task(c, key, t, timeout=120) for t in accepted}
        assert all(d["status"] == "completed" for d in done.values()), done
        assert done["video"]["output"]["media_type"] == "video" and done["video"]["output"]["stored_frames"] == 30
    finally:
        stop_service(svc)
    with CustomIndex(index_uri, project="alpha") as index:
        assert index.count() == len(accepted)  # each asset once
        assert len(index.get("video").frames) == 30
        assert index.vacuum().removed_frames == 0  # the killed attempt's rows were swept by the retry
    assert list((tmp_path / "data" / "spool").iterdir()) == []


def test_redis_queue_shared_by_two_replicas(tmp_path, media, redis_url, milvus_server_uri):
    """Several replicas: one Milvus server, one Redis, one shared data folder. Tasks accepted by an
    API-only replica (workers=0) are run by a worker replica; both answer for them."""
    from .backends import drop_all_collections

    files, _ = media
    uri, _ = milvus_server_uri
    env = {**SERVICE_ENV, "queue": redis_url, "collection": "served"}
    data = tmp_path / "shared"
    front = start_service(uri, data, env={**env, "workers": 0})
    try:
        key = front.create_key("alpha")
        with _client(front) as c:
            r = c.post(f"{API}/custom_index/add/async", headers=auth(key), files={"media": ("c.jpg", files["chelsea"])},
                       data={"task_id": "cat"})
            assert r.status_code == 202
            time.sleep(0.5)
            assert c.get(f"{API}/task/cat", headers=auth(key)).json()["status"] == "queued"  # no worker yet
            with running_service(uri, data, env=env) as worker:
                with _client(worker) as w:
                    assert wait_task(w, key, "cat")["status"] == "completed"
                assert c.get(f"{API}/task/cat", headers=auth(key)).json()["status"] == "completed"
                r = c.post(f"{API}/custom_index/query/sync", headers=auth(key),
                           files={"media": ("q.jpg", files["chelsea"])})
                assert r.json()["output"][0]["task_id"] == "cat"  # the front sees what the worker added
    finally:
        stop_service(front)
        drop_all_collections(uri)
