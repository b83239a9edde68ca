"""Query-time variants: quarter turns of a query image, merged per indexed frame."""

from __future__ import annotations

from dataclasses import replace

from vecsim import CustomIndex, edits
from vecsim.aggregate import merge_hits
from vecsim.descriptors import load_descriptor
from vecsim.store import Hit


def _hit(task: str, frame: int, score: float) -> Hit:
    return Hit(task, "g", frame, float(frame), float(frame + 1), "0" * 64, score)


def test_merge_hits_keeps_each_frame_once_with_its_best_score():
    variants = [[_hit("a", 0, 0.5), _hit("b", 0, 0.4)], [_hit("a", 0, 0.9), _hit("a", 1, 0.3)], []]
    merged = merge_hits(variants, turn_penalty=0.0)
    assert [(h.task_id, h.frame, h.raw_score) for h in merged] == [("a", 0, 0.9), ("b", 0, 0.4), ("a", 1, 0.3)]
    assert merge_hits([]) == []


def test_a_turned_variant_counts_the_turn_penalty_less():
    variants = [[_hit("a", 0, 0.5), _hit("b", 0, 0.4)], [_hit("a", 0, 0.9), _hit("b", 0, 0.42)]]
    merged = merge_hits(variants, turn_penalty=0.05)
    # a: the turned 0.9 still wins at 0.85; b: the upright 0.4 beats the turned 0.42 - 0.05
    assert [(h.task_id, round(h.raw_score, 6)) for h in merged] == [("a", 0.85), ("b", 0.4)]


def test_a_quarter_turned_copy_is_found_as_an_image_query(tmp_path, photos):
    # the embedding alone: without the PDQ part of the calibration (a dihedral hash match would
    # lift the plain query too, see the next test) and without keypoints (ORB is rotation
    # invariant: verification lifts the plain query too, tests/test_verification.py)
    shipped = load_descriptor(None).calibration
    descriptor = load_descriptor(None, calibration=replace(shipped, exact_x=(), exact_y=()))
    with CustomIndex(str(tmp_path / "v.db"), descriptor=descriptor, local_features=False) as idx:
        for name in ("astronaut", "coffee", "chelsea", "rocket"):
            idx.add(photos[name], task_id=name)
        for turn in (edits.rotate(90), edits.rotate(270)):
            query = edits.jpeg(70)(turn(photos["chelsea"]))
            plain = idx.query(query, threshold=0.0, rotations=False).output
            turned = idx.query(query, threshold=0.0).output  # image query: turns by default
            assert turned[0].task_id == "chelsea" and turned[0].score >= 0.9
            best_plain = next((a.score for a in plain if a.task_id == "chelsea"), 0.0)
            assert turned[0].score > best_plain  # the variants found a better match
            assert turned[0].matches[0].exact_score >= 0.76  # dihedral PDQ: within PDQ's match distance
        upright = idx.query(photos["coffee"], threshold=0.0)
        assert upright.output[0].task_id == "coffee" and upright.output[0].score > 0.99


def test_the_pdq_witness_scores_a_re_saved_turned_copy_as_exact(tmp_path, photos):
    with CustomIndex(str(tmp_path / "w.db")) as idx:
        for name in ("astronaut", "coffee", "chelsea"):
            idx.add(photos[name], task_id=name)
        query = edits.jpeg(70)(edits.rotate(90)(photos["chelsea"]))
        best = idx.query(query, threshold=0.5, rotations=False).output[0]
        assert best.task_id == "chelsea" and best.matches[0].exact_score >= 0.76
        assert best.matches[0].similarity_score >= 0.95  # lifted by the dihedral hash match
        cropped = idx.query(edits.center_crop(0.5)(photos["chelsea"]), threshold=0.0).output[0]
        assert cropped.matches[0].exact_score < 0.5  # a crop is no hash match: the embedding decides
