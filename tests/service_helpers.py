"""What the service tests share: media servers on loopback, polling a task, encoding photos."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import io
import json
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

import httpx
from PIL import Image

API = "/api/v2"


def jpeg(im: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def auth(key: str, scheme: str = "Token") -> dict[str, str]:
    return {"Authorization": f"{scheme} {key}"}


def wait_task(client: httpx.Client, key: str, task_id: str, timeout: float = 60.0) -> dict:
    """Poll GET /task/{id} until it is completed or failed (bounded in time)."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"{API}/task/{task_id}", headers=auth(key))
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] in ("completed", "failed"):
            return body
        assert time.monotonic() < deadline, f"task {task_id} still {body['status']} after {timeout} s"
        time.sleep(0.1)


class Recorder(http.server.ThreadingHTTPServer):
    """A loopback HTTP server whose behaviour per path is a handler function; it records requests."""

    daemon_threads = True

    def __init__(self, host: str, routes: dict[str, Callable]):
        self.routes = routes
        self.requests: list[tuple[str, str, dict, bytes]] = []
        super().__init__((host, 0), _Handler)

    @property
    def base(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def _handle(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        self.server.requests.append((self.command, self.path, dict(self.headers), body))
        route = self.server.routes.get(self.path.split("?")[0])
        if route is None:
            self.send_response(404)
            self.end_headers()
            return
        try:
            route(self)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_POST = _handle


@contextmanager
def serving(host: str, routes: dict[str, Callable]):
    server = Recorder(host, routes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def send_bytes(data: bytes, kind: str = "image/jpeg") -> Callable:
    def route(h) -> None:
        h.send_response(200)
        h.send_header("Content-Type", kind)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
    return route


def redirect(location: str) -> Callable:
    def route(h) -> None:
        h.send_response(302)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()
    return route


def endless(h) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "image/jpeg")
    h.end_headers()
    chunk = b"\xff" * 65536
    for _ in range(100_000):  # bounded: 6.5 GB at most, cut long before by the service
        h.wfile.write(chunk)


def slow(h) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "image/jpeg")
    h.send_header("Content-Length", "1000")
    h.end_headers()
    for _ in range(60):  # one byte every half second, for 30 s at most
        h.wfile.write(b"\xff")
        h.wfile.flush()
        time.sleep(0.5)


def signature_ok(secret: str, body: bytes, header: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header or "")


def callback_sink() -> tuple[dict[str, Callable], list[tuple[dict, bytes]]]:
    got: list[tuple[dict, bytes]] = []

    def route(h) -> None:
        got.append((dict(h.headers), h.server.requests[-1][3]))
        h.send_response(204)
        h.end_headers()
    return {"/hook": route}, got


def json_of(body: bytes) -> dict:
    return json.loads(body.decode("utf-8"))
