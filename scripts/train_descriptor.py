"""Train the projection of the default descriptor, reproducibly, on real photos.

    python scripts/train_descriptor.py ../shared/data/photos/photo

What it learns (on top of the frozen EfficientNet-Lite0 GeM features, 1280-d): a linear
projection to 256-d that keeps what tells photos apart and drops what an edit changes,
"learned whitening" (Radenović et al., 2018):

1. **Views.** The training photos (a third of the folder, chosen by a hash of the file name, so the
   other two thirds stay unseen for the benchmark) and random crops of them are *instances*. Each
   instance gets ``--views`` random edits of the kinds copiers use (90-degree turns, small
   rotations, crops, colour, blur, JPEG, text, padding, mirror, noise ...; see :func:`augment`).
2. **Intra-instance covariance** ``Cs`` of the differences between a view and its instance's
   mean feature: the directions edits move a feature along. Whitening by ``Cs^-1/2`` shrinks them.
3. **Background PCA** of the whitened features of every view: keep the ``--dim`` directions along
   which different instances spread the most.

The projection ``P`` (dim x 1280) and mean ``mu`` are saved to ``--out`` (the shipped one is
``vecsim/descriptors/data/efficientnet-lite0-gem-lw256-v1.projection.npz``), with the list of
training files beside it (``*.training-files.txt``: pass it to ``vecsim bench images --exclude``
so the benchmark reports only on photos the projection never saw). The descriptor computes
``normalise(P @ (normalise(gem(x)) - mu))``. Reproduce the shipped file with::

    python scripts/train_descriptor.py ../shared/data/photos/photo \
        --out vecsim/descriptors/data/efficientnet-lite0-gem-lw256-v1.projection.npz
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from vecsim.bench.corpus import list_images, load_rgb
from vecsim.descriptors.efficientnet import EfficientNetGeM
from vecsim.edits import hue, jpeg

TRAIN_FRACTION = 3  # one file in three trains


def is_training_file(name: str) -> bool:
    """The deterministic split: a third of the files (by SHA-1 of the name) train the projection."""
    return int(hashlib.sha1(name.encode()).hexdigest(), 16) % TRAIN_FRACTION == 0


def _crop(im: Image.Image, rng: random.Random, lo: float, hi: float) -> Image.Image:
    w, h = im.size
    area = rng.uniform(lo, hi) * w * h
    aspect = math.exp(rng.uniform(math.log(0.6), math.log(1.6)))
    cw = max(16, min(w, round(math.sqrt(area * aspect))))
    ch = max(16, min(h, round(math.sqrt(area / aspect))))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return im.crop((x, y, x + cw, y + ch))


def augment(im: Image.Image, rng: random.Random) -> Image.Image:
    """One random training view: 1-3 edits, each from the families a copier uses."""
    ops = [
        lambda x: x.transpose(rng.choice([Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180,
                                          Image.Transpose.ROTATE_270])),
        lambda x: x.rotate(rng.uniform(-40, 40), resample=Image.Resampling.BILINEAR,
                           fillcolor=tuple(rng.randint(0, 255) for _ in range(3)) if rng.random() < 0.3 else (0, 0, 0)),
        lambda x: _crop(x, rng, 0.3, 0.9),
        lambda x: x.resize((max(16, round(x.width * (s := rng.uniform(0.3, 1.0)))), max(16, round(x.height * s)))),
        lambda x: ImageEnhance.Contrast(x).enhance(rng.uniform(0.4, 2.2)),
        lambda x: ImageEnhance.Brightness(x).enhance(rng.uniform(0.4, 2.2)),
        lambda x: ImageEnhance.Color(x).enhance(rng.uniform(0.0, 3.0)),
        lambda x: hue(rng.uniform(0.05, 0.95))(x),
        lambda x: x.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 3.0))),
        lambda x: jpeg(rng.randint(15, 70))(x),
        lambda x: ImageOps.mirror(x),
        lambda x: ImageOps.grayscale(x).convert("RGB"),
        lambda x: _noise(x, rng),
        lambda x: _text(x, rng),
        lambda x: _pad(x, rng),
        lambda x: _meme(x, rng),
        lambda x: x.resize((max(16, round(x.width * rng.uniform(0.6, 1.6))), x.height)),
    ]
    for _ in range(rng.randint(1, 3)):
        im = rng.choice(ops)(im.convert("RGB"))
    return im.convert("RGB")


def _noise(im: Image.Image, rng: random.Random) -> Image.Image:
    a = np.asarray(im, dtype=np.float32)
    a = a + np.random.default_rng(rng.randint(0, 2**31)).normal(0, rng.uniform(5, 25), a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def _text(im: Image.Image, rng: random.Random) -> Image.Image:
    from PIL import ImageFont

    out = im.copy()
    d = ImageDraw.Draw(out)
    words = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789") for _ in range(rng.randint(4, 16)))
    font = ImageFont.load_default(size=max(8, round(im.height * rng.uniform(0.06, 0.2))))
    d.text((im.width * rng.uniform(0, 0.5), im.height * rng.uniform(0, 0.8)), words,
           fill=tuple(rng.randint(0, 255) for _ in range(3)), font=font)
    return out


def _pad(im: Image.Image, rng: random.Random) -> Image.Image:
    w, h = im.size
    pw, ph = round(w * rng.uniform(0.05, 0.4)), round(h * rng.uniform(0.05, 0.4))
    out = Image.new("RGB", (w + pw, h + ph), tuple(rng.randint(0, 255) for _ in range(3)))
    out.paste(im, (rng.randint(0, pw), rng.randint(0, ph)))
    return out


def _meme(im: Image.Image, rng: random.Random) -> Image.Image:
    band = max(16, round(im.height * rng.uniform(0.15, 0.35)))
    out = Image.new("RGB", (im.width, im.height + band), (255, 255, 255))
    out.paste(im, (0, band))
    return _text(out, rng)


def make_views(photos: list[Image.Image], crops_per_photo: int, views: int, seed: int):
    """(instance id per view, views): each photo and ``crops_per_photo`` crops of it are
    instances; every instance appears as itself plus ``views`` random edits."""
    rng = random.Random(seed)
    instance, images = [], []
    k = 0
    for photo in photos:
        for c in range(crops_per_photo + 1):
            base = photo if c == 0 else _crop(photo, rng, 0.15, 0.4)
            for v in range(views + 1):
                instance.append(k)
                images.append(base if v == 0 else augment(base, rng))
            k += 1
    return np.array(instance), images


def fit_learned_whitening(x: np.ndarray, instance: np.ndarray, dim: int, shrink: float) -> tuple[np.ndarray, np.ndarray]:
    """(P, mu): whiten by the intra-instance covariance (shrunk towards its mean eigenvalue by
    ``shrink``), then keep the ``dim`` leading principal directions of the whitened data."""
    x = x.astype(np.float64)
    mu = x.mean(axis=0)
    centred = np.empty_like(x)
    for k in np.unique(instance):
        sel = instance == k
        centred[sel] = x[sel] - x[sel].mean(axis=0)
    cs = centred.T @ centred / len(x)
    cs = (1 - shrink) * cs + shrink * np.trace(cs) / len(cs) * np.eye(len(cs))
    evals, evecs = np.linalg.eigh(cs)
    w = evecs @ np.diag(evals ** -0.5) @ evecs.T
    xw = (x - mu) @ w.T
    cb = xw.T @ xw / len(x)
    evals_b, evecs_b = np.linalg.eigh(cb)
    top = evecs_b[:, np.argsort(evals_b)[::-1][:dim]]
    return (top.T @ w).astype(np.float32), mu.astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photos", type=Path)
    ap.add_argument("--crops", type=int, default=4, help="crops of each photo used as extra instances")
    ap.add_argument("--views", type=int, default=8, help="random edits per instance")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--shrink", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--features", type=Path, default=Path(".vecsim-bench-cache/train-features.npz"),
                    help="cache of the backbone features of the training views")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    paths = [p for p in list_images(args.photos) if is_training_file(p.name)]
    print(f"{len(paths)} training photos of {len(list_images(args.photos))}", file=sys.stderr)
    backbone = EfficientNetGeM()
    key = dict(files=[p.name for p in paths], crops=args.crops, views=args.views, seed=args.seed,
               backbone=f"{backbone.name}/{backbone.version}")
    if args.features.exists() and json.loads(str(np.load(args.features)["key"])) == key:
        z = np.load(args.features)
        instance, x = z["instance"], z["x"]
    else:
        from tqdm import tqdm

        instance, views = make_views([load_rgb(p) for p in paths], args.crops, args.views, args.seed)
        x = np.concatenate([backbone.embed(views[i : i + 64]) for i in tqdm(range(0, len(views), 64), desc="views")])
        args.features.parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.features, instance=instance, x=x, key=json.dumps(key))
    p, mu = fit_learned_whitening(x, instance, args.dim, args.shrink)
    out = args.out
    if out is not None:
        np.savez(out, projection=p, mean=mu, training_files=np.array(key["files"]),
                 params=json.dumps({k: v for k, v in vars(args).items() if k in ("crops", "views", "dim", "shrink", "seed")}))
        out.with_name(out.name.replace(".projection.npz", ".training-files.txt")).write_text("\n".join(key["files"]) + "\n")
        print(f"wrote {out} and the list of its training files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
