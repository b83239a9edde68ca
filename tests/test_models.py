"""Other embedding models as descriptors: SSCD TorchScript files and OpenCLIP image towers, chosen
by name (``sscd:PATH``, ``openclip:ARCH:PRETRAINED``). The models here are tiny and randomly
initialised, made by the tests (no download): they exercise the real loading, preprocessing,
batching and naming code, not the accuracy of the published weights."""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import os
import subprocess
import sys
import types
from enum import Enum

import numpy as np
import pytest
import torch
from PIL import Image

from vecsim import CustomIndex, DescriptorMismatchError
from vecsim.descriptors import Descriptor, descriptor_forms, load_descriptor
from vecsim.descriptors.sscd import resize_short_edge

# SSCD ships TorchScript; the tests make their tiny models the same way (deprecated since torch 2.9)
pytestmark = pytest.mark.filterwarnings(r"ignore:.*torch\.jit\.script.* is deprecated:DeprecationWarning")

# --- SSCD ------------------------------------------------------------------------------------


class TinySSCD(torch.nn.Module):
    """The shape of an SSCD model (conv trunk, GeM pooling, projection, L2 norm), a thousand times smaller."""

    def __init__(self, dim: int = 64):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(16, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        pooled = f.clamp(min=1e-6).pow(3.0).mean(dim=(2, 3)).pow(1.0 / 3.0)
        return torch.nn.functional.normalize(self.fc(pooled), dim=1)


class InputProbe(torch.nn.Module):
    """Returns what it was given: per-channel means, then the input height and width."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        size = torch.tensor([float(h), float(w)]).expand(n, 2)
        return torch.cat([x.mean(dim=(2, 3)), size], dim=1)


def save_tiny_sscd(path, seed: int = 0, dim: int = 64):
    torch.manual_seed(seed)
    torch.jit.script(TinySSCD(dim).eval()).save(str(path))
    return path


def short_sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


@pytest.fixture(scope="module")
def sscd_a(tmp_path_factory):
    return save_tiny_sscd(tmp_path_factory.mktemp("sscd") / "tiny_a.torchscript.pt", seed=0)


@pytest.fixture(scope="module")
def sscd_b(tmp_path_factory):
    return save_tiny_sscd(tmp_path_factory.mktemp("sscd") / "tiny_b.torchscript.pt", seed=1)


def check_vectors(d: Descriptor, images: list[Image.Image]) -> np.ndarray:
    """The Descriptor contract: (n, dim) float32 unit rows, the same every time and in any batching."""
    a, b = d.embed(images), d.embed(images)
    assert a.shape == (len(images), d.dim) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a, b)
    one_by_one = np.concatenate([d.embed([im]) for im in images])
    assert np.allclose(one_by_one, a, atol=1e-5)
    assert d.embed([]).shape == (0, d.dim)
    return a


def test_sscd_by_name(sscd_a, photos):
    d = load_descriptor(f"sscd:{sscd_a}", threads=1, batch_size=3)
    assert isinstance(d, Descriptor)
    assert d.name == "sscd-tiny_a" and d.version == short_sha(sscd_a) and d.dim == 64
    assert d.calibration.method == "linear"  # no fitted calibration: raw cosine clipped to [0, 1]
    assert (d.calibration.descriptor_name, d.calibration.descriptor_version) == (d.name, d.version)
    assert d.calibration(0.3) == pytest.approx(0.3) and d.calibration(-0.2) == 0.0
    # photos of several sizes and aspect ratios (and a grey one): batched by size after resizing
    ims = list(photos.values())
    assert len({resize_short_edge(im, 288).size for im in ims}) > 1
    vecs = check_vectors(d, ims)
    assert not np.allclose(vecs[0], vecs[1])


def test_sscd_preprocessing_is_short_edge_288_imagenet_normalised(tmp_path):
    path = tmp_path / "probe.pt"
    torch.jit.script(InputProbe()).save(str(path))
    d = load_descriptor(f"sscd:{path}")
    assert d.dim == 5  # learnt from one forward pass at load
    red = Image.new("RGB", (600, 400), (255, 0, 0))
    expected = np.array([(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0 - 0.406) / 0.225, 288.0, 432.0])
    assert np.allclose(d.embed([red])[0], expected / np.linalg.norm(expected), atol=1e-5)
    assert resize_short_edge(Image.new("RGB", (300, 451)), 288).size == (288, 432)
    assert resize_short_edge(Image.new("L", (288, 500)), 288).size == (288, 500)


def test_sscd_version_follows_the_file(tmp_path, photos):
    path = save_tiny_sscd(tmp_path / "model.pt", seed=0)
    first = load_descriptor(f"sscd:{path}")
    assert first.name == "sscd-model"
    again = load_descriptor(f"sscd:{path}")
    assert again.version == first.version
    save_tiny_sscd(path, seed=5)  # the same file name, other weights
    changed = load_descriptor(f"sscd:{path}")
    assert changed.name == first.name and changed.version != first.version
    assert changed.version == short_sha(path)
    im = [photos["coffee"]]
    assert not np.allclose(first.embed(im), changed.embed(im))


def test_sscd_dim_option_loads_lazily(sscd_a, photos):
    d = load_descriptor(f"sscd:{sscd_a}", dim=64)
    assert d._model is None and d.dim == 64
    assert d.embed([photos["coffee"]]).shape == (1, 64)
    wrong = load_descriptor(f"sscd:{sscd_a}", dim=32)
    with pytest.raises(ValueError, match="64-d"):
        wrong.embed([photos["coffee"]])


def test_sscd_errors(tmp_path):
    missing = tmp_path / "nowhere" / "sscd_disc_mixup.torchscript.pt"
    with pytest.raises(FileNotFoundError) as err:
        load_descriptor(f"sscd:{missing}")
    assert str(missing) in str(err.value)
    with pytest.raises(ValueError, match="sscd:PATH"):
        load_descriptor("sscd:")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a TorchScript model"):
        load_descriptor(f"sscd:{junk}")


def test_unknown_names_list_the_forms():
    with pytest.raises(ValueError) as err:
        load_descriptor("clip:ViT-B-32")
    for form in ("efficientnet-lite0-gem", "openclip:ARCH:PRETRAINED", "sscd:PATH"):
        assert form in str(err.value) and form in descriptor_forms()
    with pytest.raises(ValueError, match="unknown descriptor"):
        load_descriptor("no-such-model")


# --- a collection is bound to its descriptor ---------------------------------------------------


def test_collection_refuses_another_descriptor(tmp_path, sscd_a, sscd_b, photos):
    uri = str(tmp_path / "sscd.db")
    with CustomIndex(uri, descriptor=f"sscd:{sscd_a}") as index:
        index.add(photos["coffee"], task_id="coffee")
        index.add(photos["rocket"], task_id="rocket")
        top = index.query(photos["rocket"], threshold=0.0).output[0]
        assert top.task_id == "rocket" and top.matches[0].similarity_score == pytest.approx(1.0, abs=1e-5)
        a = index.descriptor

    b = load_descriptor(f"sscd:{sscd_b}")
    with pytest.raises(DescriptorMismatchError) as err:
        CustomIndex(uri, descriptor=b)
    message = str(err.value)
    assert f"{a.name} {a.version}" in message and f"{b.name} {b.version}" in message

    with pytest.raises(DescriptorMismatchError, match=a.name):
        CustomIndex(uri, descriptor="efficientnet-lite0-gem")  # a built-in is another one too

    (tmp_path / "retrained").mkdir()
    retrained = save_tiny_sscd(tmp_path / "retrained" / sscd_a.name, seed=7)
    c = load_descriptor(f"sscd:{retrained}")
    assert c.name == a.name and c.version != a.version  # same file name, other weights
    with pytest.raises(DescriptorMismatchError, match=c.version):
        CustomIndex(uri, descriptor=c)

    with CustomIndex(uri, descriptor=f"sscd:{sscd_a}") as again:  # the same file opens it
        assert again.count() == 2 and again.info().descriptor.name == a.name


def test_cli_descriptor_option(tmp_path, sscd_a, photos):
    import vecsim.cli

    if "descriptor" not in inspect.signature(vecsim.cli._main).parameters:
        pytest.skip("the vecsim CLI has no --descriptor option")
    photos["coffee"].save(tmp_path / "coffee.png")
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("VECSIM_INDEX", None)
    env.pop("VECSIM_DESCRIPTOR", None)

    def cli(*args):
        cmd = [sys.executable, "-m", "vecsim.cli", "--index", str(tmp_path / "cli.db"), *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)

    spec = ["--descriptor", f"sscd:{sscd_a}"]
    add = cli(*spec, "add", str(tmp_path / "coffee.png"))
    assert add.returncode == 0, add.stderr
    info = cli(*spec, "info")
    assert info.returncode == 0 and "sscd-tiny_a" in info.stdout, info.stderr
    builtin = cli("--descriptor", "efficientnet-lite0-gem", "info")
    assert builtin.returncode == 1 and "sscd-tiny_a" in builtin.stderr and "efficientnet-lite0-gem" in builtin.stderr


# --- OpenCLIP --------------------------------------------------------------------------------

TINY_ARCH = "vecsim-test-tiny-vit"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
}
_SHADOWED = ("torchvision", "open_clip", "timm")


def _torchvision_stand_in() -> dict[str, types.ModuleType]:
    """The few pieces of torchvision that importing open_clip and its inference preprocessing use,
    on PIL and torch. Only for machines whose torchvision cannot load (PyPI's Linux torchvision is
    linked against CUDA torch: next to a CPU-only torch it fails with 'operator torchvision::nms
    does not exist'). Training transforms exist so open_clip can build them, and refuse to run."""

    class InterpolationMode(Enum):
        NEAREST = "nearest"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"

    pil_modes = {
        InterpolationMode.NEAREST: Image.Resampling.NEAREST,
        InterpolationMode.BILINEAR: Image.Resampling.BILINEAR,
        InterpolationMode.BICUBIC: Image.Resampling.BICUBIC,
    }

    def get_dimensions(img):
        if isinstance(img, torch.Tensor):
            return [img.shape[-3] if img.ndim > 2 else 1, img.shape[-2], img.shape[-1]]
        return [len(img.getbands()), img.height, img.width]

    def resize(img, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
        w, h = img.size
        if isinstance(size, int) or len(size) == 1:  # the short edge, aspect ratio kept
            s = size if isinstance(size, int) else size[0]
            new_w, new_h = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
        else:
            new_h, new_w = size
        return img.resize((new_w, new_h), pil_modes[InterpolationMode(interpolation)])

    def crop(img, top, left, height, width):
        return img.crop((left, top, left + width, top + height))

    def center_crop(img, output_size):
        th, tw = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        _, h, w = get_dimensions(img)
        return crop(img, round((h - th) / 2.0), round((w - tw) / 2.0), th, tw)

    def pad(img, padding, fill=0, padding_mode="constant"):
        left, top, right, bottom = padding
        out = Image.new(img.mode, (img.width + left + right, img.height + top + bottom), fill)
        out.paste(img, (left, top))
        return out

    def to_tensor(pic):
        arr = np.asarray(pic, dtype=np.float32) / 255.0
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return torch.from_numpy(arr.transpose(2, 0, 1).copy())

    def normalize(tensor, mean, std):
        return (tensor - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)

    class Compose:
        def __init__(self, transforms):
            self.transforms = transforms

        def __call__(self, img):
            for t in self.transforms:
                img = t(img)
            return img

    class Resize:
        def __init__(self, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
            self.size, self.interpolation = size, interpolation

        def __call__(self, img):
            return resize(img, self.size, self.interpolation)

    class CenterCrop:
        def __init__(self, size):
            self.size = size

        def __call__(self, img):
            return center_crop(img, self.size)

    class ToTensor:
        def __call__(self, pic):
            return to_tensor(pic)

    class Normalize:
        def __init__(self, mean, std, inplace=False):
            self.mean, self.std = mean, std

        def __call__(self, tensor):
            return normalize(tensor, self.mean, self.std)

    class _TrainingOnly:
        def __init__(self, *args, **kwargs):
            pass

        def __call__(self, img):
            raise NotImplementedError("the torchvision stand-in has no training augmentations")

    class FrozenBatchNorm2d(torch.nn.Module):
        def __init__(self, num_features, eps=1e-5):
            super().__init__()
            raise NotImplementedError("the torchvision stand-in has no FrozenBatchNorm2d")

    def module(name, package=False, **attrs):
        m = types.ModuleType(name)
        if package:
            m.__path__ = []
        m.__dict__.update(attrs)
        return m

    F = module("torchvision.transforms.functional", InterpolationMode=InterpolationMode, get_dimensions=get_dimensions,
               resize=resize, crop=crop, center_crop=center_crop, pad=pad, to_tensor=to_tensor, normalize=normalize)
    transforms = module(
        "torchvision.transforms", package=True, functional=F, InterpolationMode=InterpolationMode, Compose=Compose,
        Resize=Resize, CenterCrop=CenterCrop, ToTensor=ToTensor, Normalize=Normalize,
        RandomResizedCrop=type("RandomResizedCrop", (_TrainingOnly,), {}),
        ColorJitter=type("ColorJitter", (_TrainingOnly,), {}), Grayscale=type("Grayscale", (_TrainingOnly,), {}),
    )
    misc = module("torchvision.ops.misc", FrozenBatchNorm2d=FrozenBatchNorm2d)
    ops = module("torchvision.ops", package=True, misc=misc)
    tv = module("torchvision", package=True, transforms=transforms, ops=ops, __version__="0.0-vecsim-test-stand-in")
    return {m.__name__: m for m in (tv, transforms, F, ops, misc)}


def _shadowed_modules() -> dict[str, types.ModuleType | None]:
    return {k: v for k, v in sys.modules.items() if k.split(".")[0] in _SHADOWED}


@pytest.fixture(scope="module")
def open_clip_module(tmp_path_factory):
    """``open_clip`` with the tiny test architecture registered. Where torchvision cannot load,
    open_clip is imported on the stand-in above (and without timm, which needs the real one);
    sys.modules is put back afterwards."""
    if importlib.util.find_spec("open_clip") is None:
        pytest.skip("open_clip_torch is not installed (pip install 'vecsim[openclip]')")
    saved = _shadowed_modules()
    stand_in = False
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - RuntimeError 'operator torchvision::nms does not exist' and kin
        stand_in = True
        for k in _shadowed_modules():
            del sys.modules[k]
        sys.modules.update(_torchvision_stand_in())
        sys.modules["timm"] = None  # open_clip treats timm as optional: ImportError -> no timm towers
    try:
        import open_clip

        config_dir = tmp_path_factory.mktemp("open_clip_configs")
        (config_dir / f"{TINY_ARCH}.json").write_text(json.dumps(TINY_CONFIG))
        open_clip.add_model_config(config_dir)
        yield open_clip
    finally:
        if stand_in:
            for k in _shadowed_modules():
                del sys.modules[k]
            sys.modules.update(saved)


def save_tiny_clip(open_clip, path, seed: int = 0):
    torch.manual_seed(seed)
    model = open_clip.create_model(TINY_ARCH)
    torch.save(model.state_dict(), path)
    return path


def test_openclip_checkpoint_file(open_clip_module, tmp_path, photos):
    open_clip = open_clip_module
    ckpt = save_tiny_clip(open_clip, tmp_path / "tiny.pt", seed=0)
    d = load_descriptor(f"openclip:{TINY_ARCH}:{ckpt}", threads=1, batch_size=3)
    assert isinstance(d, Descriptor)
    assert d.name == f"openclip-{TINY_ARCH}-tiny" and d.version == short_sha(ckpt) and d.dim == 32
    assert d.calibration.method == "linear" and d.calibration.descriptor_version == d.version
    ims = list(photos.values())
    vecs = check_vectors(d, ims)

    # the vectors are those of open_clip's own model, preprocessing and encode_image with these weights
    torch.manual_seed(123)  # another random init: only the checkpoint can make them equal
    model, _, preprocess = open_clip.create_model_and_transforms(TINY_ARCH)
    model.load_state_dict(torch.load(ckpt, weights_only=True))
    with torch.inference_mode():
        ref = model.eval().encode_image(torch.stack([preprocess(im.convert("RGB")) for im in ims])).numpy()
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert np.allclose(vecs, ref, atol=1e-5)

    # other weights in another file: another version, other vectors
    other = save_tiny_clip(open_clip, tmp_path / "tiny2.pt", seed=1)
    d2 = load_descriptor(f"openclip:{TINY_ARCH}:{other}")
    assert d2.name == f"openclip-{TINY_ARCH}-tiny2" and d2.version != d.version
    assert not np.allclose(d2.embed(ims[:2]), vecs[:2], atol=1e-3)


def test_openclip_named_tag_needs_no_download_to_load(open_clip_module):
    d = load_descriptor("openclip:ViT-B-32:openai")  # weights download on the first embed only
    assert (d.name, d.version, d.dim) == ("openclip-ViT-B-32-openai", "openai", 512)
    assert d.calibration.method == "linear"


def test_openclip_errors(open_clip_module, tmp_path):
    missing = tmp_path / "no" / "ckpt.pt"
    with pytest.raises(FileNotFoundError) as err:
        load_descriptor(f"openclip:{TINY_ARCH}:{missing}")
    assert str(missing) in str(err.value)
    with pytest.raises(ValueError, match="neither a pretrained tag"):
        load_descriptor("openclip:ViT-B-32:no_such_tag")
    with pytest.raises(ValueError, match="unknown OpenCLIP architecture"):
        load_descriptor(f"openclip:No-Such-Arch:{missing}")


def test_openclip_malformed_names():  # checked before open_clip is imported: runs without it
    for malformed in ("openclip:ViT-B-32", "openclip:", "openclip::openai", "openclip:ViT-B-32:"):
        with pytest.raises(ValueError, match="openclip:ARCH:PRETRAINED"):
            load_descriptor(malformed)


def test_openclip_missing_extra_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # as if open_clip_torch were not installed
    with pytest.raises(ImportError, match=r"pip install 'vecsim\[openclip\]'"):
        load_descriptor("openclip:ViT-B-32:openai")
