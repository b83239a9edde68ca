"""URL inputs, served from a local HTTP server on the loopback interface."""

from __future__ import annotations

import functools
import glob
import http.server
import io
import tempfile
import threading
import time

import pytest

from vecsim import CustomIndex, MediaFetchError, MediaNotFoundError, UnsupportedMediaError
from vecsim.edits import center_crop
from vecsim.media import open_media
from vecsim.media.fetch import UrlPolicy
from vecsim.video_edits import slideshow, write_video


@pytest.fixture(scope="module")
def server(tmp_path_factory, photos):
    root = tmp_path_factory.mktemp("www")
    photos["coffee"].save(root / "coffee.jpg")
    center_crop(0.5)(photos["coffee"]).save(root / "coffee_crop.png")
    write_video(root / "clip.mp4", slideshow([photos["rocket"], photos["camera"]], 4, 10, (320, 240)), 10)
    (root / "notes.txt").write_text("not media")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _leftovers():
    return set(glob.glob(f"{tempfile.gettempdir()}/vecsim-url-*"))


def test_image_and_video_urls(server, tmp_path):
    before = _leftovers()
    with CustomIndex(str(tmp_path / "u.db")) as idx:
        added = idx.add(f"{server}/coffee.jpg", task_id="coffee")
        assert added.source == f"{server}/coffee.jpg" and added.media_type == "image"
        video = idx.add(f"{server}/clip.mp4", task_id="clip")
        assert video.media_type == "video" and video.frames == 8
        res = idx.query(f"{server}/coffee_crop.png")
        assert res.source == f"{server}/coffee_crop.png" and res.output[0].task_id == "coffee"
    assert _leftovers() == before  # temporary downloads are deleted


def test_url_errors_name_the_url(server):
    with pytest.raises(MediaNotFoundError, match="404") as err:
        open_media(f"{server}/missing.jpg")
    assert err.value.source == f"{server}/missing.jpg"
    with pytest.raises(UnsupportedMediaError) as err:
        open_media(f"{server}/notes.txt")
    assert err.value.source == f"{server}/notes.txt"
    with pytest.raises(MediaFetchError):
        open_media("http://127.0.0.1:9/nothing-listens-here.jpg")


# --- misbehaving servers -----------------------------------------------------------------------


class _Misbehaving(http.server.BaseHTTPRequestHandler):
    """Answers per path: slow trickles, bad or lying Content-Length, redirects, HTML."""

    jpeg = b""  # set by the fixture

    def log_message(self, *args):  # keep the test output quiet
        pass

    def _send(self, body: bytes, *, length: str | None = None, kind: str = "image/jpeg", status: int = 200,
              headers: dict[str, str] | None = None):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)) if length is None else length)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path
        try:
            if path == "/slow.jpg":  # one byte every 0.3 s, for at most 15 s
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.end_headers()
                for i in range(50):
                    self.wfile.write(self.jpeg[i : i + 1])
                    self.wfile.flush()
                    time.sleep(0.3)
            elif path == "/bad-length.jpg":
                self._send(self.jpeg, length="a lot")
            elif path == "/longer.jpg":  # claims more bytes than it sends, then closes
                self._send(self.jpeg[: len(self.jpeg) // 2], length=str(len(self.jpeg)))
            elif path == "/shorter.jpg":  # sends junk after the declared length
                self._send(self.jpeg + b"\0junk" * 200, length=str(len(self.jpeg)))
            elif path == "/page.jpg":
                self._send(b"<!doctype html><html><body>a page</body></html>", kind="text/html; charset=utf-8")
            elif path.startswith("/to-"):
                target = {"/to-file": "file:///etc/passwd", "/to-ftp": "ftp://127.0.0.1:9/x.jpg",
                          "/to-http": "/bad-length.jpg"}[path]
                self._send(b"", kind="text/plain", status=302, headers={"Location": target})
            else:
                self._send(b"no", kind="text/plain", status=404)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def bad_server(photos):
    buf = io.BytesIO()
    photos["coffee"].save(buf, format="JPEG")
    handler = type("Handler", (_Misbehaving,), {"jpeg": buf.getvalue()})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_trickling_server_hits_the_download_deadline(bad_server):
    before = _leftovers()
    start = time.monotonic()
    with pytest.raises(MediaFetchError, match="within 1 s") as err:
        open_media(f"{bad_server}/slow.jpg", url_policy=UrlPolicy.permissive(deadline=1.0))
    assert time.monotonic() - start < 4  # not the 15 s the server would take
    assert err.value.source == f"{bad_server}/slow.jpg" and _leftovers() == before


def test_content_length_that_is_not_a_number_is_ignored(bad_server):
    stream = open_media(f"{bad_server}/bad-length.jpg")
    assert stream.media_type == "image" and len(stream.read_all()) == 1


def test_content_length_lies(bad_server, photos):
    url = f"{bad_server}/longer.jpg"
    with pytest.raises(MediaFetchError, match="closed after") as err:
        open_media(url)
    assert err.value.source == url
    # junk after the declared length is not part of the response: the image decodes
    assert open_media(f"{bad_server}/shorter.jpg").read_all()[0].image.size == photos["coffee"].size


@pytest.mark.parametrize("hop", ["to-file", "to-ftp"])
def test_redirect_to_a_non_http_url_is_refused(bad_server, hop):
    url = f"{bad_server}/{hop}"
    with pytest.raises(MediaFetchError, match="not an http\\(s\\) URL") as err:
        open_media(url)
    assert err.value.source == url


def test_redirect_to_http_is_followed(bad_server):
    assert open_media(f"{bad_server}/to-http").media_type == "image"


def test_html_page_is_not_media(bad_server):
    url = f"{bad_server}/page.jpg"
    with pytest.raises(UnsupportedMediaError, match="HTML") as err:
        open_media(url)
    assert err.value.source == url
