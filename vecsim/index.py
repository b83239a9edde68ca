"""``CustomIndex``: the facade. add / query / remove media in a copy-detection index.

Data flows one way: media -> frames (:mod:`vecsim.media`) -> descriptors
(:mod:`vecsim.descriptors`) -> store (:mod:`vecsim.adapters`) -> hits -> per-asset matches
(:mod:`vecsim.aggregate`) -> pydantic results (:mod:`vecsim.schema`).
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .aggregate import QueryFrame, aggregate, merge_hits
from .descriptors import Descriptor, load_descriptor
from .descriptors.pdq import DihedralHash, hamming, pdq_dihedral_hashes, pdq_hashes
from .errors import (
    DescriptorMismatchError,
    IndexConfigError,
    InvalidRequestError,
    MediaError,
    TaskExistsError,
    TaskNotFoundError,
)
from .index_config import FlatIndex, IndexConfig, parse_index_config
from .media import DEFAULT_MAX_PIXELS, Frame, MediaInput, MediaStream, describe, expand_sources, open_media
from .video import DEFAULT_FPS, DEFAULT_MAX_DURATION
from .schema import (
    AddFailure,
    AddManyResult,
    AddResult,
    AssetInfo,
    AssetMatch,
    DescriptorInfo,
    FrameInfo,
    IndexInfo,
    QueryResult,
    RemoveResult,
    VacuumResult,
)
from .store import AssetRecord, CollectionSpec, FrameRow, VectorStore

if TYPE_CHECKING:
    from .adapters import StoreOptions

DEFAULT_URI = "vecsim.db"
DEFAULT_COLLECTION = "vecsim"
#: The extra query variants of ``query(..., rotations=True)``: a quarter turn left, and right.
QUARTER_TURNS = (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270)


def embed_variants(descriptor: Descriptor, images: list[Image.Image], rotations: bool) -> list[np.ndarray]:
    """The query vectors of a batch of frames: the frames as they are, then (with ``rotations``)
    each quarter turn of :data:`QUARTER_TURNS`; one ``(len(images), dim)`` array per variant."""
    variants = [descriptor.embed(images)]
    if rotations:
        variants += [descriptor.embed([im.transpose(turn) for im in images]) for turn in QUARTER_TURNS]
    return variants


#: Default ``threshold`` on ``similarity_score``: a calibrated P(copy) of one half (see docs/calibration.md).
DEFAULT_THRESHOLD = 0.5
DEFAULT_TOP_K = 5
#: Assets fetched per query frame (at least): enough that one asset with many near-identical
#: frames cannot hide the others (the store returns the best frame of each asset).
CANDIDATES_PER_FRAME = 10
#: Frames fetched per asset and query frame: the temporal alignment picks the consistent one
#: (within a slow shot the best-looking second is often a neighbour of the true one).
FRAMES_PER_ASSET = 5
#: Frame rows per write.
WRITE_BATCH = 256
MAX_METADATA_BYTES = 60_000
_TASK_ID = re.compile(r"^[^\x00-\x1f\x7f\"'\\]{1,256}$")


def default_uri() -> str:
    return os.environ.get("VECSIM_INDEX", DEFAULT_URI)


class CustomIndex:
    """A custom copy-detection index on a vector store.

    >>> index = CustomIndex("photos.db")             # Milvus Lite file; http://host:19530 for a server
    >>> added = index.add("cat.jpg", metadata={"listing": 42})
    >>> index.query("cat_cropped.jpg").output[0].task_id == added.task_id
    True

    ``index`` (type name or config) and ``index_params`` apply when the collection is created;
    an existing collection keeps what it was built with. ``descriptor`` must match the one the
    collection was built with. Videos are sampled at ``fps`` frames per second (by presentation
    time) up to ``max_duration`` seconds; with ``dedupe_distance`` set, a frame within that many
    PDQ bits of the previous kept frame is not stored, and the kept frame covers its time.
    ``store_options`` is the engine's typed options object (:class:`~vecsim.MilvusOptions` for a
    ``*.db`` path or a Milvus server: ``token``, ``db_name``, ``consistency``;
    :class:`~vecsim.QdrantOptions`: ``api_key``, ``prefer_grpc``, ``timeout``;
    :class:`~vecsim.QdrantEdgeOptions`: ``auto_optimize``, ...). Its fields may instead be given as
    extra keyword arguments (``CustomIndex("x.db", token=...)``); an option the URI's engine does
    not take is an :class:`~vecsim.IndexConfigError` (see ``vecsim.adapters.open_store``).
    """

    def __init__(
        self,
        uri: str | None = None,
        *,
        collection: str = DEFAULT_COLLECTION,
        descriptor: str | Descriptor | None = None,
        index: str | IndexConfig | None = None,
        index_params: dict[str, Any] | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        fps: float = DEFAULT_FPS,
        max_duration: float = DEFAULT_MAX_DURATION,
        dedupe_distance: int | None = None,
        batch_size: int = 16,
        progress: bool | None = None,
        store_options: StoreOptions | None = None,
        **legacy_store_options: Any,
    ):
        from vecsim.adapters import open_store

        self.uri = uri or default_uri()
        self.descriptor: Descriptor = load_descriptor(descriptor)
        self.max_pixels = max_pixels
        if fps <= 0:
            raise InvalidRequestError(f"fps must be positive, got {fps}")
        self.fps = float(fps)
        self.max_duration = float(max_duration)
        if dedupe_distance is not None and not 0 <= dedupe_distance <= 256:
            raise InvalidRequestError(f"dedupe_distance must be in 0..256 PDQ bits, got {dedupe_distance}")
        self.dedupe_distance = dedupe_distance
        self.batch_size = max(1, batch_size)
        self.progress = progress
        wanted = _index_config(index, index_params)
        spec = CollectionSpec(
            descriptor_name=self.descriptor.name,
            descriptor_version=self.descriptor.version,
            dim=self.descriptor.dim,
            index=wanted or FlatIndex(),
        )
        self._store: VectorStore = open_store(self.uri, collection, spec, store_options, **legacy_store_options)
        self._check_spec(self._store.spec, wanted)

    # --- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> CustomIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_spec(self, stored: CollectionSpec, wanted: IndexConfig | None) -> None:
        d = self.descriptor
        if (stored.descriptor_name, stored.descriptor_version, stored.dim) != (d.name, d.version, d.dim):
            self._store.close()
            raise DescriptorMismatchError(
                f"collection {self._store.collection!r} at {self.uri} holds vectors of descriptor "
                f"{stored.descriptor_name} {stored.descriptor_version} ({stored.dim}-d), not "
                f"{d.name} {d.version} ({d.dim}-d); open it with that descriptor or use a new collection"
            )
        if wanted is not None and wanted != stored.index:
            self._store.close()
            raise IndexConfigError(
                f"collection {self._store.collection!r} already exists with index "
                f"{stored.index.model_dump(mode='json')}; index options only apply when a collection is created"
            )

    # --- media and embedding -------------------------------------------------------------------

    def _open(self, media: MediaInput) -> MediaStream:
        return open_media(media, max_pixels=self.max_pixels, fps=self.fps, max_duration=self.max_duration)

    def _embedded_batches(self, stream: MediaStream) -> Iterator[tuple[list[Frame], np.ndarray, list[str]]]:
        """Decode, embed and hash a stream batch by batch: memory does not grow with its length."""
        for batch in _batched(stream.frames, self.batch_size):
            images = [f.image for f in batch]
            yield batch, self.descriptor.embed(images), pdq_hashes(images)

    # --- add -----------------------------------------------------------------------------------

    def add(
        self,
        media: MediaInput,
        metadata: dict[str, Any] | None = None,
        task_id: str | None = None,
        *,
        replace: bool = False,
    ) -> AddResult:
        """Add one image or video. Returns its ``task_id`` (generated when not given).

        All or nothing: frames are written under a new generation and become visible only when
        the asset record is committed after the last one; on any failure they are deleted.
        """
        given = task_id is not None
        task_id = _check_task_id(task_id) if given else _new_task_id()
        metadata = _check_metadata(metadata)
        existing = self._store.assets([task_id]).get(task_id) if given else None
        if existing is not None and not replace:
            raise TaskExistsError(f"task_id {task_id!r} is already in the index (pass replace=True to overwrite)")
        return self._ingest(task_id, self._open(media), metadata, existing, sweep=given)

    def _ingest(self, task_id: str, stream: MediaStream, metadata: dict[str, Any],
                existing: AssetRecord | None, *, sweep: bool) -> AddResult:
        keep = existing.generation if existing else None
        generation = uuid.uuid4().hex[:16]
        if sweep:  # a caller's id may have leftovers of a killed add; a fresh uuid cannot
            self._store.delete_frames(task_id, keep_generation=keep)
        rows = _RowWriter(self._store, task_id, generation, self.dedupe_distance)
        sampled = 0
        try:
            for batch, vectors, hashes in self._embedded_batches(stream):
                sampled += len(batch)
                for frame, vector, pdq in zip(batch, vectors, hashes):
                    rows.add(frame.timestamp, vector, pdq)
            duration = stream.duration or 0.0
            stored = rows.finish(duration)
            self._store.commit_asset(AssetRecord(
                task_id=task_id, generation=generation, media_type=stream.media_type, source=stream.source,
                duration=duration, frames=stored, metadata=metadata,
            ))
        except BaseException:
            try:  # never leave part of an asset; if the store itself is down, the rows stay
                self._store.delete_frames(task_id, keep_generation=keep)  # invisible until vacuum()
            except Exception:
                pass
            raise
        if existing is not None:
            self._store.delete_frames(task_id, keep_generation=generation)
        return AddResult(
            task_id=task_id, source=stream.source, media_type=stream.media_type, duration=duration,
            frames=sampled, stored_frames=stored, replaced=existing is not None, warnings=stream.warnings,
        )

    def add_many(
        self,
        media: Iterable[MediaInput] | MediaInput,
        metadata: dict[str, Any] | Sequence[dict[str, Any] | None] | None = None,
        task_ids: Sequence[str] | None = None,
        *,
        replace: bool = False,
    ) -> AddManyResult:
        """Add many inputs (directories are expanded recursively), one after the other, each
        embedded in batches. ``metadata`` is one dict for all, or one per input. A bad input does
        not stop the others: it is reported in ``failed`` and nothing of it is written."""
        sources = expand_sources(media)
        metas = _per_item(metadata, len(sources), "metadata")
        ids = list(task_ids) if task_ids is not None else [None] * len(sources)
        if len(ids) != len(sources):
            raise InvalidRequestError(f"{len(ids)} task_ids for {len(sources)} inputs")
        dupes = {t for t in ids if t is not None and ids.count(t) > 1}
        added: list[AddResult] = []
        failed: list[AddFailure] = []
        bar = self._progress_bar(len(sources), "adding")
        try:
            for item, meta, tid in zip(sources, metas, ids):
                try:
                    if tid in dupes:
                        raise TaskExistsError(f"task_id {tid!r} is given more than once in this batch")
                    added.append(self.add(item, meta, tid, replace=replace))
                except (MediaError, TaskExistsError, InvalidRequestError) as exc:
                    failed.append(AddFailure(source=describe(item), error=type(exc).__name__, message=str(exc)))
                bar.update(1)
        finally:
            bar.close()
        return AddManyResult(added=added, failed=failed)

    # --- query ---------------------------------------------------------------------------------

    def query(self, media: MediaInput, top_k: int = DEFAULT_TOP_K, threshold: float | None = None,
              rotations: bool | None = None) -> QueryResult:
        """Which indexed assets does ``media`` (image or video) copy? Up to ``top_k`` assets, best
        first, each with its matches at or above ``threshold`` (default :data:`DEFAULT_THRESHOLD`),
        its matched ratio and its matched segments.

        ``rotations``: also search each query frame turned a quarter left and right, keeping the
        best score per indexed frame, so a copy turned by 90 degrees is found. It triples the
        embedding work, so the default (``None``) does it for image queries only."""
        if top_k < 1:
            raise InvalidRequestError(f"top_k must be at least 1, got {top_k}")
        threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        if not 0.0 <= threshold <= 1.0:
            raise InvalidRequestError(f"threshold must be in [0, 1], got {threshold}")
        stream = self._open(media)
        turn = stream.media_type == "image" if rotations is None else bool(rotations)
        batches = self._query_batches(stream, turn)
        frames, output = self._match(batches, stream.duration or 0.0, top_k, threshold)
        return QueryResult(
            source=stream.source, media_type=stream.media_type, duration=stream.duration or 0.0,
            query_frames=len(frames), output=output, warnings=stream.warnings,
        )

    def _query_batches(self, stream: MediaStream, rotations: bool
                       ) -> Iterator[tuple[list[float], list[np.ndarray], list[DihedralHash]]]:
        """(timestamps, [vectors of each variant], dihedral PDQ hashes) per batch of query frames;
        the variants are the frames as they are, then (with ``rotations``) turned left and right."""
        for batch in _batched(stream.frames, self.batch_size):
            images = [f.image for f in batch]
            yield [f.timestamp for f in batch], embed_variants(self.descriptor, images, rotations), \
                pdq_dihedral_hashes(images)

    def _match(self, batches: Iterable[tuple[list[float], list[np.ndarray], Sequence[DihedralHash]]],
               duration: float, top_k: int, threshold: float) -> tuple[list[QueryFrame], list[AssetMatch]]:
        """Search and aggregate query frames given as (timestamps, vectors of each variant, PDQ
        hashes) batches. A frame's variants are searched together; each indexed frame keeps the
        best score any variant gave it."""
        per_frame = max(2 * top_k, CANDIDATES_PER_FRAME)
        frames: list[QueryFrame] = []
        for timestamps, variants, hashes in batches:
            n = len(timestamps)
            found = self._store.search(np.concatenate(variants), limit=per_frame, per_asset=FRAMES_PER_ASSET)
            hits = [merge_hits([found[v * n + i] for v in range(len(variants))]) for i in range(n)]
            frames += [QueryFrame(t, h.hashes, hs, h.quality) for t, h, hs in zip(timestamps, hashes, hits)]
        records = self._store.assets(sorted({h.task_id for qf in frames for h in qf.hits}))
        output = aggregate(
            frames, records, self.descriptor.calibration, threshold=threshold, top_k=top_k,
            interval=1.0 / self.fps, query_duration=duration,
        )
        return frames, output

    # --- remove / get / count / info -------------------------------------------------------------

    def remove(self, task_id: str) -> RemoveResult:
        """Delete the asset: its record first (no later query returns it), then all its frames."""
        task_id = _check_task_id(task_id)
        record = self._store.delete_asset(task_id)
        if record is None:
            raise TaskNotFoundError(f"task_id {task_id!r} is not in the index")
        removed = self._store.delete_frames(task_id)
        return RemoveResult(task_id=task_id, removed_frames=removed)

    def get(self, task_id: str) -> AssetInfo:
        task_id = _check_task_id(task_id)
        record = self._store.assets([task_id]).get(task_id)
        if record is None:
            raise TaskNotFoundError(f"task_id {task_id!r} is not in the index")
        return AssetInfo(
            task_id=task_id,
            media_type=record.media_type,
            source=record.source,
            duration=record.duration,
            metadata=record.metadata,
            frames=[FrameInfo(timestamp=f.timestamp, span_end=f.span_end, pdq=f.pdq)
                    for f in self._store.frames(task_id, record.generation)],
        )

    def vacuum(self) -> VacuumResult:
        """Delete frame rows that no asset commits: what an add killed half-way left behind
        (invisible to queries, but taking space). A full scan: run it as maintenance, not while
        adds are in flight, since an add in progress looks the same as a killed one."""
        committed, present = self._store.generations()
        orphans = [(t, g) for (t, g) in present if committed.get(t) != g]
        removed = 0
        for task_id in {t for t, _ in orphans}:
            removed += self._store.delete_frames(task_id, keep_generation=committed.get(task_id))
        return VacuumResult(removed_frames=removed, orphaned_generations=len(orphans))

    def count(self) -> int:
        """Number of assets in the index."""
        return self._store.count()[0]

    def info(self) -> IndexInfo:
        assets, frames = self._store.count()
        spec = self._store.spec
        return IndexInfo(
            uri=self.uri,
            engine=self._store.engine,
            engine_version=self._store.engine_version,
            collection=self._store.collection,
            descriptor=DescriptorInfo(name=spec.descriptor_name, version=spec.descriptor_version, dim=spec.dim),
            index=spec.index.model_dump(mode="json"),
            assets=assets,
            frames=frames,
        )

    # --- helpers -------------------------------------------------------------------------------

    def _progress_bar(self, total: int, desc: str):
        from tqdm import tqdm

        show = self.progress if self.progress is not None else sys.stderr.isatty()
        return tqdm(total=total, desc=desc, unit="file", disable=not show or total <= 1, file=sys.stderr)


class _RowWriter:
    """Turns a stream of (timestamp, vector, PDQ) into frame rows, written in batches.

    Each row covers the time until the next kept frame; with a dedupe distance, a frame whose PDQ
    hash is that close to the last kept one only extends the last row's span. A row is written
    once the next frame has fixed its span, so memory holds at most one write batch.
    """

    def __init__(self, store: VectorStore, task_id: str, generation: str, dedupe: int | None):
        self.store, self.task_id, self.generation, self.dedupe = store, task_id, generation, dedupe
        self.pending: list[FrameRow] = []
        self.last: FrameRow | None = None
        self.written = 0

    def add(self, timestamp: float, vector: np.ndarray, pdq: str) -> None:
        if self.last is not None:
            if self.dedupe is not None and hamming(self.last.pdq, pdq) <= self.dedupe:
                return  # same picture: the last row's span grows to cover it
            self.last.span_end = timestamp
            self.pending.append(self.last)
        self.last = FrameRow(self.task_id, self.generation, self.written + len(self.pending), timestamp,
                             timestamp, vector, pdq)
        if len(self.pending) >= WRITE_BATCH:
            self._flush()

    def finish(self, duration: float) -> int:
        if self.last is not None:
            self.last.span_end = max(self.last.timestamp, duration)
            self.pending.append(self.last)
            self.last = None
        self._flush()
        return self.written

    def _flush(self) -> None:
        if self.pending:
            self.store.insert_frames(self.pending)
            self.written += len(self.pending)
            self.pending = []


def _batched(items: Iterable[Any], n: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def _index_config(index: str | IndexConfig | None, params: dict[str, Any] | None) -> IndexConfig | None:
    if index is None:
        if params:
            raise IndexConfigError("index_params given without an index type")
        return None
    if isinstance(index, str):
        return parse_index_config(index, params)
    if params:
        raise IndexConfigError("pass index_params only with an index type name, not with a config object")
    return index


def _new_task_id() -> str:
    return uuid.uuid4().hex


def _check_task_id(task_id: str) -> str:
    if not isinstance(task_id, str) or not _TASK_ID.match(task_id) or task_id != task_id.strip():
        raise InvalidRequestError(
            f"invalid task_id {task_id!r}: 1-256 characters, no quotes, backslashes, control characters "
            "or surrounding spaces"
        )
    return task_id


def _check_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidRequestError(f"metadata must be a JSON object (dict), got {type(metadata).__name__}")
    try:
        text = json.dumps(metadata, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"metadata is not JSON-serialisable: {exc}") from None
    if len(text.encode()) > MAX_METADATA_BYTES:
        raise InvalidRequestError(f"metadata is {len(text.encode()):,} bytes of JSON; the limit is {MAX_METADATA_BYTES:,}")
    return json.loads(text)  # a plain copy: what comes back is exactly what is stored


def _per_item(value: Any, n: int, what: str) -> list[Any]:
    if value is None or isinstance(value, dict):
        return [value] * n
    items = list(value)
    if len(items) != n:
        raise InvalidRequestError(f"{len(items)} {what} entries for {n} inputs")
    return items
