"""Shared fixtures. Media is made here or comes from scikit-image's bundled photos: the tests
need nothing from ../shared and no network."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from vecsim import CustomIndex
from vecsim.sample_media import sample_photos

PHOTO_NAMES = ["astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "immunohistochemistry", "clock"]


@pytest.fixture(scope="session")
def photos() -> dict[str, Image.Image]:
    return sample_photos(PHOTO_NAMES)


#: Every backend the conformance tests run on: name -> index URI in a fresh folder.
BACKENDS = {
    "milvus-lite": lambda d: str(d / "test.db"),
    "qdrant-local": lambda d: f"qdrant-local:{d / 'qdrant'}",
}


@pytest.fixture(params=list(BACKENDS))
def index_path(request, tmp_path):
    """An index URI, once per backend: tests that take it run on every backend."""
    return BACKENDS[request.param](tmp_path)


@pytest.fixture
def index(index_path):
    with CustomIndex(index_path) as idx:
        yield idx


@pytest.fixture
def filled_index(index, photos):
    """An index holding the sample photos (task_id = photo name) with nested unicode metadata."""
    index.add_many(
        list(photos.values()),
        metadata=[{"name": n, "tags": ["ünïcödé", "写真"], "nested": {"n": i, "ok": True}} for i, n in enumerate(photos)],
        task_ids=list(photos),
    )
    return index


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()
