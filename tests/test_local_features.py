"""Local features and geometric verification (vecsim.descriptors.local), on scikit-image photos:
a copy keeps its keypoints' geometry under the standard edits, a different photo does not."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vecsim.descriptors import local
from vecsim.edits import center_crop, chain, hflip, jpeg, meme, resize, rotate, standard_edits

#: Inliers a verified match needs in the shipped calibration's range (its fit chose 8-20).
VERIFIED = 20


@pytest.fixture(scope="module")
def stored(photos) -> dict[str, bytes]:
    return {name: local.extract(im) for name, im in photos.items()}


def test_pack_round_trip_and_size_bound(photos):
    kp = local.keypoints(photos["astronaut"])
    assert 0 < len(kp) <= local.MAX_KEYPOINTS
    blob = local.pack(kp)
    assert len(blob) == 6 + local.BYTES_PER_KEYPOINT * len(kp) <= 5766
    back = local.unpack(blob)
    assert np.array_equal(back.descriptors, kp.descriptors)
    assert np.abs(back.points - kp.points).max() <= 0.5 / local.COORD_SCALE + 1e-6


def test_flat_and_foreign_blobs_have_no_keypoints():
    flat = Image.new("RGB", (320, 240), (40, 90, 200))
    assert len(local.keypoints(flat)) == 0
    assert local.extract(flat) == local.pack(local.EMPTY)
    for blob in (b"", b"xx", local.extract(flat), b"ORB1\x05\x00" + b"\x00" * 7):
        assert len(local.unpack(blob)) == 0
    assert local.inliers(local.query_features(flat), local.extract(flat)) == 0


@pytest.mark.parametrize("edit", list(standard_edits(0)))
def test_standard_edits_keep_the_geometry(photos, stored, edit):
    query = standard_edits(0)[edit](photos["astronaut"])
    assert local.inliers(local.query_features(query), stored["astronaut"]) >= VERIFIED


def test_mirrored_and_chained_copies_verify(photos, stored):
    for edit in (hflip, chain(hflip, center_crop(0.6), jpeg(40)), chain(rotate(15), resize(0.3)), meme("SALE")):
        assert local.inliers(local.query_features(edit(photos["coffee"])), stored["coffee"]) >= VERIFIED


def test_different_photos_do_not_verify(photos, stored):
    names = list(photos)
    for a in names:
        query = local.query_features(photos[a])
        for b in names:
            if a != b:
                assert local.inliers(query, stored[b]) < 8, (a, b)


def test_disjoint_halves_of_one_scene_do_not_verify(photos):
    im = photos["astronaut"]
    w, h = im.size
    left, right = im.crop((0, 0, int(w * 0.45), h)), im.crop((int(w * 0.55), 0, w, h))
    assert local.inliers(local.query_features(right), local.extract(left)) < 8
