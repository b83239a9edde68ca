"""Local features for geometric verification: is a candidate the *same picture*, or a look-alike?

The robust embedding says "these two frames look alike"; it cannot tell an edited copy of a
photo from another photo of the same kind of thing (two sellers' photos of one phone model, two
people on one beach). A copy keeps the *geometry* of its original: its keypoints still map onto
the original's through one transform, under crop, resize, rotation, colour changes and overlays.
A look-alike's keypoints do not.

At add time each stored frame gets :func:`extract`: up to :data:`MAX_KEYPOINTS` ORB keypoints
(OpenCV) of the frame in grey, scaled to a long side of :data:`SIDE` pixels, packed into one
compact blob (:data:`BYTES_PER_KEYPOINT` bytes a keypoint, 5.8 KB a frame at most). At query time
:func:`query_features` computes the same for the query frame and its mirror, and :func:`inliers`
counts the keypoint matches (Lowe's ratio test) that one affine transform explains (RANSAC): the
evidence a calibration turns into ``similarity_score`` (:mod:`vecsim.calibration`).

:data:`FORMAT` names this recipe; it is stored with a collection, and a change to any constant
here is a new format.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import MissingDependencyError

#: The name of the stored format (``CollectionSpec.local_features``).
FORMAT = "orb384-v1"  # the stored blobs; how they are compared (below) may improve without a new format
#: Long side, in pixels, that a frame is scaled to (up or down) before its keypoints are found:
#: a copy that was resized then has keypoints at the same scale as its original.
SIDE = 384
MAX_KEYPOINTS = 160
#: Keypoint coordinates are stored as ``round(x * COORD_SCALE)`` in uint16.
COORD_SCALE = 64
DESCRIPTOR_BYTES = 32
BYTES_PER_KEYPOINT = DESCRIPTOR_BYTES + 4
_HEADER = struct.Struct("<4sH")  # magic, keypoint count
_MAGIC = b"ORB1"
#: Lowe's ratio test: a match counts when its best distance is under this share of the second best.
RATIO = 0.8
#: RANSAC reprojection error, in pixels of the ``SIDE`` scale (1 % of the long side).
REPROJECTION_PX = SIDE / 100


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise MissingDependencyError("local features need OpenCV: pip install opencv-python-headless") from exc
    return cv2


@dataclass(frozen=True)
class Keypoints:
    """Unpacked local features: ``points`` (n, 2) float32 pixels at the ``SIDE`` scale, and
    ``descriptors`` (n, 32) uint8 ORB descriptors."""

    points: np.ndarray
    descriptors: np.ndarray

    def __len__(self) -> int:
        return len(self.points)


EMPTY = Keypoints(np.zeros((0, 2), np.float32), np.zeros((0, DESCRIPTOR_BYTES), np.uint8))


def _grey(image: Image.Image) -> np.ndarray:
    scale = SIDE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    im = image if size == image.size else image.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(im.convert("L"))


def keypoints(image: Image.Image) -> Keypoints:
    """The ORB keypoints of an image (at most :data:`MAX_KEYPOINTS`, strongest first)."""
    return _keypoints(_grey(image))


_per_thread = threading.local()


def _orb():
    """This thread's ORB detector (made once: making one costs about as much as using it)."""
    orb = getattr(_per_thread, "orb", None)
    if orb is None:
        orb = _per_thread.orb = _cv2().ORB_create(nfeatures=MAX_KEYPOINTS, fastThreshold=10)
    return orb


def _keypoints(grey: np.ndarray) -> Keypoints:
    kps, des = _orb().detectAndCompute(np.ascontiguousarray(grey), None)
    if des is None or not kps:
        return EMPTY
    pts = np.array([k.pt for k in kps], dtype=np.float32)
    return Keypoints(pts, np.asarray(des, dtype=np.uint8))


def pack(kp: Keypoints) -> bytes:
    n = min(len(kp), MAX_KEYPOINTS)
    coords = np.clip(np.round(kp.points[:n] * COORD_SCALE), 0, 65535).astype("<u2")
    return _HEADER.pack(_MAGIC, n) + coords.tobytes() + kp.descriptors[:n].tobytes()


def unpack(blob: bytes) -> Keypoints:
    """The keypoints of a blob made by :func:`pack`; an empty or foreign blob has none."""
    if len(blob) < _HEADER.size:
        return EMPTY
    magic, n = _HEADER.unpack_from(blob)
    if magic != _MAGIC or n == 0 or len(blob) != _HEADER.size + n * BYTES_PER_KEYPOINT:
        return EMPTY
    start = _HEADER.size
    coords = np.frombuffer(blob, dtype="<u2", count=2 * n, offset=start).reshape(n, 2)
    des = np.frombuffer(blob, dtype=np.uint8, count=n * DESCRIPTOR_BYTES, offset=start + 4 * n).reshape(n, DESCRIPTOR_BYTES)
    return Keypoints(coords.astype(np.float32) / COORD_SCALE, des)


def extract(image: Image.Image) -> bytes:
    """The packed local features of a frame to store (at most 5,766 bytes)."""
    return pack(keypoints(image))


def query_features(image: Image.Image) -> tuple[Keypoints, Keypoints]:
    """A query frame's keypoints as it is, and mirrored (ORB is rotation invariant, not mirror
    invariant: a mirrored copy needs the mirrored query)."""
    grey = _grey(image)
    return _keypoints(grey), _keypoints(grey[:, ::-1])


#: Fewer tentative matches than this cannot define an affine transform worth trusting.
MIN_MATCHES = 6


def _inliers_one(query: Keypoints, stored: Keypoints) -> int:
    if len(query) < MIN_MATCHES or len(stored) < MIN_MATCHES:
        return 0
    cv2 = _cv2()
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    pairs = matcher.knnMatch(query.descriptors, stored.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
    if len(good) < MIN_MATCHES:
        return 0
    src = query.points[[m.queryIdx for m in good]]
    dst = stored.points[[m.trainIdx for m in good]]
    model, mask = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=REPROJECTION_PX,
                                       maxIters=500, confidence=0.99, refineIters=0)
    if model is None or mask is None or not plausible(model[:, :2]):
        return 0
    return int(mask.sum())


#: The scale change (each axis) a copy's transform may have, and how unequal its axes may be.
MAX_SCALE = 8.0
MAX_ANISOTROPY = 3.0


def plausible(linear: np.ndarray) -> bool:
    """Whether the 2x2 linear part of an affine transform is one an edit makes: no mirror (the
    mirrored query covers those), a scale between 1/:data:`MAX_SCALE` and :data:`MAX_SCALE`,
    axes stretched unequally by at most :data:`MAX_ANISOTROPY`. A degenerate transform that
    squeezes many keypoints into a small patch (repeated texture, text) is not a copy."""
    if np.linalg.det(linear) <= 0:
        return False
    big, small = np.linalg.svd(linear, compute_uv=False)
    return 1.0 / MAX_SCALE <= small and big <= MAX_SCALE and big <= MAX_ANISOTROPY * small


def inliers(query: tuple[Keypoints, ...], stored: bytes | Keypoints) -> int:
    """Keypoint matches of the best query variant that one affine transform explains (RANSAC):
    0 for unrelated images, a few for look-alikes, dozens to :data:`MAX_KEYPOINTS` for copies."""
    kp = unpack(stored) if isinstance(stored, bytes) else stored
    return max((_inliers_one(q, kp) for q in query), default=0)
