"""The descriptor corpus of the index benchmark: every vector computed once, cached on disk.

Comparing index configs and backends needs the same vectors in every run and tens of thousands
of them; embedding 50 000 frames takes a quarter of an hour on two cores, building one index a
minute. So the corpus is built once and saved as ``.npz``:

- **references**: the photos of a folder, one image asset each;
- **distractor images**: the photos of another folder (indexed, never queried);
- **distractor frames**: to grow the index to ``target_vectors``, frames of every video in a
  folder sampled at 1 fps plus random crops of those frames and of the distractor images. The
  frames of one source (a video, or the crops of one image) form one distractor *video* asset,
  as frames of real videos would;
- **queries**: every reference under every edit of :func:`vecsim.edits.standard_edits`.

Each entry keeps its embedding (float32, L2-normalised) and its PDQ hash. The cache file is
named after the descriptor, the seed and the target size, so a different descriptor never
reuses vectors.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .bench import list_images, load_rgb
from .descriptors import Descriptor
from .descriptors.pdq import pdq_hashes
from .edits import standard_edits
from .errors import MediaError
from .index import _batched
from .media import VIDEO_EXTENSIONS, open_media

#: Long side of a distractor source before cropping: crops are embedded at 224 px anyway.
SOURCE_SIDE = 1024
BATCH = 64


@dataclass
class Corpus:
    descriptor: str  # "name/version"
    ref_names: list[str]
    ref_vectors: np.ndarray
    ref_pdq: list[str]
    image_distractor_vectors: np.ndarray
    image_distractor_pdq: list[str]
    frame_vectors: np.ndarray  # the extra distractor frames, grouped by frame_group
    frame_pdq: list[str]
    frame_group: np.ndarray  # int: which distractor video asset each frame belongs to
    query_vectors: np.ndarray
    query_pdq: list[str]
    query_edit: list[str]
    query_ref: np.ndarray  # int: the reference each query copies

    @property
    def vectors_indexed(self) -> int:
        return len(self.ref_vectors) + len(self.image_distractor_vectors) + len(self.frame_vectors)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{k: np.asarray(v) for k, v in vars(self).items()})
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Corpus:
        with np.load(path) as z:
            d = {k: z[k] for k in z.files}
        for key in ("ref_names", "ref_pdq", "image_distractor_pdq", "frame_pdq", "query_pdq", "query_edit"):
            d[key] = [str(x) for x in d[key]]
        d["descriptor"] = str(d["descriptor"])
        return cls(**d)


def _shrink(im: Image.Image, side: int = SOURCE_SIDE) -> Image.Image:
    im = im.convert("RGB")
    if max(im.size) > side:
        im.thumbnail((side, side), Image.Resampling.BILINEAR)
    return im


def _random_crop(im: Image.Image, rng: random.Random) -> Image.Image:
    """A crop of 5-60 % of the area with an aspect ratio between 1:2 and 2:1, maybe mirrored."""
    w, h = im.size
    area = rng.uniform(0.05, 0.6) * w * h
    aspect = rng.uniform(0.5, 2.0)
    cw = max(16, min(w, int(round((area * aspect) ** 0.5))))
    ch = max(16, min(h, int(round((area / aspect) ** 0.5))))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    crop = im.crop((x, y, x + cw, y + ch))
    return crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop


def _video_frames_1fps(path: Path) -> list[Image.Image]:
    try:
        return [_shrink(f.image) for f in open_media(str(path), fps=1.0).frames]
    except MediaError:  # a file vecsim cannot read is not a benchmark input
        return []


def _distractor_sources(image_paths: list[Path], video_folder: Path | None) -> list[list[Image.Image] | Path]:
    """One entry per distractor video asset: a video's 1 fps frames, or an image to crop."""
    sources: list[list[Image.Image] | Path] = []
    if video_folder is not None:
        for p in sorted(video_folder.rglob("*")):
            if p.suffix.lower() in VIDEO_EXTENSIONS and (frames := _video_frames_1fps(p)):
                sources.append(frames)
    return sources + list(image_paths)


def _distractor_frames(sources: list[list[Image.Image] | Path], per_source: int,
                       rng: random.Random) -> Iterator[tuple[int, Image.Image]]:
    """(asset number, frame): a video's own frames, then random crops of them; an image's crops."""
    for group, source in enumerate(sources):
        own = [] if isinstance(source, Path) else source
        seeds = [_shrink(load_rgb(source))] if isinstance(source, Path) else source
        frames = list(own[:per_source])
        while len(frames) < per_source:
            frames.append(_random_crop(rng.choice(seeds), rng))
        for im in frames:
            yield group, im


def _embed_all(descriptor: Descriptor, images: Iterator[Image.Image], total: int, desc: str) -> tuple[np.ndarray, list[str]]:
    from tqdm import tqdm

    vectors, hashes = [], []
    with tqdm(total=total, desc=desc, unit="img") as bar:
        for batch in _batched(images, BATCH):
            vectors.append(descriptor.embed(batch))
            hashes += pdq_hashes(batch)
            bar.update(len(batch))
    return np.concatenate(vectors).astype(np.float32), hashes


def build_corpus(
    descriptor: Descriptor,
    references: Path,
    distractors: Path,
    videos: Path | None,
    *,
    target_vectors: int = 50_000,
    seed: int = 0,
    progress: Callable[[str], None] = lambda _: None,
) -> Corpus:
    rng = random.Random(seed)
    ref_paths, dis_paths = list_images(references), list_images(distractors)
    if not ref_paths or not dis_paths:
        raise ValueError(f"need images in both {references} and {distractors}")
    refs = [load_rgb(p) for p in ref_paths]
    ref_vectors, ref_pdq = _embed_all(descriptor, iter(refs), len(refs), "references")
    dis_vectors, dis_pdq = _embed_all(descriptor, (load_rgb(p) for p in dis_paths), len(dis_paths), "distractor images")

    edits = standard_edits(seed)
    q_edit = [name for name in edits for _ in refs]
    q_ref = np.array([i for _ in edits for i in range(len(refs))])
    queries = (edits[name](refs[i]) for name, i in zip(q_edit, q_ref))
    q_vectors, q_pdq = _embed_all(descriptor, queries, len(q_edit), "edited queries")

    sources = _distractor_sources(dis_paths, videos)
    extra = max(0, target_vectors - len(refs) - len(dis_paths))
    per_source = -(-extra // len(sources))
    progress(f"{len(sources)} distractor sources x {per_source} frames")
    groups: list[int] = []

    def frames() -> Iterator[Image.Image]:
        for group, im in _distractor_frames(sources, per_source, rng):
            groups.append(group)
            yield im

    f_vectors, f_pdq = _embed_all(descriptor, frames(), per_source * len(sources), "distractor frames")
    return Corpus(
        descriptor=f"{descriptor.name}/{descriptor.version}",
        ref_names=[p.name for p in ref_paths], ref_vectors=ref_vectors, ref_pdq=ref_pdq,
        image_distractor_vectors=dis_vectors, image_distractor_pdq=dis_pdq,
        frame_vectors=f_vectors, frame_pdq=f_pdq, frame_group=np.array(groups),
        query_vectors=q_vectors, query_pdq=q_pdq, query_edit=q_edit, query_ref=q_ref,
    )


def load_or_build_corpus(descriptor: Descriptor, references: Path, distractors: Path, videos: Path | None,
                         cache_dir: Path, *, target_vectors: int = 50_000, seed: int = 0,
                         progress: Callable[[str], None] = lambda _: None) -> Corpus:
    path = cache_dir / f"corpus-{descriptor.name}-{descriptor.version}-s{seed}-n{target_vectors}.npz"
    if path.exists():
        progress(f"descriptor corpus from {path}")
        return Corpus.load(path)
    corpus = build_corpus(descriptor, references, distractors, videos, target_vectors=target_vectors, seed=seed,
                          progress=progress)
    corpus.save(path)
    progress(f"descriptor corpus saved to {path}")
    return corpus
