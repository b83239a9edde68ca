"""Named image edits, the kind a copier applies: used by the demo, the benchmark and the tests.

The standard set follows the table of the Active Image Indexing paper (Fernandez et al., 2022):
crop and resize keep a fraction of the *area*, rotations keep the frame size (black corners).
Every edit is a pure function ``PIL.Image -> PIL.Image`` (RGB in, RGB out); randomness comes
only from an explicit ``random.Random`` so runs are reproducible.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from .errors import InvalidRequestError, MissingDependencyError

Edit = Callable[[Image.Image], Image.Image]


def contrast(factor: float) -> Edit:
    return lambda im: ImageEnhance.Contrast(im).enhance(factor)


def brightness(factor: float) -> Edit:
    return lambda im: ImageEnhance.Brightness(im).enhance(factor)


def hue(shift: float) -> Edit:
    """Rotate the hue by ``shift`` of a full turn (0.2 = 72 degrees)."""

    def apply(im: Image.Image) -> Image.Image:
        hsv = np.asarray(im.convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(np.int32) + round(shift * 256)) % 256
        return Image.fromarray(hsv, "HSV").convert("RGB")

    return apply


def blur(radius: float) -> Edit:
    return lambda im: im.filter(ImageFilter.GaussianBlur(radius))


def jpeg(quality: int) -> Edit:
    def apply(im: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        return Image.open(buf).convert("RGB")

    return apply


def rotate(degrees: float) -> Edit:
    """Rotate counter-clockwise. Multiples of 90 turn the frame; others keep its size."""
    if degrees % 90 == 0:
        turns = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180,
                 270: Image.Transpose.ROTATE_270}
        step = int(degrees % 360)
        return (lambda im: im.copy()) if step == 0 else (lambda im: im.transpose(turns[step]))
    return lambda im: im.rotate(degrees, resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))


def center_crop(area: float) -> Edit:
    """Keep the centre of the image, ``area`` of its surface (0.5 = each side times sqrt(0.5))."""

    def apply(im: Image.Image) -> Image.Image:
        s = math.sqrt(area)
        w, h = im.size
        cw, ch = max(1, round(w * s)), max(1, round(h * s))
        left, top = (w - cw) // 2, (h - ch) // 2
        return im.crop((left, top, left + cw, top + ch))

    return apply


def resize(area: float) -> Edit:
    """Scale so that the image keeps ``area`` of its pixel count."""

    def apply(im: Image.Image) -> Image.Image:
        s = math.sqrt(area)
        return im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))),
                         Image.Resampling.BILINEAR)

    return apply


def hflip(im: Image.Image) -> Image.Image:
    return ImageOps.mirror(im)


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=max(8, size))


def meme(text: str = "WHEN YOU SEE IT") -> Edit:
    """A meme frame: a white caption band above the picture, with black text, like AugLy's
    ``meme_format`` (which does not run on current Pillow)."""

    def apply(im: Image.Image) -> Image.Image:
        band = max(24, im.height // 4)
        out = Image.new("RGB", (im.width, im.height + band), (255, 255, 255))
        out.paste(im, (0, band))
        draw = ImageDraw.Draw(out)
        font = _font(int(band * 0.45))
        box = draw.textbbox((0, 0), text, font=font)
        tw, th = box[2] - box[0], box[3] - box[1]
        draw.text(((im.width - tw) / 2, (band - th) / 2 - box[1]), text, fill=(0, 0, 0), font=font)
        return out

    return apply


def text_overlay(text: str = "vecsim copy", rng: random.Random | None = None) -> Edit:
    """Large white text with a dark outline, written across the lower third of the image."""

    def apply(im: Image.Image) -> Image.Image:
        out = im.copy()
        draw = ImageDraw.Draw(out)
        font = _font(max(10, im.height // 8))
        x = im.width * (0.05 + (rng.random() * 0.1 if rng else 0.05))
        y = im.height * (0.6 + (rng.random() * 0.1 if rng else 0.05))
        draw.text((x, y), text, fill=(255, 255, 255), font=font,
                  stroke_width=max(1, im.height // 100), stroke_fill=(0, 0, 0))
        return out

    return apply


def chain(*edits: Edit) -> Edit:
    def apply(im: Image.Image) -> Image.Image:
        for e in edits:
            im = e(im)
        return im

    return apply


def random_chain(rng: random.Random, length: tuple[int, int] = (2, 3)) -> Edit:
    """A random chain of 2-3 AugLy edits (DISC21's augmentation library), drawn from the ones
    that run on current Pillow / numpy. Needs the ``bench`` extra (``pip install vecsim[bench]``)."""
    try:
        import augly.image as aug
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise MissingDependencyError("random AugLy chains need AugLy: pip install 'vecsim[bench]'") from exc

    pool: list[Callable[[], Edit]] = [
        lambda: lambda im: aug.blur(im, radius=rng.uniform(1, 3)),
        lambda: lambda im: aug.brightness(im, factor=rng.uniform(0.5, 1.8)),
        lambda: lambda im: aug.contrast(im, factor=rng.uniform(0.5, 2.0)),
        lambda: lambda im: aug.saturation(im, factor=rng.uniform(0.2, 3.0)),
        lambda: lambda im: aug.grayscale(im),
        lambda: lambda im: aug.encoding_quality(im, quality=rng.randint(20, 60)),
        lambda: lambda im: aug.pixelization(im, ratio=rng.uniform(0.3, 0.7)),
        lambda: lambda im: aug.random_noise(im, var=rng.uniform(0.005, 0.02), seed=rng.randint(0, 2**31)),
        lambda: lambda im: aug.sharpen(im, factor=rng.uniform(2, 10)),
        lambda: lambda im: aug.hflip(im),
        lambda: lambda im: aug.rotate(im, degrees=rng.uniform(-20, 20)),
        lambda: lambda im: aug.scale(im, factor=rng.uniform(0.4, 0.9)),
        lambda: lambda im: aug.crop(im, x1=rng.uniform(0, 0.2), y1=rng.uniform(0, 0.2),
                                    x2=rng.uniform(0.8, 1), y2=rng.uniform(0.8, 1)),
        lambda: lambda im: aug.pad(im, w_factor=rng.uniform(0.05, 0.3), h_factor=rng.uniform(0.05, 0.3),
                                   color=tuple(rng.randint(0, 255) for _ in range(3))),
        lambda: lambda im: aug.change_aspect_ratio(im, ratio=rng.uniform(0.6, 1.6)),
        lambda: lambda im: aug.overlay_stripes(im, line_width=rng.uniform(0.2, 0.5),
                                               line_density=rng.uniform(0.2, 0.5),
                                               line_opacity=rng.uniform(0.3, 0.7)),
        lambda: lambda im: aug.overlay_text(im, opacity=1.0, font_size=rng.uniform(0.1, 0.2),
                                            x_pos=rng.uniform(0, 0.4), y_pos=rng.uniform(0, 0.6)),
    ]
    n = rng.randint(*length)
    picked = [rng.choice(pool)() for _ in range(n)]
    return chain(*picked, lambda im: im.convert("RGB"))


#: The 14 edits of the Active Image Indexing table, by name.
def standard_edits(seed: int = 0) -> dict[str, Edit]:
    rng = random.Random(seed)
    return {
        "identity": lambda im: im.copy(),
        "contrast_0.5": contrast(0.5),
        "contrast_2.0": contrast(2.0),
        "brightness_0.5": brightness(0.5),
        "brightness_2.0": brightness(2.0),
        "hue_0.2": hue(0.2),
        "blur_2": blur(2),
        "jpeg_50": jpeg(50),
        "rotate_25": rotate(25),
        "rotate_90": rotate(90),
        "crop_0.5": center_crop(0.5),
        "resize_0.5": resize(0.5),
        "meme": meme(),
        "random": lambda im: random_chain(rng)(im),
    }


def perspective(strength: float = 0.2, rng: random.Random | None = None) -> Edit:
    """A perspective warp: each corner of the picture moves inwards by up to ``strength`` of the
    side, the uncovered border black (AugLy's ``perspective_transform`` does not run on numpy >= 1.24)."""

    def apply(im: Image.Image) -> Image.Image:
        w, h = im.size
        r = rng or random.Random(0)
        d = [(r.uniform(0, strength) * w, r.uniform(0, strength) * h) for _ in range(4)]
        # where each output corner samples the input (PIL maps output -> input)
        src = [(-d[0][0], -d[0][1]), (w + d[1][0], -d[1][1]), (w + d[2][0], h + d[2][1]), (-d[3][0], h + d[3][1])]
        dst = [(0, 0), (w, 0), (w, h), (0, h)]
        a = []
        for (x, y), (u, v) in zip(dst, src):
            a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
            a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        coeffs = np.linalg.solve(np.array(a, dtype=np.float64), np.array([c for p in src for c in p], dtype=np.float64))
        return im.transform((w, h), Image.Transform.PERSPECTIVE, tuple(coeffs), Image.Resampling.BILINEAR)

    return apply


def picture_in_picture(background: Image.Image, scale: float = 0.5, rng: random.Random | None = None) -> Edit:
    """The image shrunk to ``scale`` of the background's width and pasted into it, somewhere."""

    def apply(im: Image.Image) -> Image.Image:
        out = background.convert("RGB").copy()
        w = max(16, round(out.width * scale))
        h = max(16, min(out.height, round(im.height * w / im.width)))
        r = rng or random.Random(0)
        small = im.convert("RGB").resize((w, h), Image.Resampling.BILINEAR)
        out.paste(small, (r.randint(0, out.width - w), r.randint(0, out.height - h)))
        return out

    return apply


def _augly(name: str, **kwargs) -> Edit:
    def apply(im: Image.Image) -> Image.Image:
        try:
            import augly.image as aug
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise MissingDependencyError("this edit needs AugLy: pip install 'vecsim[bench]'") from exc
        return getattr(aug, name)(im, **{k: (v() if callable(v) else v) for k, v in kwargs.items()}).convert("RGB")

    return apply


#: The optional edit families of ``vecsim bench images --families``: name -> edits of that family.
def family_edits(seed: int = 0) -> dict[str, dict[str, Edit]]:
    from .sample_media import generated_distractor

    rng = random.Random(seed + 7)
    return {
        "overlay": {
            "overlay_emoji": _augly("overlay_emoji", opacity=1.0, emoji_size=0.3,
                                    x_pos=lambda: rng.uniform(0, 0.6), y_pos=lambda: rng.uniform(0, 0.6)),
            "overlay_text": _augly("overlay_text", opacity=1.0, font_size=0.15,
                                   x_pos=lambda: rng.uniform(0, 0.3), y_pos=lambda: rng.uniform(0, 0.6)),
        },
        "pad": {"pad": _augly("pad", w_factor=0.25, h_factor=0.25, color=(0, 0, 0))},
        "flip": {"hflip": hflip, "vflip": lambda im: ImageOps.flip(im)},
        "perspective": {"perspective": lambda im: perspective(0.2, rng)(im)},
        "screenshot": {"screenshot": _augly("overlay_onto_screenshot")},
        "pip": {"picture_in_picture": lambda im: picture_in_picture(generated_distractor(rng.randint(0, 10**6),
                                                                                         (640, 480)), 0.5, rng)(im)},
    }


FAMILIES = ("overlay", "pad", "flip", "perspective", "screenshot", "pip")


def select_edits(families: list[str] | None = None, seed: int = 0) -> dict[str, Edit]:
    """The 14 standard edits, plus every edit of each named optional family."""
    edits = standard_edits(seed)
    if families:
        known = family_edits(seed)
        for f in families:
            if f not in known:
                raise InvalidRequestError(f"unknown edit family {f!r}; choose from {', '.join(FAMILIES)}")
            edits.update(known[f])
    return edits


#: The edits the demo shows: PIL only, no optional dependency.
def demo_edits() -> dict[str, Edit]:
    return {
        "crop 50% + JPEG 60": chain(center_crop(0.5), jpeg(60)),
        "text overlay": text_overlay(),
        "rotate 25": rotate(25),
        "hue + contrast": chain(hue(0.2), contrast(1.5)),
        "mirror + resize": chain(hflip, resize(0.3)),
        "meme frame": meme(),
    }
