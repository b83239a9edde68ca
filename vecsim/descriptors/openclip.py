"""OpenCLIP image encoders as copy-detection descriptors (``pip install 'vecsim[openclip]'``).

``load_descriptor("openclip:ARCH:PRETRAINED")``: ``ARCH`` is an OpenCLIP architecture
(``open_clip.list_models()``, e.g. ``ViT-B-32``) and ``PRETRAINED`` either one of its pretrained
tags (``open_clip.list_pretrained_tags_by_model(ARCH)``, e.g. ``laion2b_s34b_b79k``; downloaded
from the Hugging Face hub on first use, so it needs internet once) or the path of a local
checkpoint file for that architecture (``.pt``/``.bin``/``.safetensors``; works offline).

The image goes through OpenCLIP's own inference preprocessing for the model, then
``encode_image``; vectors are L2-normalised. These models were trained for semantic similarity,
not copy detection, and have no fitted calibration: ``similarity_score`` is the raw cosine
clipped to [0, 1] (``Calibration.linear``) unless a ``calibration=`` is passed in.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..calibration import Calibration
from ..errors import DescriptorError, MissingDependencyError
from .base import default_threads, l2_normalise
from .sscd import file_sha256, model_file

INSTALL_HINT = "pip install 'vecsim[openclip]'"
#: A ``PRETRAINED`` with one of these endings (or a path separator) is a file, not a tag.
CHECKPOINT_SUFFIXES = {".pt", ".pth", ".bin", ".safetensors", ".ckpt", ".npz"}


def import_open_clip():
    """``open_clip``, or an :class:`ImportError` that says how to install it (or why it broke)."""
    try:
        import open_clip
    except ImportError as exc:
        raise MissingDependencyError(
            f"the openclip descriptor needs open_clip_torch: {INSTALL_HINT} ({exc})"
        ) from exc
    except Exception as exc:  # e.g. a torchvision built for another torch
        raise MissingDependencyError(
            f"open_clip is installed but failed to import ({type(exc).__name__}: {exc}); this usually "
            "means torchvision does not match the installed torch, e.g. PyPI's CUDA-built torchvision "
            "next to a CPU-only torch. Install the torchvision build that matches your torch "
            "(see docs/models.md)."
        ) from exc
    return open_clip


def _is_path(pretrained: str) -> bool:
    return (
        os.sep in pretrained
        or "/" in pretrained
        or pretrained.startswith(("~", "."))
        or Path(pretrained).suffix.lower() in CHECKPOINT_SUFFIXES
        or os.path.isfile(pretrained)
    )


def _clean_tag(tag: str) -> str:
    return tag.lower().replace("-", "_")  # how OpenCLIP normalises its tags


class OpenCLIPImage:
    """An OpenCLIP image tower. ``name`` is ``openclip-ARCH-TAG`` or ``openclip-ARCH-<file stem>``;
    ``version`` is the tag, or the first 12 hex digits of the checkpoint's SHA-256. ``dim`` is the
    architecture's ``embed_dim``, read from its config, so the weights load lazily on the first
    ``embed``."""

    #: Images per forward pass.
    batch_size = 16

    def __init__(
        self,
        arch: str,
        pretrained: str | Path,
        *,
        threads: int | None = None,
        calibration: Calibration | None = None,
        batch_size: int | None = None,
    ):
        open_clip = import_open_clip()
        if not arch:
            raise DescriptorError(f"openclip::{pretrained}", "needs an architecture: openclip:ARCH:PRETRAINED")
        cfg = open_clip.get_model_config(arch)
        if not cfg or "embed_dim" not in cfg:
            raise DescriptorError(
                f"openclip:{arch}:{pretrained}",
                f"unknown OpenCLIP architecture {arch!r}; open_clip.list_models() lists them (e.g. ViT-B-32)",
            )
        pretrained = str(pretrained)
        if not pretrained:
            raise DescriptorError(
                f"openclip:{arch}:", f"needs weights: openclip:{arch}:TAG or openclip:{arch}:/path/to/checkpoint"
            )
        self.arch = arch
        if _is_path(pretrained):
            self.checkpoint: Path | None = model_file(pretrained, f"OpenCLIP checkpoint for {arch}")
            self.pretrained = str(self.checkpoint)
            self.name = f"openclip-{arch}-{self.checkpoint.stem}"
            self.version = file_sha256(self.checkpoint)
        else:
            from open_clip.pretrained import get_pretrained_cfg

            if not get_pretrained_cfg(arch, pretrained):
                tags = open_clip.list_pretrained_tags_by_model(arch)
                raise DescriptorError(
                    f"openclip:{arch}:{pretrained}",
                    f"{pretrained!r} is neither a pretrained tag of OpenCLIP {arch} "
                    f"(known: {', '.join(tags) or 'none'}) nor an existing checkpoint file"
                )
            self.checkpoint = None
            self.pretrained = _clean_tag(pretrained)
            self.name = f"openclip-{arch}-{self.pretrained}"
            self.version = self.pretrained
        self.dim = int(cfg["embed_dim"])
        self.threads = threads or default_threads()
        if batch_size is not None:
            self.batch_size = max(1, int(batch_size))
        self._model = None
        self._preprocess = None
        self._lock = threading.Lock()
        self.calibration = calibration or Calibration.linear(self.name, self.version)

    def __repr__(self) -> str:
        return f"OpenCLIPImage({self.arch!r}, {self.pretrained!r}, version={self.version!r}, dim={self.dim})"

    def _load(self):
        with self._lock:
            if self._model is None:
                import torch

                open_clip = import_open_clip()
                torch.set_num_threads(self.threads)
                model, _, preprocess = open_clip.create_model_and_transforms(
                    self.arch, pretrained=self.pretrained, device="cpu"
                )
                out_dim = getattr(getattr(model, "visual", None), "output_dim", self.dim)
                if out_dim != self.dim:
                    raise DescriptorError(
                        self.name, f"OpenCLIP {self.arch} gives {out_dim}-d image vectors, its config says {self.dim}"
                    )
                self._preprocess = preprocess
                self._model = model.eval()
        return self._model, self._preprocess

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        if not images:
            return np.zeros((0, self.dim), np.float32)
        model, preprocess = self._load()
        out = []
        with torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                x = torch.stack([preprocess(im.convert("RGB")) for im in images[i : i + self.batch_size]])
                out.append(model.encode_image(x).float().numpy())
        vecs = np.concatenate(out)
        if vecs.shape[1] != self.dim:
            raise DescriptorError(self.name, f"OpenCLIP {self.arch} gave {vecs.shape[1]}-d vectors, not {self.dim}")
        return l2_normalise(vecs)
