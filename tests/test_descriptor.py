"""The default descriptor and PDQ on real photos."""

from __future__ import annotations

import numpy as np

from vecsim import edits
from vecsim.descriptors import Descriptor, load_descriptor
from vecsim.descriptors.pdq import exact_score, hamming, pdq_dihedral_hashes, pdq_hash


def test_protocol_shape_normalised_deterministic(photos):
    d = load_descriptor()
    assert isinstance(d, Descriptor) and d.dim == 256
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


def test_dihedral_pdq_scores_turns_and_mirrors_as_exact(photos):
    """A query hashed with its 8 dihedral variants scores as exact against a stored hash of the
    same pixels mirrored or turned (within PDQ's match distance of 31 bits, exact_score 0.76; PDQ's
    dihedral hashes are computed from the plain image's DCT, so they differ from hashing the turned
    pixels by a few bits), and still not against a crop or a small rotation."""
    for name in ("astronaut", "coffee", "chelsea"):
        im = photos[name]
        stored, _ = pdq_hash(im)
        for edit in (edits.hflip, edits.rotate(90), edits.rotate(180), edits.rotate(270),
                     lambda x: edits.hflip(edits.rotate(90)(x))):
            query, quality = pdq_dihedral_hashes([edit(im)])[0]
            assert len(query) == 8 and (query[0], quality) == pdq_hash(edit(im))  # the plain hash first
            assert exact_score(query, stored) >= 0.8, name
            assert exact_score(query[0], stored) < 0.5  # without the variants it would not
        for edit in (edits.center_crop(0.5), edits.rotate(25)):
            assert exact_score(pdq_dihedral_hashes([edit(im)])[0].hashes, stored) < 0.76  # PDQ's match line: 31 bits


def test_the_projection_is_the_shipped_one_and_versioned(photos):
    """The default descriptor is the GeM backbone through the shipped 256 x 1280 projection."""
    from vecsim.descriptors.efficientnet import EfficientNetGeM, EfficientNetGeMProjected

    d = load_descriptor()
    assert isinstance(d, EfficientNetGeMProjected) and (d.name, d.version) == ("efficientnet-lite0-gem-lw256", "1")
    assert d.projection.shape == (256, 1280) and d.calibration.descriptor_name == d.name
    ims = [photos["astronaut"], photos["coffee"]]
    base = EfficientNetGeM().embed(ims)
    expected = (base - d.mean) @ d.projection.T
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(d.embed(ims), expected, atol=1e-5)
