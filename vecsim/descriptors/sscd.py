"""Meta's SSCD copy-detection descriptor (Pizzi et al., CVPR 2022) from a local TorchScript file.

SSCD publishes its models as standalone TorchScript files (``sscd_disc_mixup.torchscript.pt`` and
friends, 512-d; ``sscd_disc_large`` is 1024-d) that need nothing but torch. Preprocessing follows
the SSCD evaluation default for the DISC models: the short edge resized to 288 px keeping the
aspect ratio (bilinear), RGB scaled to [0, 1], then ImageNet mean/std normalisation. Frames of the
same size after resizing (every frame of one video) go through the model together.

vecsim neither ships nor downloads the weights (first released CC-BY-NC 4.0, later MIT: see the
licence note in docs/models.md). Scores are raw cosine (``Calibration.linear``) unless a
calibration fitted for the file is passed in.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..calibration import Calibration
from ..errors import DescriptorError, DescriptorFileNotFoundError
from .base import default_threads, l2_normalise

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Suffixes dropped from a model file's name to make the descriptor name.
_MODEL_SUFFIXES = {".pt", ".pth", ".torchscript", ".jit", ".ts"}


def file_sha256(path: Path, length: int = 12) -> str:
    """The first ``length`` hex digits of the SHA-256 of a file's content."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:length]


def model_file(path: str | Path, what: str) -> Path:
    """``path`` with ``~`` expanded, or :class:`FileNotFoundError` naming it."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DescriptorFileNotFoundError(str(path), f"{what} not found at {p} (expected a local file)", str(p))
    return p


def _stem(path: Path) -> str:
    name = path.name
    while Path(name).suffix.lower() in _MODEL_SUFFIXES and Path(name).stem:
        name = Path(name).stem
    return name


def resize_short_edge(image: Image.Image, size: int) -> Image.Image:
    """Resize so the short edge is ``size`` px, keeping the aspect ratio (long edge truncated to
    whole pixels, as torchvision's ``Resize(int)`` does)."""
    w, h = image.size
    if w <= h:
        new_w, new_h = size, max(1, int(size * h / w))
    else:
        new_w, new_h = max(1, int(size * w / h)), size
    if (new_w, new_h) == (w, h):
        return image
    return image.resize((new_w, new_h), Image.Resampling.BILINEAR)


class SSCDTorchScript:
    """``load_descriptor("sscd:/path/to/sscd_disc_mixup.torchscript.pt")``.

    ``name`` is ``sscd-<file name without .torchscript.pt>``, ``version`` the first 12 hex digits
    of the file's SHA-256 (another file, or the same file retrained, is another vector space).
    ``dim`` comes from one forward pass of a blank image when the model is loaded, here in the
    constructor; pass ``dim=`` to load the weights lazily instead (checked on the first embed).
    """

    #: Short edge in pixels (the SSCD evaluation default for the DISC models).
    input_size = 288
    #: Images per forward pass.
    batch_size = 8

    def __init__(
        self,
        path: str | Path,
        *,
        threads: int | None = None,
        calibration: Calibration | None = None,
        dim: int | None = None,
        batch_size: int | None = None,
    ):
        self.path = model_file(path, "SSCD TorchScript model")
        self.name = f"sscd-{_stem(self.path)}"
        self.version = file_sha256(self.path)
        self.threads = threads or default_threads()
        if batch_size is not None:
            self.batch_size = max(1, int(batch_size))
        self._model = None
        self._lock = threading.Lock()
        self.calibration = calibration or Calibration.linear(self.name, self.version)
        if dim is None:
            self.dim = self._probe_dim()
        else:
            self.dim = int(dim)

    def __repr__(self) -> str:
        return f"SSCDTorchScript({str(self.path)!r}, name={self.name!r}, version={self.version!r}, dim={self.dim})"

    def _load(self):
        with self._lock:
            if self._model is None:
                import torch

                torch.set_num_threads(self.threads)
                try:
                    with warnings.catch_warnings():  # TorchScript is how SSCD ships; torch 2.9+ warns
                        warnings.filterwarnings("ignore", r".*torch\.jit\.load.* is deprecated", DeprecationWarning)
                        model = torch.jit.load(str(self.path), map_location="cpu")
                except RuntimeError as exc:
                    raise DescriptorError(f"sscd:{self.path}", f"{self.path} is not a TorchScript model "
                                          f"(torch.jit.load failed: {exc})") from exc
                self._model = model.eval()
        return self._model

    def _forward(self, x) -> np.ndarray:
        out = self._load()(x)
        if isinstance(out, (tuple, list)):  # a model returning (embedding, ...) still works
            out = out[0]
        return out.float().reshape(out.shape[0], -1).numpy()

    def _probe_dim(self) -> int:
        import torch

        s = self.input_size
        with torch.inference_mode():
            return int(self._forward(torch.zeros(1, 3, s, s)).shape[1])

    def _array(self, image: Image.Image) -> np.ndarray:
        return np.asarray(resize_short_edge(image.convert("RGB"), self.input_size))

    def _tensor(self, arrays: Sequence[np.ndarray]):
        import torch

        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return x.sub_(mean).div_(std).contiguous()

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        out = np.zeros((len(images), self.dim), np.float32)
        if not images:
            return out
        # Group by size after resizing (aspect ratios differ between photos): one batch, one shape.
        by_shape: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = {}
        for i, im in enumerate(images):
            arr = self._array(im)
            by_shape.setdefault(arr.shape, []).append((i, arr))
        with torch.inference_mode():
            for group in by_shape.values():
                for j in range(0, len(group), self.batch_size):
                    chunk = group[j : j + self.batch_size]
                    vecs = self._forward(self._tensor([a for _, a in chunk]))
                    if vecs.shape[1] != self.dim:
                        raise DescriptorError(f"sscd:{self.path}", f"gives {vecs.shape[1]}-d vectors, not the "
                                              f"{self.dim} asked for")
                    out[[i for i, _ in chunk]] = vecs
        return l2_normalise(out)
