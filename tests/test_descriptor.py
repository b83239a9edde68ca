"""The default descriptor and PDQ on real photos."""

from __future__ import annotations

import numpy as np

from vecsim import edits
from vecsim.descriptors import Descriptor, load_descriptor
from vecsim.descriptors.pdq import exact_score, hamming, pdq_hash


def test_protocol_shape_normalised_deterministic(photos):
    d = load_descriptor()
    assert isinstance(d, Descriptor) and d.dim == 1280
    ims = list(photos.values())
    a, b = d.embed(ims), d.embed(ims)
    assert a.shape == (len(ims), d.dim) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert np.array_equal(a, b)
    single = np.concatenate([d.embed([im]) for im in ims])
    assert np.allclose(single, a, atol=1e-5)  # batching does not change vectors
    assert d.embed([]).shape == (0, d.dim)


def test_copies_closer_than_other_photos(photos):
    d = load_descriptor()
    names = list(photos)
    refs = d.embed([photos[n] for n in names])
    for edit in (edits.center_crop(0.5), edits.hflip, edits.jpeg(30), edits.brightness(2.0)):
        q = d.embed([edit(photos[n]) for n in names])
        assert (np.argmax(q @ refs.T, axis=1) == np.arange(len(names))).all()


def test_pdq_exact_only_for_near_identical(photos):
    im = photos["astronaut"]
    h, quality = pdq_hash(im)
    assert len(h) == 64 and quality > 50
    assert exact_score(h, h) == 1.0
    assert exact_score(h, pdq_hash(edits.jpeg(60)(im))[0]) > 0.8
    assert exact_score(h, pdq_hash(edits.center_crop(0.5)(im))[0]) < 0.6
    assert hamming(h, pdq_hash(photos["coffee"])[0]) > 80
