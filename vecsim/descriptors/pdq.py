"""PDQ perceptual hash (Meta's ThreatExchange algorithm, via ``pdqhash``): the exact-match signal.

A PDQ hash is 256 bits, stored as 64 hex characters. Two frames' ``exact_score`` is
``max(0, 1 - hamming / 128)``: 1.0 for identical hashes, about 0.76 at Meta's recommended
match threshold of 31 bits, and 0 at 128 bits, the distance of unrelated images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from PIL import Image

#: Hamming distance at and beyond which ``exact_score`` is 0 (unrelated images sit around it).
UNRELATED_DISTANCE = 128
#: PDQ works on a 64x64 downsample; hashing from at most this many pixels a side loses nothing.
HASH_INPUT_SIZE = 512
EMPTY_HASH = "0" * 64
#: PDQ quality (0..100) below which a query frame's hash is too flat to count as evidence of a
#: copy in ``similarity_score`` (Meta's guidance; ``exact_score`` is reported regardless).
MIN_QUALITY = 50


def _bits_to_hex(bits: np.ndarray) -> str:
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


def pdq_hash(image: Image.Image) -> tuple[str, int]:
    """Hash one RGB image: ``(hex, quality)``. Quality is PDQ's 0..100 confidence
    (below ~50 the image is too flat for the hash to mean much)."""
    import pdqhash

    bits, quality = pdqhash.compute(_hash_input(image))
    return _bits_to_hex(bits), int(quality)


def _hash_input(image: Image.Image) -> np.ndarray:
    im = image
    if max(im.size) > HASH_INPUT_SIZE:
        im = im.copy()
        im.thumbnail((HASH_INPUT_SIZE, HASH_INPUT_SIZE), Image.Resampling.BILINEAR)
    return np.asarray(im.convert("RGB"))


def pdq_hashes(images: Sequence[Image.Image]) -> list[str]:
    return [pdq_hash(im)[0] for im in images]


class DihedralHash(NamedTuple):
    """A query frame's 8 dihedral PDQ hashes (the frame as it is first) and PDQ's quality."""

    hashes: tuple[str, ...]
    quality: int


def pdq_dihedral_hashes(images: Sequence[Image.Image]) -> list[DihedralHash]:
    """The 8 dihedral PDQ hashes of each image (the image as it is first, then its turns and
    mirrors), computed in one pass by PDQ itself, with the image's quality. A query frame hashed
    this way scores as exact against a mirrored or quarter-turned copy of itself (see
    :func:`exact_score`)."""
    import pdqhash

    out = []
    for im in images:
        hashes, quality = pdqhash.compute_dihedral(_hash_input(im))
        out.append(DihedralHash(tuple(_bits_to_hex(np.asarray(h)) for h in hashes), int(quality)))
    return out


def hamming(a: str, b: str) -> int:
    """Bit distance between two hex PDQ hashes."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def exact_score(query: str | Sequence[str], stored: str) -> float:
    """``1 - hamming / 128`` (at least 0) between a stored hash and a query hash; given the
    query's dihedral variants, the best of them, so mirrors and quarter turns still score high."""
    variants = (query,) if isinstance(query, str) else query
    return max(0.0, 1.0 - min(hamming(v, stored) for v in variants) / UNRELATED_DISTANCE)
