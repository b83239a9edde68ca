"""The benchmark corpus: a DISC21-style split of a photo folder, every vector computed once and cached.

**Split** (:func:`split_folder`): the photos of a folder are shuffled with the seed. The first
``references`` (default: half) are indexed and queried as edited copies; the next as many are
*non-matching* sources, never indexed, queried under the same edits (the DISC21 protocol: a
threshold has to reject them); the rest, plus a second distractor folder, are indexed
distractors. ``exclude`` leaves files out (e.g. the photos a descriptor was trained on).

**Extra distractors**: to make the search task realistic, ``extra_distractors`` more vectors:
frames of every video in a folder at 1 fps, then random crops of those frames and of the
distractor images. The frames of one source (a video, or the crops of one image) form one
distractor *video* asset, as frames of real videos would.

**Queries**: every reference under every edit of :func:`vecsim.edits.select_edits` (copies), and
every non-matching photo under the same edits with another seed (non-copies, ``query_ref == -1``).

Each entry keeps its embedding (float32, L2-normalised) and its PDQ hash. Embedding 50 000 frames
takes a quarter of an hour on two cores, so the corpus is saved as ``.npz``, named after the
descriptor and a hash of everything that shaped it.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..descriptors import Descriptor
from ..descriptors import local as local_desc
from ..descriptors.pdq import DihedralHash, hamming, pdq_dihedral_hashes, pdq_hashes
from ..edits import select_edits
from ..embedding import batched, embed_variants
from ..errors import InvalidRequestError, MediaError
from ..media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, decode_image, files_under, open_media

#: Bumped when the corpus layout or the way it is made changes: old cache files are not reused.
FORMAT = 4
#: The same for the cached extra distractor frames (their own files, unchanged since format 2).
FRAMES_FORMAT = 2


def list_images(folder: str | Path) -> list[Path]:
    return files_under(folder, IMAGE_EXTENSIONS)


def list_videos(folder: str | Path | None) -> list[Path]:
    return [] if folder is None else files_under(folder, VIDEO_EXTENSIONS)


def _save_npz(path: Path, **arrays) -> None:
    """Write ``path`` whole or not at all (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def _cache_path(cache_dir: Path | None, kind: str, descriptor: Descriptor, key: str) -> Path | None:
    """The cache file of ``kind`` ("corpus", "frames") made from the inputs ``key`` describes, or
    None without a cache folder."""
    if cache_dir is None:
        return None
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    return cache_dir / f"{kind}-{descriptor.name}-{descriptor.version}-{digest}.npz"


def load_rgb(path: Path) -> Image.Image:
    return decode_image(path).read_all()[0].image


@dataclass
class BenchSplit:
    references: list[Path]
    non_matching: list[Path]
    distractors: list[Path]


def split_folder(folder: str | Path, distractors: str | Path | None = None, *, references: int | None = None,
                 non_matching: int | None = None, exclude: set[str] | frozenset[str] = frozenset(),
                 seed: int = 0) -> BenchSplit:
    """References, non-matching sources and distractors of a benchmark (see the module docstring)."""
    images = [p for p in list_images(folder) if p.name not in exclude]
    if len(images) < 2:
        raise InvalidRequestError(f"folder {str(folder)!r}: a benchmark needs at least 2 photos, found {len(images)}")
    random.Random(seed).shuffle(images)
    n_ref = references if references is not None else len(images) // 2
    if not 1 <= n_ref <= len(images):
        raise InvalidRequestError(f"references must be between 1 and {len(images)}, got {n_ref}")
    n_non = min(n_ref, len(images) - n_ref) if non_matching is None else non_matching
    if n_non < 0 or n_ref + n_non > len(images):
        raise InvalidRequestError(f"non_matching={n_non}: {n_ref} references + {n_non} non-matching photos exceed "
                                  f"the {len(images)} in {folder}")
    extra = [p for p in list_images(distractors) if p.name not in exclude] if distractors else []
    return BenchSplit(sorted(images[:n_ref]), sorted(images[n_ref:n_ref + n_non]),
                      sorted(images[n_ref + n_non:]) + extra)


@dataclass
class Corpus:
    descriptor: str  # "name/version"
    key: str  # JSON of everything that shaped the corpus
    ref_names: list[str]
    ref_vectors: np.ndarray
    ref_pdq: list[str]
    image_distractor_vectors: np.ndarray
    image_distractor_pdq: list[str]
    frame_vectors: np.ndarray  # the extra distractor frames, grouped by frame_group
    frame_pdq: list[str]
    frame_group: np.ndarray  # int: which distractor video asset each frame belongs to
    query_vectors: np.ndarray
    query_vectors_turned: np.ndarray  # (2, queries, dim): each query turned a quarter left, and right
    query_pdq: list[tuple[str, ...]]  # each query's 8 dihedral PDQ hashes, as query() hashes it
    query_pdq_quality: np.ndarray  # int: PDQ quality of each query
    query_edit: list[str]
    query_ref: np.ndarray  # int: the reference each query copies, -1 for a non-matching query
    query_source: list[str]  # file name of the photo the query was made from
    # local features (vecsim.descriptors.local): of each indexed image and extra frame, and of
    # each query as it is and mirrored (2 blobs a query)
    ref_local: list[bytes]
    image_distractor_local: list[bytes]
    frame_local: list[bytes]
    query_local: list[bytes]
    #: the indexed assets each query's source is a *look-alike* of (a different photo of the same
    #: kind of thing, or another moment of the same shot): space-separated task ids, "" for none
    query_lookalikes: list[str]
    #: look-alike frames of the videos, indexed as image assets ``vref{i}`` (:func:`video_lookalikes`)
    vref_vectors: np.ndarray
    vref_pdq: list[str]
    vref_local: list[bytes]
    #: assets whose hits a query ignores (space-separated task ids): for a look-alike frame of a
    #: video, the distractor asset made of that same video's frames (a true copy of it)
    query_ignore: list[str]

    @property
    def vectors_indexed(self) -> int:
        return (len(self.ref_vectors) + len(self.image_distractor_vectors) + len(self.frame_vectors)
                + len(self.vref_vectors))

    def save(self, path: Path) -> None:
        arrays = {}
        for k, v in vars(self).items():
            if k.endswith("_local"):
                arrays[k], arrays[k + "_offsets"] = _pack_blobs(v)
            else:
                arrays[k] = np.asarray(v)
        _save_npz(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> Corpus:
        with np.load(path) as z:
            d = {k: z[k] for k in z.files}
        for key in ("ref_names", "ref_pdq", "image_distractor_pdq", "frame_pdq", "query_edit", "query_source",
                    "query_lookalikes", "vref_pdq", "query_ignore"):
            d[key] = [str(x) for x in d[key]]
        for key in [k for k in d if k.endswith("_local")]:
            d[key] = _unpack_blobs(d[key], d.pop(key + "_offsets"))
        d["query_pdq"] = [tuple(str(h) for h in row) for row in d["query_pdq"]]
        d["descriptor"], d["key"] = str(d["descriptor"]), str(d["key"])
        return cls(**d)


def _pack_blobs(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Byte strings as one uint8 array and their end offsets (an npz holds no byte lists)."""
    ends = np.cumsum([len(b) for b in blobs], dtype=np.int64)
    return np.frombuffer(b"".join(blobs), dtype=np.uint8), ends


def _unpack_blobs(data: np.ndarray, ends: np.ndarray) -> list[bytes]:
    raw, starts = data.tobytes(), np.concatenate([[0], ends[:-1]]).astype(np.int64)
    return [raw[a:b] for a, b in zip(starts, ends)]


#: Long side of a distractor source before cropping: crops are embedded at 224 px anyway.
SOURCE_SIDE = 1024
BATCH = 64


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
    for p in list_videos(video_folder):
        if frames := _video_frames_1fps(p):
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


def _embed_all(descriptor: Descriptor, images: Iterator[Image.Image], total: int, desc: str
               ) -> tuple[np.ndarray, list[str], list[bytes]]:
    """Vectors, PDQ hashes and local features of images, as ``add`` stores them."""
    from tqdm import tqdm

    vectors, hashes, local = [np.zeros((0, descriptor.dim), np.float32)], [], []
    with tqdm(total=total, desc=desc, unit="img") as bar:
        for batch in batched(images, BATCH):
            vectors.append(descriptor.embed(batch))
            hashes += pdq_hashes(batch)
            local += [local_desc.extract(im) for im in batch]
            bar.update(len(batch))
    return np.concatenate(vectors).astype(np.float32), hashes, local


def load_or_build_frames(descriptor: Descriptor, split: BenchSplit, cache_dir: Path | None, *,
                         videos: Path | None, extra_distractors: int, seed: int,
                         progress: Callable[[str], None] = lambda _: None
                         ) -> tuple[np.ndarray, list[str], np.ndarray, list[bytes]]:
    """The extra distractor frames ``(vectors, pdq, group, local features)``: 1 fps frames of the
    videos, then random crops of them and of the distractor images, ``extra_distractors`` in all
    (rounded up to a whole number per source). Cached on their own: they do not depend on the
    references. The local features have their own file beside the vectors (an older cache of
    vectors gets it by making the same frames again, without embedding them)."""
    if extra_distractors <= 0:
        return np.zeros((0, descriptor.dim), np.float32), [], np.zeros(0, np.int64), []
    key = json.dumps({"format": FRAMES_FORMAT, "descriptor": f"{descriptor.name}/{descriptor.version}",
                      "videos": [p.name for p in list_videos(videos)], "images": [p.name for p in split.distractors],
                      "extra_distractors": extra_distractors, "seed": seed}, sort_keys=True)
    path = _cache_path(cache_dir, "frames", descriptor, key)
    local_path = path.with_name(f"{path.stem}-{local_desc.FORMAT}.npz") if path is not None else None
    sources = _distractor_sources(split.distractors, videos)
    if not sources:
        raise InvalidRequestError(f"extra_distractors={extra_distractors} needs distractor images or videos to take "
                                  "frames and crops from; there are none")
    per_source = -(-extra_distractors // len(sources))
    groups: list[int] = []

    def frames() -> Iterator[Image.Image]:
        for group, im in _distractor_frames(sources, per_source, random.Random(seed)):
            groups.append(group)
            yield im

    if path is not None and path.exists():
        with np.load(path) as z:
            progress(f"distractor frames from {path}")
            vectors, pdq, group = z["vectors"], [str(h) for h in z["pdq"]], z["group"]
        if local_path.exists():
            with np.load(local_path) as z:
                return vectors, pdq, group, _unpack_blobs(z["local"], z["ends"])
        from tqdm import tqdm

        local = [local_desc.extract(im) for im in tqdm(frames(), total=len(vectors), desc="distractor local features")]
    else:
        progress(f"{len(sources)} distractor sources x {per_source} frames")
        vectors, pdq, local = _embed_all(descriptor, frames(), per_source * len(sources), "distractor frames")
        group = np.array(groups, dtype=np.int64)
        if path is not None:
            _save_npz(path, vectors=vectors, pdq=np.array(pdq), group=group, key=key)
    if local_path is not None:
        data, ends = _pack_blobs(local)
        _save_npz(local_path, local=data, ends=ends)
    return vectors, pdq, group, local


def _embed_queries(descriptor: Descriptor, images: Iterator[Image.Image], total: int
                   ) -> tuple[np.ndarray, np.ndarray, list[DihedralHash], list[bytes]]:
    """Query vectors, hashes and local features as ``CustomIndex.query`` makes them for an image
    (:func:`~vecsim.embedding.embed_variants`: the image, then its quarter turns; its dihedral PDQ
    hashes; its keypoints as it is and mirrored, packed)."""
    from tqdm import tqdm

    batches, hashes, local = [], [], []
    with tqdm(total=total, desc="edited queries", unit="img") as bar:
        for batch in batched(images, BATCH):
            batches.append(embed_variants(descriptor, batch, rotations=True))
            hashes += pdq_dihedral_hashes(batch)
            for im in batch:
                local += [local_desc.pack(kp) for kp in local_desc.query_features(im)]
            bar.update(len(batch))
    plain, *turned = (np.concatenate(v).astype(np.float32) for v in zip(*batches))
    return plain, np.stack(turned), hashes, local


def _key(descriptor: Descriptor, split: BenchSplit, videos: Path | None, extra_distractors: int,
         families: list[str] | None, seed: int, lookalike_videos: Path | None = None,
         shot_lookalikes: bool = True) -> str:
    return json.dumps({
        "lookalike_videos": [p.name for p in list_videos(lookalike_videos or videos)] if shot_lookalikes else [],
        "format": FORMAT, "descriptor": f"{descriptor.name}/{descriptor.version}",
        "references": [p.name for p in split.references], "non_matching": [p.name for p in split.non_matching],
        "distractors": [p.name for p in split.distractors], "videos": [p.name for p in list_videos(videos)],
        "extra_distractors": extra_distractors, "families": sorted(families or []), "seed": seed,
    }, sort_keys=True)


#: Raw cosine (of the unedited photos) from which two different photos count as look-alikes:
#: the same kind of thing (two fish, two windmills, two castles by a lake), chosen by eye on the
#: shared photos, none of which is a copy of another (no two within 60 bits of PDQ).
LOOKALIKE_COSINE = 0.35
#: Two frames of one shot are look-alikes, not copies, when their PDQ hashes are this far apart
#: (the camera or the scene moved: twice PDQ's match distance) and their raw cosine this high.
SHOT_PDQ_DISTANCE = 64
SHOT_COSINE = 0.5


def _lookalikes(query: np.ndarray, indexed: np.ndarray, prefix: str, exclude: int = -1) -> str:
    """Space-separated task ids of the indexed images that are look-alikes of ``query``."""
    sims = indexed @ query
    return " ".join(f"{prefix}{j}" for j in np.flatnonzero(sims >= LOOKALIKE_COSINE) if j != exclude)


@dataclass
class ShotLookalikes:
    """Frames of the videos' shots: ``indexed`` (every other second) and ``queries`` (the seconds
    between, kept when they are far from every indexed frame of their video by PDQ), with, for
    each query, the indexed frames of its video it looks like (:data:`SHOT_COSINE`), and the
    videos among ``copies_in`` that copy the query's video (a re-encode of it, or itself): their
    frames are the same pictures, not look-alikes."""

    indexed: list[Image.Image]
    queries: list[Image.Image]
    sources: list[str]  # "video@second" of each query
    lookalikes: list[list[int]]
    copies: list[list[str]]  # names of the videos of ``copies_in`` that copy each query's video


def _is_copy(a: list[str], b: list[str]) -> bool:
    """Whether most frames of a video (PDQ hashes ``a``) are within :data:`SHOT_PDQ_DISTANCE` of
    a frame of another (``b``): a copy of it (re-encoded, distorted), not another recording."""
    near = sum(min(hamming(h, g) for g in b) < SHOT_PDQ_DISTANCE for h in a)
    return bool(a) and near * 2 >= len(a)


def video_lookalikes(descriptor: Descriptor, videos: Path | None, copies_in: Path | None = None) -> ShotLookalikes:
    """Look-alike frames of the videos of ``videos``: the same shot, another moment. A video that
    copies one already taken (a re-encode of it) is skipped."""
    shots = ShotLookalikes([], [], [], [], [])
    others = {p.name: pdq_hashes(frames) for p in list_videos(copies_in) if (frames := _video_frames_1fps(p))}
    taken: list[list[str]] = []
    for path in list_videos(videos):
        frames = _video_frames_1fps(path)
        if len(frames) < 2:
            continue
        vectors, hashes = descriptor.embed(frames), pdq_hashes(frames)
        if any(_is_copy(hashes, h) for h in taken):
            continue
        taken.append(hashes)
        copies = [name for name, h in others.items() if _is_copy(hashes, h) or _is_copy(h, hashes)]
        kept = list(range(0, len(frames), 2))
        first = len(shots.indexed)
        shots.indexed += [frames[t] for t in kept]
        for t in range(1, len(frames), 2):
            near = [k for k, i in enumerate(kept) if vectors[t] @ vectors[i] >= SHOT_COSINE]
            if near and all(hamming(hashes[t], hashes[i]) >= SHOT_PDQ_DISTANCE for i in kept):
                shots.queries.append(frames[t])
                shots.sources.append(f"{path.name}@{t}")
                shots.lookalikes.append([first + k for k in near])
                shots.copies.append(copies)
    return shots


def build_corpus(
    descriptor: Descriptor,
    split: BenchSplit,
    *,
    videos: Path | None = None,
    extra_distractors: int = 0,
    families: list[str] | None = None,
    seed: int = 0,
    cache_dir: Path | None = None,
    lookalike_videos: Path | None = None,
    shot_lookalikes: bool = True,
    progress: Callable[[str], None] = lambda _: None,
) -> Corpus:
    refs = [load_rgb(p) for p in split.references]
    ref_vectors, ref_pdq, ref_local = _embed_all(descriptor, iter(refs), len(refs), "references")
    dis_vectors, dis_pdq, dis_local = _embed_all(descriptor, (load_rgb(p) for p in split.distractors),
                                                 len(split.distractors), "distractor images")
    shots = (video_lookalikes(descriptor, lookalike_videos or videos, videos if extra_distractors > 0 else None)
             if shot_lookalikes else ShotLookalikes([], [], [], [], []))
    v_vectors, v_pdq, v_local = _embed_all(descriptor, iter(shots.indexed), len(shots.indexed), "shot frames")

    copy_edits, other_edits = select_edits(families, seed), select_edits(families, seed + 1)
    non_matching = {p.name: p for p in split.non_matching}
    plain_other = {p.name: v for p, v in zip(split.non_matching, descriptor.embed([load_rgb(p) for p in split.non_matching]))
                   } if split.non_matching else {}
    q_edit, q_ref, q_source, q_like = [], [], [], []
    for name in copy_edits:
        for i, path in enumerate(split.references):
            q_edit.append(name), q_ref.append(i), q_source.append(path.name)
            q_like.append(_lookalikes(ref_vectors[i], ref_vectors, "ref", exclude=i))
    for name in other_edits:
        for path in split.non_matching:
            q_edit.append(name), q_ref.append(-1), q_source.append(path.name)
            q_like.append(_lookalikes(plain_other[path.name], ref_vectors, "ref"))
    q_ignore = [""] * len(q_edit)
    # the distractor assets of extra frames: the videos' own frames first, one asset per video
    own_group = {p.name: g for g, p in enumerate(p for p in list_videos(videos) if _video_frames_1fps(p))
                 } if extra_distractors > 0 else {}
    for source, near, copies in zip(shots.sources, shots.lookalikes, shots.copies):
        q_edit.append("video_lookalike"), q_ref.append(-1), q_source.append(source)
        q_like.append(" ".join(f"vref{k}" for k in near))
        q_ignore.append(" ".join(f"frames{own_group[name]}" for name in copies if name in own_group))
    shot_queries = dict(zip(shots.sources, shots.queries))

    def queries() -> Iterator[Image.Image]:
        for name, i, source in zip(q_edit, q_ref, q_source):
            if i >= 0:
                yield copy_edits[name](refs[i])
            elif source in shot_queries:
                yield shot_queries[source]
            else:
                yield other_edits[name](load_rgb(non_matching[source]))

    q_vectors, q_turned, q_pdq, q_local = _embed_queries(descriptor, queries(), len(q_edit))

    f_vectors, f_pdq, groups, f_local = load_or_build_frames(descriptor, split, cache_dir, videos=videos,
                                                             extra_distractors=extra_distractors, seed=seed,
                                                             progress=progress)
    return Corpus(
        descriptor=f"{descriptor.name}/{descriptor.version}",
        key=_key(descriptor, split, videos, extra_distractors, families, seed, lookalike_videos, shot_lookalikes),
        ref_names=[p.name for p in split.references], ref_vectors=ref_vectors, ref_pdq=ref_pdq,
        image_distractor_vectors=dis_vectors, image_distractor_pdq=dis_pdq,
        frame_vectors=f_vectors, frame_pdq=f_pdq, frame_group=groups,
        query_vectors=q_vectors, query_vectors_turned=q_turned, query_pdq=[h.hashes for h in q_pdq],
        query_pdq_quality=np.array([h.quality for h in q_pdq], dtype=np.int64), query_edit=q_edit,
        query_ref=np.array(q_ref, dtype=np.int64), query_source=q_source,
        ref_local=ref_local, image_distractor_local=dis_local, frame_local=f_local, query_local=q_local,
        query_lookalikes=q_like, vref_vectors=v_vectors, vref_pdq=v_pdq, vref_local=v_local, query_ignore=q_ignore,
    )


def load_or_build_corpus(descriptor: Descriptor, split: BenchSplit, cache_dir: Path | None, *,
                         videos: Path | None = None, extra_distractors: int = 0, families: list[str] | None = None,
                         seed: int = 0, lookalike_videos: Path | None = None, shot_lookalikes: bool = True,
                         progress: Callable[[str], None] = lambda _: None) -> Corpus:
    """The corpus from ``cache_dir`` if one was built from the same inputs, else built (and saved
    there unless ``cache_dir`` is None). ``lookalike_videos``: the clips whose shots give the
    look-alike frames (default: ``videos``); ``shot_lookalikes=False``: none."""
    path = _cache_path(cache_dir, "corpus", descriptor, _key(descriptor, split, videos, extra_distractors,
                                                             families, seed, lookalike_videos, shot_lookalikes))
    if path is not None and path.exists():
        progress(f"descriptor corpus from {path}")
        return Corpus.load(path)
    corpus = build_corpus(descriptor, split, videos=videos, extra_distractors=extra_distractors, families=families,
                          seed=seed, cache_dir=cache_dir, lookalike_videos=lookalike_videos,
                          shot_lookalikes=shot_lookalikes, progress=progress)
    if path is not None:
        corpus.save(path)
        progress(f"descriptor corpus saved to {path}")
    return corpus


def index_bench_corpus(descriptor: Descriptor, references: Path, distractors: Path, videos: Path | None,
                       cache_dir: Path | None, *, target_vectors: int = 50_000, seed: int = 0,
                       progress: Callable[[str], None] = lambda _: None) -> Corpus:
    """The corpus of the index benchmark: every photo of ``references`` a reference (no
    non-matching queries), ``distractors`` indexed, and extra frames up to ``target_vectors``."""
    split = split_folder(references, distractors, references=len(list_images(references)), non_matching=0, seed=seed)
    extra = max(0, target_vectors - len(split.references) - len(split.distractors))
    return load_or_build_corpus(descriptor, split, cache_dir, videos=videos, extra_distractors=extra, seed=seed,
                                shot_lookalikes=False, progress=progress)
