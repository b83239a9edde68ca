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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .aggregate import aggregate
from .descriptors import Descriptor, load_descriptor
from .descriptors.pdq import pdq_hashes
from .errors import (
    DescriptorMismatchError,
    IndexConfigError,
    InvalidRequestError,
    MediaError,
    TaskExistsError,
    TaskNotFoundError,
)
from .index_config import FlatIndex, IndexConfig, parse_index_config
from .media import DEFAULT_MAX_PIXELS, DecodedMedia, MediaInput, decode, describe, expand_sources
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
)
from .store import CollectionSpec, FrameRow, VectorStore

DEFAULT_URI = "vecsim.db"
DEFAULT_COLLECTION = "vecsim"
#: Default ``threshold`` on ``similarity_score``: a calibrated P(copy) of one half (see docs/calibration.md).
DEFAULT_THRESHOLD = 0.5
DEFAULT_TOP_K = 5
MAX_METADATA_BYTES = 60_000
_TASK_ID = re.compile(r"^[^\x00-\x1f\x7f\"'\\]{1,256}$")


@dataclass
class _Embedded:
    """A decoded input with its vectors and hashes, ready to write or to search."""

    media: DecodedMedia
    vectors: np.ndarray
    pdqs: list[str]

    @property
    def timestamps(self) -> list[float]:
        return [f.timestamp for f in self.media.frames]


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
    collection was built with. Extra keyword arguments go to the store adapter
    (Milvus: ``token``, ``db_name``).
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
        batch_size: int = 16,
        progress: bool | None = None,
        **store_options: Any,
    ):
        from vecsim.adapters import open_store

        self.uri = uri or default_uri()
        self.descriptor: Descriptor = load_descriptor(descriptor)
        self.max_pixels = max_pixels
        self.batch_size = max(1, batch_size)
        self.progress = progress
        wanted = _index_config(index, index_params)
        spec = CollectionSpec(
            descriptor_name=self.descriptor.name,
            descriptor_version=self.descriptor.version,
            dim=self.descriptor.dim,
            index=wanted or FlatIndex(),
        )
        self._store: VectorStore = open_store(self.uri, collection, spec, **store_options)
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

    # --- embedding -----------------------------------------------------------------------------

    def _embed(self, items: Sequence[DecodedMedia]) -> list[_Embedded]:
        images = [f.image for m in items for f in m.frames]
        vectors = self.descriptor.embed(images) if images else np.zeros((0, self.descriptor.dim), np.float32)
        hashes = pdq_hashes(images)
        out, i = [], 0
        for m in items:
            n = len(m.frames)
            out.append(_Embedded(m, vectors[i : i + n], hashes[i : i + n]))
            i += n
        return out

    def _decode(self, media: MediaInput) -> DecodedMedia:
        return decode(media, max_pixels=self.max_pixels)

    # --- add -----------------------------------------------------------------------------------

    def add(
        self,
        media: MediaInput,
        metadata: dict[str, Any] | None = None,
        task_id: str | None = None,
        *,
        replace: bool = False,
    ) -> AddResult:
        """Add one image. Returns its ``task_id`` (generated when not given).

        Nothing is written unless the whole input decodes and embeds.
        """
        task_id = _check_task_id(task_id) if task_id is not None else _new_task_id()
        metadata = _check_metadata(metadata)
        exists = self._exists(task_id)
        if exists and not replace:
            raise TaskExistsError(f"task_id {task_id!r} is already in the index (pass replace=True to overwrite)")
        (embedded,) = self._embed([self._decode(media)])
        return self._write(task_id, embedded, metadata, replaced=exists)

    def add_many(
        self,
        media: Iterable[MediaInput] | MediaInput,
        metadata: dict[str, Any] | Sequence[dict[str, Any] | None] | None = None,
        task_ids: Sequence[str] | None = None,
        *,
        replace: bool = False,
    ) -> AddManyResult:
        """Add many inputs (directories are expanded recursively), embedding them in batches.

        ``metadata`` is one dict for all, or one per input. A bad input does not stop the others:
        it is reported in ``failed`` and nothing of it is written.
        """
        sources = expand_sources(media)
        metas = _per_item(metadata, len(sources), "metadata")
        ids = list(task_ids) if task_ids is not None else [None] * len(sources)
        if len(ids) != len(sources):
            raise InvalidRequestError(f"{len(ids)} task_ids for {len(sources)} inputs")
        added: list[AddResult] = []
        failed: list[AddFailure] = []
        pending: list[tuple[str, dict[str, Any], bool, DecodedMedia]] = []
        seen: set[str] = set()

        def flush() -> None:
            for (tid, meta, existed, _), emb in zip(pending, self._embed([p[3] for p in pending])):
                added.append(self._write(tid, emb, meta, replaced=existed))
            pending.clear()

        bar = self._progress_bar(len(sources), "embedding")
        try:
            for item, meta, tid in zip(sources, metas, ids):
                try:
                    given = tid is not None
                    tid = _check_task_id(tid) if given else _new_task_id()
                    meta = _check_metadata(meta)
                    if tid in seen:
                        raise TaskExistsError(f"task_id {tid!r} is given twice in this batch")
                    existed = given and self._exists(tid)  # a fresh uuid4 cannot exist
                    if existed and not replace:
                        raise TaskExistsError(f"task_id {tid!r} is already in the index (pass replace=True)")
                    pending.append((tid, meta, existed, self._decode(item)))
                    seen.add(tid)
                except (MediaError, TaskExistsError, InvalidRequestError) as exc:
                    failed.append(AddFailure(source=describe(item), error=type(exc).__name__, message=str(exc)))
                if sum(len(p[3].frames) for p in pending) >= self.batch_size:
                    flush()
                bar.update(1)
            if pending:
                flush()
        finally:
            bar.close()
        return AddManyResult(added=added, failed=failed)

    def _write(self, task_id: str, emb: _Embedded, metadata: dict[str, Any], *, replaced: bool) -> AddResult:
        rows = [
            FrameRow(
                task_id=task_id,
                frame=i,
                media_type=emb.media.media_type,
                timestamp=frame.timestamp,
                vector=emb.vectors[i],
                pdq=emb.pdqs[i],
                source=emb.media.source,
                metadata=metadata,
            )
            for i, frame in enumerate(emb.media.frames)
        ]
        if replaced:
            self._store.delete(task_id)
        try:
            self._store.insert(rows)
        except BaseException:
            self._store.delete(task_id)  # never leave part of an asset behind
            raise
        return AddResult(
            task_id=task_id, source=emb.media.source, media_type=emb.media.media_type,
            frames=len(rows), replaced=replaced,
        )

    def _exists(self, task_id: str) -> bool:
        return bool(self._store.metadata([task_id]))

    # --- query ---------------------------------------------------------------------------------

    def query(self, media: MediaInput, top_k: int = DEFAULT_TOP_K, threshold: float | None = None) -> QueryResult:
        """Which indexed assets does ``media`` copy? Up to ``top_k`` assets, best first, each with
        its matches at or above ``threshold`` (default :data:`DEFAULT_THRESHOLD`)."""
        if top_k < 1:
            raise InvalidRequestError(f"top_k must be at least 1, got {top_k}")
        threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        if not 0.0 <= threshold <= 1.0:
            raise InvalidRequestError(f"threshold must be in [0, 1], got {threshold}")
        (emb,) = self._embed([self._decode(media)])
        hits = self._store.search(emb.vectors, limit=top_k)
        ranked = aggregate(
            emb.timestamps, emb.pdqs, hits, self.descriptor.calibration, threshold=threshold, top_k=top_k
        )
        metadata = self._store.metadata([a.task_id for a in ranked])
        output = [
            AssetMatch(
                task_id=a.task_id,
                metadata=metadata.get(a.task_id, {}),
                media_type=a.media_type,
                score=a.score,
                matches=sorted(a.matches.values(), key=lambda m: m.query_timestamp),
            )
            for a in ranked
        ]
        return QueryResult(source=emb.media.source, output=output)

    # --- remove / get / count / info -------------------------------------------------------------

    def remove(self, task_id: str) -> RemoveResult:
        """Delete every frame of ``task_id``; later queries never return it."""
        task_id = _check_task_id(task_id)
        n = self._store.delete(task_id)
        if n == 0:
            raise TaskNotFoundError(f"task_id {task_id!r} is not in the index")
        return RemoveResult(task_id=task_id, removed_frames=n)

    def get(self, task_id: str) -> AssetInfo:
        task_id = _check_task_id(task_id)
        frames = self._store.frames(task_id)
        if not frames:
            raise TaskNotFoundError(f"task_id {task_id!r} is not in the index")
        head = frames[0]
        return AssetInfo(
            task_id=task_id,
            media_type=head.media_type,
            source=head.source,
            metadata=head.metadata,
            frames=[FrameInfo(timestamp=f.timestamp, pdq=f.pdq) for f in frames],
        )

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
