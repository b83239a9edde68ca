"""The one small protocol between the core and a vector store.

A store keeps two things per vecsim collection:

- **frame rows**: one per kept frame of an asset (its vector, PDQ hash, timestamp and the time
  span it covers, and where the collection keeps them its packed local features, read back by key
  with :meth:`StoreReader.local_features`, never by a search), written under a *generation* id;
- **asset records**: one per visible asset (``task_id``, caller metadata, media type, source,
  duration, and the generation that is committed).

An asset is visible only through its record, and a record is written after all of its frames:
that single write is the commit. A query drops hits whose generation is not the committed one, so
an add that fails or is killed half-way leaves no partial asset visible, and ``replace=True``
switches from the old frames to the new ones at once.

**Projects.** A store object is scoped to one project (:attr:`StoreReader.project`, ``""`` by
default): everything it reads and writes is confined to that project's rows, in the engine (a
filter on every search, scan, count and delete; the project in every key), so two projects may
hold the same ``task_id`` and never see each other's assets. :meth:`StoreReader.for_project` gives
a view of the same open collection scoped to another project (``docs/tenancy.md``).

The core never imports an engine's client;
to add a backend, write one module in ``adapters/`` implementing :class:`VectorStore` and register
its URI scheme in ``adapters/__init__.py``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from .index_config import IndexConfig, index_config_from_dict

#: The largest packed local-features blob a frame row may carry (:attr:`FrameRow.local`).
MAX_LOCAL_BYTES = 12_288


@dataclass(frozen=True)
class CollectionSpec:
    """What a collection was built with; saved with the collection and checked on every open."""

    descriptor_name: str
    descriptor_version: str
    dim: int
    index: IndexConfig
    #: The format of the packed local features stored with every frame row (e.g. ``"orb-v1"``), or
    #: ``""``: the collection stores none. Fixed when the collection is created (a store that opens
    #: an existing collection reports the stored value, whatever its create spec says).
    local_features: str = ""
    schema_version: int = 2
    #: Whether the collection isolates projects (tenants): every frame row and asset record carries
    #: a ``project`` field and keys start with ``"<project>/"`` (``docs/tenancy.md``). Collections
    #: made by vecsim < 0.4 have none and hold only the default project ``""``. Fixed when the
    #: collection is created (the stored value wins on open); ``CustomIndex`` creates every new
    #: collection with it.
    projects: bool = False

    def to_json(self) -> str:
        d = asdict(self)
        d["index"] = self.index.model_dump(mode="json")
        if not self.local_features:  # the spec of a collection without them reads as before
            del d["local_features"]
        if not self.projects:  # likewise: an old collection's spec is byte for byte what it was
            del d["projects"]
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> CollectionSpec:
        d = json.loads(raw)
        d["index"] = index_config_from_dict(d["index"])
        return cls(**d)


@dataclass
class FrameRow:
    """One kept frame of an asset, to write."""

    task_id: str
    generation: str
    frame: int  # 0-based position among the asset's stored rows
    timestamp: float  # seconds from the start of the asset
    span_end: float  # the frame stands for [timestamp, span_end): until the next kept frame
    vector: np.ndarray  # float32, L2-normalised, shape (dim,)
    pdq: str  # 64 hex chars
    #: Packed local features of the frame (opaque to the store; at most :data:`MAX_LOCAL_BYTES`),
    #: or ``b""``: none. Stored only where the collection's ``spec.local_features`` names a format.
    local: bytes = b""


@dataclass(frozen=True)
class AssetRecord:
    """The visible face of an asset; writing it commits ``generation``."""

    task_id: str
    generation: str
    media_type: str  # "image" or "video"
    source: str
    duration: float  # seconds (0 for an image)
    frames: int  # stored frame rows
    metadata: dict[str, Any] = field(default_factory=dict)
    #: sha256 (hex) of the media's bytes, where the writer knew them (``vecsim ingest`` sets it to
    #: skip unchanged assets on a rerun); "" when not known or not stored (a Milvus collection
    #: created before the field existed).
    digest: str = ""


@dataclass(frozen=True)
class Hit:
    """One search result: the best-scoring frame of one asset for one query vector."""

    task_id: str
    generation: str
    frame: int
    timestamp: float
    span_end: float
    pdq: str
    raw_score: float  # cosine / inner product, higher is closer


@dataclass(frozen=True)
class StoredFrame:
    frame: int
    timestamp: float
    span_end: float
    pdq: str


class StoreReader(Protocol):
    """The reading half of a :class:`VectorStore`: what a query, a benchmark or a report needs,
    and nothing that writes (what :attr:`CustomIndex.store <vecsim.CustomIndex.store>` gives)."""

    uri: str
    engine: str  # e.g. "milvus-lite", "milvus"
    engine_version: str
    collection: str
    spec: CollectionSpec  # as stored with the collection
    #: The project every read and write of this store object is confined to ("" = the default).
    project: str

    def for_project(self, project: str) -> StoreReader:
        """A view of this store's collection scoped to ``project``, on the same engine connection
        (no new connection, cheap, safe to call from many threads). Closing the view does nothing:
        the store it came from owns the connection. A project name that
        :func:`~vecsim.validate.check_project` refuses is an
        :class:`~vecsim.errors.InvalidRequestError`; a project other than ``""`` on a collection
        without project isolation (``spec.projects`` false: made by vecsim < 0.4) is an
        :class:`~vecsim.errors.IndexConfigError`."""

    def search(self, vectors: np.ndarray, limit: int, per_asset: int = 1) -> list[list[Hit]]:
        """For each query vector, the ``per_asset`` best frames of each of the ``limit`` closest
        assets (any generation). An asset with many near-identical frames must not crowd others out."""

    def assets(self, task_ids: list[str]) -> dict[str, AssetRecord]:
        """The records of those of ``task_ids`` that are visible."""

    def list_assets(self, limit: int, after: str | None = None) -> list[AssetRecord]:
        """One page of this store's project's visible asset records: up to ``limit`` of them, by
        ``task_id`` ascending (Unicode code point order, which is UTF-8 byte order and Python's
        ``str`` order), each ``task_id`` strictly greater than ``after`` (``None``: from the first).
        Keyset pagination: pass the last ``task_id`` of a page as ``after`` to get the next; a
        record committed or removed meanwhile is or is not on a later page, but none is repeated
        or skipped. Reads asset records only, never frame rows. ``limit`` < 1 gives ``[]``."""

    def frames(self, task_id: str, generation: str) -> list[StoredFrame]:
        """The frame rows of one generation of an asset, in frame order."""

    def generations(self) -> tuple[dict[str, str], dict[tuple[str, str], int]]:
        """A full scan, for maintenance: the committed generation of every asset, and the number
        of frame rows of every ``(task_id, generation)`` present."""

    def count(self) -> tuple[int, int]:
        """``(visible assets, frame rows)``; frame rows include any of an add in progress."""

    def local_features(self, keys: Sequence[tuple[str, str, int]]) -> dict[tuple[str, str, int], bytes]:
        """The packed local features of the frame rows ``(task_id, generation, frame)`` among
        ``keys`` that have them, in one engine call (or a few, for very many keys); rows without
        any, or missing, are absent from the dict."""


class VectorStore(StoreReader, Protocol):
    """A vecsim collection (frame rows + asset records) in one engine, scoped to one project:
    :meth:`insert_frames` and :meth:`commit_assets` stamp :attr:`project` into every row and record,
    the deletes touch only its rows."""

    def for_project(self, project: str) -> VectorStore:
        """:meth:`StoreReader.for_project`, writable."""

    def insert_frames(self, rows: list[FrameRow]) -> None:
        """Write frame rows (invisible to queries until their generation is committed), with their
        :attr:`FrameRow.local` where ``spec.local_features`` is set (ignored where it is ``""``). A
        row whose ``local`` is over :data:`MAX_LOCAL_BYTES` is an
        :class:`~vecsim.errors.InvalidRequestError`, raised before any row is written."""

    def commit_asset(self, record: AssetRecord) -> None:
        """Write (or overwrite) the asset record: from now on queries see ``record.generation``.
        Its frame rows are durable first: a kill after this returns loses nothing of the asset."""

    def commit_assets(self, records: Sequence[AssetRecord]) -> None:
        """:meth:`commit_asset` for many assets in one engine write (what a bulk load calls once per
        group of assets). Each record is still its own commit: a kill part-way leaves every asset
        either committed whole or invisible, never half."""

    def delete_asset(self, task_id: str) -> AssetRecord | None:
        """Delete the asset record (the asset disappears from queries); returns it, or None."""

    def delete_frames(self, task_id: str, keep_generation: str | None = None) -> int:
        """Delete the frame rows of ``task_id`` except those of ``keep_generation``; returns how many."""

    def build_index(self) -> None:
        """Finish building the vector index over everything written so far (a Milvus server:
        flush and wait for the index build; Qdrant: wait for the optimizers). Searches are right
        without it, only slower until the engine catches up; call it after a bulk load."""

    def close(self) -> None: ...


class ReadOnlyStore:
    """A read-only view of a store: the :class:`StoreReader` methods and attributes pass through,
    the writing ones do not exist. It does not own the store (closing is its owner's job)."""

    __slots__ = ("_store",)

    def __init__(self, store: StoreReader):
        self._store = store

    @property
    def uri(self) -> str:
        return self._store.uri

    @property
    def engine(self) -> str:
        return self._store.engine

    @property
    def engine_version(self) -> str:
        return self._store.engine_version

    @property
    def collection(self) -> str:
        return self._store.collection

    @property
    def spec(self) -> CollectionSpec:
        return self._store.spec

    @property
    def project(self) -> str:
        return self._store.project

    def for_project(self, project: str) -> ReadOnlyStore:
        """A read-only view of the same collection scoped to ``project``."""
        return ReadOnlyStore(self._store.for_project(project))

    def search(self, vectors: np.ndarray, limit: int, per_asset: int = 1) -> list[list[Hit]]:
        return self._store.search(vectors, limit=limit, per_asset=per_asset)

    def assets(self, task_ids: list[str]) -> dict[str, AssetRecord]:
        return self._store.assets(task_ids)

    def list_assets(self, limit: int, after: str | None = None) -> list[AssetRecord]:
        return self._store.list_assets(limit, after)

    def frames(self, task_id: str, generation: str) -> list[StoredFrame]:
        return self._store.frames(task_id, generation)

    def generations(self) -> tuple[dict[str, str], dict[tuple[str, str], int]]:
        return self._store.generations()

    def count(self) -> tuple[int, int]:
        return self._store.count()

    def local_features(self, keys: Sequence[tuple[str, str, int]]) -> dict[tuple[str, str, int], bytes]:
        return self._store.local_features(keys)

    def __repr__(self) -> str:
        scope = f", project {self.project!r}" if self.project else ""
        return f"ReadOnlyStore({self.engine} {self.collection!r} at {self.uri}{scope})"
