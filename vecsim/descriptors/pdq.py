"""PDQ perceptual hash (Meta's ThreatExchange algorithm, via ``pdqhash``): the exact-match signal.

A PDQ hash is 256 bits, stored as 64 hex characters. Two frames' ``exact_score`` is
``max(0, 1 - hamming / 128)``: 1.0 for identical hashes, about 0.76 at Meta's recommended
match threshold of 31 bits, and 0 at 128 bits, the distance of unrelated images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

#: Hamming distance at and beyond which ``exact_score`` is 0 (unrelated images sit around it).
UNRELATED_DISTANCE = 128
#: PDQ works on a 64x64 downsample; hashing from at most this many pixels a side loses nothing.
HASH_INPUT_SIZE = 512
EMPTY_HASH = "0" * 64


def _bits_to_hex(bits: np.ndarray) -> str:
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


def pdq_hash(image: Image.Image) -> tuple[str, int]:
    """Hash one RGB image: ``(hex, quality)``. Quality is PDQ's 0..100 confidence
    (below ~50 the image is too flat for the hash to mean much)."""
    import pdqhash

    im = image
    if max(im.size) > HASH_INPUT_SIZE:
        im = im.copy()
        im.thumbnail((HASH_INPUT_SIZE, HASH_INPUT_SIZE), Image.Resampling.BILINEAR)
    bits, quality = pdqhash.compute(np.asarray(im.convert("RGB")))
    return _bits_to_hex(bits), int(quality)


def pdq_hashes(images: Sequence[Image.Image]) -> list[str]:
    return [pdq_hash(im)[0] for im in images]


def hamming(a: str, b: str) -> int:
    """Bit distance between two hex PDQ hashes."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def exact_score(a: str, b: str) -> float:
    return max(0.0, 1.0 - hamming(a, b) / UNRELATED_DISTANCE)
