"""URL inputs, served from a local HTTP server on the loopback interface."""

from __future__ import annotations

import functools
import glob
import http.server
import tempfile
import threading

import pytest

from vecsim import CustomIndex, MediaFetchError, MediaNotFoundError, UnsupportedMediaError
from vecsim.edits import center_crop
from vecsim.media import open_media
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
