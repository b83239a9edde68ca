"""Real sample photos that ship with a dependency (scikit-image, public domain / CC0), and
seeded, generated distractor images. Used by ``vecsim demo`` and by the tests."""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

#: skimage.data photos bundled in the wheel (no download). ``cat`` is ``chelsea``: listed once.
SAMPLE_PHOTOS = {
    "astronaut": "Astronaut Eileen Collins (NASA, public domain)",
    "chelsea": "Chelsea the cat (Stefan van der Walt, CC0)",
    "coffee": "A cup of coffee (Rachel Michetti, CC0)",
    "rocket": "Falcon 9 launch (SpaceX, CC0)",
    "hubble_deep_field": "Hubble eXtreme Deep Field (NASA, public domain)",
    "immunohistochemistry": "Immunohistochemistry stain (public domain)",
    "retina": "Human retina (Häggström, CC0)",
    "stereo_motorcycle": "Motorcycle, left stereo view (Middlebury, public domain)",
    "camera": "Cameraman (public domain)",
    "coins": "Greek coins (Pompeii, public domain)",
    "clock": "Motion-blurred clock (CC0)",
    "moon": "Surface of the moon (public domain)",
    "brick": "Brick wall texture (CC0)",
    "gravel": "Gravel texture (CC0)",
}


def sample_photo(name: str) -> Image.Image:
    import skimage.data

    arr = getattr(skimage.data, name)()
    if isinstance(arr, tuple):  # stereo pairs
        arr = arr[0]
    return Image.fromarray(np.asarray(arr)).convert("RGB")


def sample_photos(names: list[str] | None = None) -> dict[str, Image.Image]:
    return {n: sample_photo(n) for n in (names or list(SAMPLE_PHOTOS))}


def generated_distractor(seed: int, size: tuple[int, int] = (384, 288)) -> Image.Image:
    """A seeded synthetic picture: a colour gradient with shapes, lines and texture."""
    rng = random.Random(seed)
    w, h = size
    a, b = np.array([rng.randint(0, 255) for _ in range(3)]), np.array([rng.randint(0, 255) for _ in range(3)])
    t = np.linspace(0, 1, w)[None, :, None] * rng.uniform(0.3, 1) + np.linspace(0, 1, h)[:, None, None] * rng.uniform(0, 0.7)
    base = (a * (1 - t / t.max()) + b * (t / t.max())).astype(np.uint8)
    im = Image.fromarray(base, "RGB")
    draw = ImageDraw.Draw(im)
    for _ in range(rng.randint(4, 14)):
        x0, y0 = rng.randint(-w // 4, w), rng.randint(-h // 4, h)
        x1, y1 = x0 + rng.randint(10, w // 2), y0 + rng.randint(10, h // 2)
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        shape = rng.choice(("ellipse", "rectangle", "line", "polygon"))
        if shape == "ellipse":
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif shape == "rectangle":
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif shape == "line":
            draw.line((x0, y0, x1, y1), fill=colour, width=rng.randint(2, 12))
        else:
            draw.polygon([(rng.randint(0, w), rng.randint(0, h)) for _ in range(rng.randint(3, 6))], fill=colour)
    noise = np.random.default_rng(seed).normal(0, rng.uniform(2, 18), (h, w, 3))
    arr = np.clip(np.asarray(im, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB").filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.2)))
