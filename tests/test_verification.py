"""Geometric verification in the query path: a collection keeps each frame's local features, and a
query scores its candidates through the calibration's verified or refuted curve. On the embedded
default and on Milvus Lite (the store contract covers every backend's storage of the features)."""

from __future__ import annotations

import pytest

from vecsim import CustomIndex
from vecsim.descriptors.local import FORMAT
from vecsim.edits import center_crop, chain, hflip, jpeg, rotate, text_overlay

COPIES = {
    "crop + jpeg": chain(center_crop(0.5), jpeg(50)),
    "rotate 25": rotate(25),
    "mirror + caption": chain(hflip, text_overlay("SALE")),
}
INDEXED = ["astronaut", "coffee", "rocket", "camera"]
OTHERS = ["chelsea", "coins", "clock", "immunohistochemistry"]


@pytest.fixture(scope="module", params=["embedded", "milvus-lite"])
def verified_index(request, photos, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    uri = str(folder / "v.db") if request.param == "embedded" else f"milvus-lite:{folder / 'v.db'}"
    with CustomIndex(uri) as idx:
        for name in INDEXED:
            idx.add(photos[name], task_id=name)
        yield idx


def test_a_new_collection_keeps_local_features_and_verifies(verified_index):
    assert verified_index.store.spec.local_features == FORMAT
    assert verified_index.verifies


@pytest.mark.parametrize("edit", list(COPIES))
def test_edited_copies_are_verified_and_score_high(verified_index, photos, edit):
    out = verified_index.query(COPIES[edit](photos["astronaut"]), threshold=0.0).output
    assert out[0].task_id == "astronaut" and out[0].score >= 0.9


def test_other_photos_are_refuted(verified_index, photos):
    for name in OTHERS:
        out = verified_index.query(photos[name]).output  # default threshold 0.5
        assert out == [], (name, [(a.task_id, a.score) for a in out])


def test_a_refuted_match_scores_no_higher_than_without_verification(verified_index, photos, tmp_path):
    """The same query against the same photos, in a collection without local features: the
    cosine curve alone (fitted with look-alikes among its negatives) gives each wrong asset at
    least the score the refuted curve gives it (the logistic refuted curve never quite reaches 0:
    compared from a hundredth up)."""
    with CustomIndex(str(tmp_path / "plain.db"), local_features=False) as plain:
        for name in INDEXED:
            plain.add(photos[name], task_id=name)
        assert plain.store.spec.local_features == "" and not plain.verifies
        for name in OTHERS:
            verified = {a.task_id: a.score for a in verified_index.query(photos[name], threshold=0.0).output}
            unverified = {a.task_id: a.score for a in plain.query(photos[name], threshold=0.0).output}
            for task_id, score in verified.items():  # at any level that matters: a hundredth and up
                assert score <= max(unverified.get(task_id, 1.0), 0.01)
        # a copy is still found without local features, by its cosine (and PDQ) alone
        assert plain.query(COPIES["crop + jpeg"](photos["coffee"])).output[0].task_id == "coffee"


def test_the_stored_spec_decides(photos, tmp_path):
    """An index made without local features stays so when reopened with the default, and one
    made with them keeps them when reopened with local_features=False."""
    without, with_ = str(tmp_path / "without.db"), str(tmp_path / "with.db")
    with CustomIndex(without, local_features=False) as idx:
        idx.add(photos["coffee"], task_id="coffee")
    with CustomIndex(without) as idx:
        assert idx.store.spec.local_features == "" and not idx.verifies
        idx.add(photos["rocket"], task_id="rocket")
        assert idx.query(photos["rocket"]).output[0].task_id == "rocket"
    with CustomIndex(with_) as idx:
        idx.add(photos["coffee"], task_id="coffee")
    with CustomIndex(with_, local_features=False) as idx:
        assert idx.store.spec.local_features == FORMAT and idx.verifies
        assert idx.query(photos["coffee"]).output[0].score == 1.0
