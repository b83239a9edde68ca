"""What every adapter shares: row keys, rows -> store records, project scoping (keys, views and
the refusal of a project an old collection cannot hold), the generations scan, collection names,
the Qdrant index layout (used by ``qdrant.py`` and ``qdrant_edge.py``) and the one error boundary
between an engine and the core.

Nothing here imports an engine's client; the adapters pass their engine's model classes in where
one is needed.
"""

from __future__ import annotations

import base64
import binascii
import copy
import heapq
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np

from vecsim.errors import IndexConfigError, InvalidRequestError, StoreError, StoreUnavailableError, VecsimError
from vecsim.index_config import IndexConfig
from vecsim.store import MAX_LOCAL_BYTES, AssetRecord, CollectionSpec, FrameRow, Hit, StoredFrame
from vecsim.validate import DEFAULT_PROJECT, MAX_PROJECT_LENGTH, check_project

T = TypeVar("T")

#: The payload fields of a frame row, in every engine.
FRAME_FIELDS = ["task_id", "generation", "frame", "timestamp", "span_end", "pdq"]
#: The fields of an asset record, in every engine.
ASSET_FIELDS = ["task_id", "generation", "media_type", "source", "duration", "frames", "metadata"]
#: The record's content digest (``AssetRecord.digest``): a field of its own, so that a Milvus
#: collection made before it existed still opens (its records read back with digest "").
DIGEST_FIELD = "digest"
#: The field (Milvus) / payload key (Qdrant) of a frame row's packed local features, base64
#: (ASCII): only in a collection whose spec names a ``local_features`` format, and never among the
#: fields a search, ``frames`` or a scan fetches (read by key: ``local_features``).
LOCAL_FIELD = "local"
#: Its largest value: the base64 of :data:`~vecsim.store.MAX_LOCAL_BYTES` bytes (16 384 characters).
LOCAL_FIELD_MAX_CHARS = 4 * ((MAX_LOCAL_BYTES + 2) // 3)
#: The field (Milvus) / payload key (Qdrant) holding the project of a frame row and of an asset
#: record, in a collection with projects (``CollectionSpec.projects``); absent in one without.
PROJECT_FIELD = "project"
PROJECT_FIELD_MAX_CHARS = MAX_PROJECT_LENGTH

# --- keys and rows -----------------------------------------------------------------------------
#
# Keys take ``project``: a str (``""`` included) in a collection with projects, where every key
# starts with ``"<project>/"``, or None in a collection without (made by vecsim < 0.4), whose keys
# stay exactly as that version wrote them. A project name cannot hold ``/``
# (:func:`~vecsim.validate.check_project`), so ``"<project>/<task_id>"`` is unambiguous even
# where the task_id holds one.


def asset_key(task_id: str, project: str | None = None) -> str:
    """The key of an asset record: ``"<project>/<task_id>"`` (``"/<task_id>"`` for the default
    project), or the bare ``task_id`` in a collection without projects (``project=None``). Milvus's
    primary key of the record; the Qdrant point id is its UUID5, :func:`point_id`."""
    return task_id if project is None else f"{project}/{task_id}"


def frame_key(task_id: str, generation: str, frame: int, project: str | None = None) -> str:
    """The key of one frame row: ``"<project>/<task_id>#<generation>#<frame>"``, or
    ``"<task_id>#<generation>#<frame>"`` in a collection without projects (``project=None``)
    (Milvus's primary key; the Qdrant point id is its UUID5, :func:`point_id`)."""
    return f"{asset_key(task_id, project)}#{generation}#{int(frame)}"


_NS = uuid.UUID("6f1f3c2e-3d3b-4f0e-9a43-2b1c5d0e7a11")


def point_id(key: str) -> str:
    """The Qdrant point id of a frame key or an asset key (UUID5: Qdrant ids are integers or UUIDs)."""
    return str(uuid.uuid5(_NS, key))


def frame_payload(row: FrameRow, project: str | None = None) -> dict[str, Any]:
    """The non-vector fields of a frame row, as stored (with ``project`` where it is not None)."""
    payload = {"task_id": row.task_id, "generation": row.generation, "frame": int(row.frame),
               "timestamp": float(row.timestamp), "span_end": float(row.span_end), "pdq": row.pdq}
    if project is not None:
        payload[PROJECT_FIELD] = project
    return payload


def asset_payload(record: AssetRecord, project: str | None = None) -> dict[str, Any]:
    """The fields of an asset record, as stored (with ``project`` where it is not None)."""
    payload = asdict(record)
    if project is not None:
        payload[PROJECT_FIELD] = project
    return payload


# --- projects ----------------------------------------------------------------------------------


def check_project_allowed(spec: CollectionSpec, project: str, store: Any) -> None:
    """Refuse a project other than the default on a collection without project isolation."""
    if project != DEFAULT_PROJECT and not spec.projects:
        raise IndexConfigError(
            f"collection {getattr(store, 'collection', '?')!r} at {getattr(store, 'uri', '?')} was made by vecsim "
            f"< 0.4, without project isolation: it holds only the default project \"\", not {project!r}; use a new "
            "collection for projects (docs/tenancy.md)"
        )


class ProjectScoped:
    """Project scoping, shared by every adapter's store class: the :attr:`project` a store object
    is confined to, and :meth:`for_project`, a view on the same connection.

    A view is a shallow copy of the store with another ``project`` and ``_owner`` set to the store
    that holds the connection: the adapter reaches its connection (client, shards) through
    :attr:`_root`, so a view sees the owner's close, and its own :meth:`close` must do nothing
    (:attr:`is_view`). Creating one takes no lock and does no I/O."""

    project: str = DEFAULT_PROJECT
    _owner: Any = None  # the store a view came from; None: this object owns its connection
    spec: CollectionSpec

    @property
    def _root(self) -> Any:
        return self if self._owner is None else self._owner

    @property
    def is_view(self) -> bool:
        """Whether this store object is a :meth:`for_project` view (its ``close`` does nothing)."""
        return self._owner is not None

    @property
    def _key_project(self) -> str | None:
        """The ``project`` argument of the key functions: this project, or None in a collection
        without projects (keys as vecsim < 0.4 wrote them)."""
        return self.project if self.spec.projects else None

    def _set_project(self, project: str) -> None:
        """Scope a newly opened store (its spec read) to ``project``: refused on an old
        collection unless it is the default."""
        check_project_allowed(self.spec, project, self)
        self.project = project

    def for_project(self, project: str) -> Any:
        project = check_project(project)
        check_project_allowed(self.spec, project, self)
        view = copy.copy(self)
        view.project = project
        view._owner = self._root
        return view


def check_local(rows: Iterable[FrameRow]) -> None:
    """Refuse, before anything is written, a row whose local features are not bytes or are over
    :data:`~vecsim.store.MAX_LOCAL_BYTES`."""
    for r in rows:
        local = r.local
        if not isinstance(local, (bytes, bytearray, memoryview)):
            raise InvalidRequestError(f"frame {r.frame} of {r.task_id!r}: local features must be bytes, "
                                      f"not {type(local).__name__}")
        n = local.nbytes if isinstance(local, memoryview) else len(local)
        if n > MAX_LOCAL_BYTES:
            raise InvalidRequestError(f"frame {r.frame} of {r.task_id!r}: {n} bytes of local features, more than "
                                      f"the {MAX_LOCAL_BYTES} a frame row holds")


def encode_local(local: bytes) -> str:
    """Local features as stored: base64 (ASCII); ``""`` for none."""
    return base64.b64encode(bytes(local)).decode("ascii") if local else ""


def decode_local(stored: Any, key: str = "?") -> bytes:
    """The bytes of a stored ``local`` value (``b""`` for none); a value that is not base64 (not
    one vecsim wrote) is a :class:`~vecsim.errors.StoreError`."""
    if stored is None or stored == "":
        return b""
    try:
        return base64.b64decode(stored.encode("ascii"), validate=True)
    except (AttributeError, binascii.Error, UnicodeEncodeError) as exc:
        raise StoreError(f"the stored local features of frame row {key!r} are not base64: {exc}") from exc


def local_keys(keys: Iterable[tuple[str, str, int]], project: str | None = None) -> dict[str, tuple[str, str, int]]:
    """The frame key (:func:`frame_key`, of ``project``) of each distinct ``(task_id, generation,
    frame)``, in order."""
    out: dict[str, tuple[str, str, int]] = {}
    for task_id, generation, frame in keys:
        key = (task_id, generation, int(frame))
        out.setdefault(frame_key(*key, project=project), key)
    return out


def read_local(wanted: dict[str, tuple[str, str, int]], fetch: Callable[[list[str]], Iterable[tuple[Any, Any]]],
               batch: int) -> dict[tuple[str, str, int], bytes]:
    """The ``local_features`` answer of a store that reads by id: ``wanted`` maps each id to its
    frame key (:func:`local_keys`), ``fetch(ids)`` gives ``(id, stored local value)`` pairs for a
    batch of at most ``batch`` ids; rows without local features are left out."""
    out: dict[tuple[str, str, int], bytes] = {}
    ids = list(wanted)
    for i in range(0, len(ids), batch):
        for found, stored in fetch(ids[i : i + batch]):
            key = wanted.get(str(found))
            local = decode_local(stored, str(found))
            if key is not None and local:
                out[key] = local
    return out


def batched(items: Sequence[T], size_of: Callable[[T], int], max_items: int, max_bytes: int) -> Iterator[list[T]]:
    """``items`` in consecutive batches of at most ``max_items`` and about ``max_bytes`` (as
    ``size_of`` estimates each; an item larger than that goes alone)."""
    batch: list[T] = []
    size = 0
    for item in items:
        n = size_of(item)
        if batch and (len(batch) >= max_items or size + n > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += n
    if batch:
        yield batch


def as_vector(vector: Any) -> list[float]:
    return np.asarray(vector, dtype=np.float32).tolist()


def hit_from(row: Mapping[str, Any], score: float) -> Hit:
    """A :class:`~vecsim.store.Hit` from a frame row's fields and its score."""
    return Hit(task_id=row["task_id"], generation=row["generation"], frame=int(row["frame"]),
               timestamp=float(row["timestamp"]), span_end=float(row["span_end"]), pdq=row["pdq"],
               raw_score=float(score))


def stored_frames(rows: Iterable[Mapping[str, Any]]) -> list[StoredFrame]:
    """:class:`~vecsim.store.StoredFrame` s from frame rows, in frame order."""
    return [StoredFrame(frame=int(r["frame"]), timestamp=float(r["timestamp"]), span_end=float(r["span_end"]),
                        pdq=r["pdq"]) for r in sorted(rows, key=lambda r: int(r["frame"]))]


def asset_record(row: Mapping[str, Any]) -> AssetRecord:
    """An :class:`~vecsim.store.AssetRecord` from a stored record's fields."""
    return AssetRecord(task_id=row["task_id"], generation=row["generation"], media_type=row["media_type"],
                       source=row["source"], duration=float(row["duration"]), frames=int(row["frames"]),
                       metadata=row.get("metadata") or {}, digest=row.get("digest") or "")


# --- pages of asset records (StoreReader.list_assets) -------------------------------------------


def smallest_after(task_ids: Iterable[str], limit: int, after: str | None) -> list[str]:
    """The ``limit`` smallest of ``task_ids`` greater than ``after`` (all, for None), ascending:
    the page of :meth:`~vecsim.store.StoreReader.list_assets` for an engine that cannot order or
    range-filter strings itself (Qdrant), chosen in one pass over a scan of the project's record
    keys, keeping at most ``limit`` of them in memory."""
    if limit < 1:
        return []
    return heapq.nsmallest(limit, (t for t in task_ids if after is None or t > after))


def page_of(task_ids: Iterable[str], limit: int, after: str | None,
            read: Callable[[list[str]], dict[str, AssetRecord]]) -> list[AssetRecord]:
    """The page :func:`smallest_after` picks from a scan of ``task_ids``, its records read with
    ``read`` (a record removed since the scan is no longer visible: left out). For Qdrant, which
    orders a scroll by point id (a UUID5 here: no order of task_ids) or by a numeric payload, and
    filters ranges of numbers only: the scan reads asset records only (one per asset, never frame
    rows), so a page costs in proportion to the project's assets, not to the page."""
    ids = smallest_after(task_ids, limit, after)
    found = read(ids)
    return [found[t] for t in ids if t in found]


def check_page(records: Sequence[AssetRecord], after: str | None, store: Any) -> list[AssetRecord]:
    """``records`` if they are a correct page after ``after``: task_ids strictly increasing and all
    greater than ``after``. An engine that ordered them otherwise would make pagination skip
    records, so that is a :class:`~vecsim.errors.StoreError`, never a page."""
    previous = after
    for r in records:
        if previous is not None and not r.task_id > previous:
            raise StoreError(
                f"listing the asset records of collection {getattr(store, 'collection', '?')!r} at "
                f"{getattr(store, 'uri', '?')}: the engine returned {r.task_id!r} after {previous!r}, out of "
                "task_id order (a page would skip records)"
            )
        previous = r.task_id
    return list(records)


def scan_generations(
    asset_rows: Iterable[Mapping[str, Any]], frame_rows: Iterable[Mapping[str, Any]]
) -> tuple[dict[str, str], dict[tuple[str, str], int]]:
    """:meth:`VectorStore.generations` from a scan of the asset records and one of the frame rows
    (each row with at least ``task_id`` and ``generation``)."""
    committed = {r["task_id"]: r["generation"] for r in asset_rows}
    present: dict[tuple[str, str], int] = {}
    for r in frame_rows:
        key = (r["task_id"], r["generation"])
        present[key] = present.get(key, 0) + 1
    return committed, present


# --- collection names --------------------------------------------------------------------------

#: Milvus: letters, digits and _, not starting with a digit.
MILVUS_COLLECTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
#: Qdrant (and a Qdrant Edge folder name): letters, digits, _ . -, not starting with . or -.
QDRANT_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$")


def check_collection_name(name: str, pattern: re.Pattern[str], rule: str = "") -> None:
    if not isinstance(name, str) or not pattern.match(name):
        raise IndexConfigError(f"invalid collection name {name!r}" + (f": {rule}" if rule else ""))


# --- Qdrant index layout (qdrant.py and qdrant_edge.py) ----------------------------------------

PQ_COMPRESSIONS = (4, 8, 16, 32, 64)
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def pdq_bits(pdq: str) -> list[int]:
    """The 256 bits of a hex PDQ hash, most significant first, as 0/1 (the Manhattan distance
    between two = their Hamming distance)."""
    if not isinstance(pdq, str) or not _HEX64.match(pdq):
        raise StoreError(f"PDQ hash {pdq!r} is not 64 hex characters")
    return np.unpackbits(np.frombuffer(bytes.fromhex(pdq), dtype=np.uint8)).tolist()


def pq_compression(index: IndexConfig, dim: int) -> int:
    """Qdrant's product-quantization compression ratio for ``HNSW_PQ`` (``m`` bytes per vector)."""
    ratio, rest = divmod(4 * dim, index.m)  # type: ignore[union-attr]
    if rest or ratio not in PQ_COMPRESSIONS:
        valid = ", ".join(str(4 * dim // c) for c in PQ_COMPRESSIONS if (4 * dim) % c == 0)
        raise IndexConfigError(f"HNSW_PQ on Qdrant: m={index.m} bytes per vector is not a Qdrant compression "  # type: ignore[union-attr]
                               f"of a {dim}-d vector; choose m in {valid}")
    return ratio


@dataclass(frozen=True)
class QdrantLayout:
    """How a :class:`~vecsim.store.CollectionSpec` maps onto Qdrant's embedding vector, whatever
    the client (qdrant-client's models or qdrant-edge's classes build it)."""

    dim: int
    distance: str  # "COSINE" or "DOT"
    hnsw: tuple[int, int] | None  # (m, ef_construct); None: FLAT, exact search, no graph
    scalar_int8: bool  # HNSW_SQ8: int8 scalar quantization
    pq_ratio: int | None  # HNSW_PQ: product quantization, compression x this

    @property
    def compressed(self) -> bool:
        """Quantized: the quantized vectors stay in RAM, the originals (for re-scoring) go on disk."""
        return self.scalar_int8 or self.pq_ratio is not None


def qdrant_layout(spec: CollectionSpec) -> QdrantLayout:
    index = spec.index
    kind = str(index.type)
    metric = getattr(index.metric, "value", str(index.metric))
    return QdrantLayout(
        dim=spec.dim,
        distance="COSINE" if metric == "COSINE" else "DOT",
        hnsw=(int(index.M), int(index.efConstruction)) if kind.startswith("HNSW") else None,  # type: ignore[union-attr]
        scalar_int8=kind == "HNSW_SQ8",
        pq_ratio=pq_compression(index, spec.dim) if kind == "HNSW_PQ" else None,
    )


def qdrant_search_params(index: IndexConfig, models: Any, ef: int | None = None) -> Any:
    """The search parameters of a config; ``models`` is ``qdrant_client.models`` or the
    ``qdrant_edge`` module (both have ``SearchParams`` and ``QuantizationSearchParams``).
    ``ef``: the graph's search breadth instead of the config's (an HNSW type)."""
    kind = str(index.type)
    if kind == "FLAT":
        return models.SearchParams(exact=True)
    ef = int(ef or index.search_params()["ef"])
    if kind in ("HNSW_SQ8", "HNSW_PQ"):
        rescore = bool(index.rerank)  # type: ignore[union-attr]
        oversampling = float(index.oversampling) if rescore else None  # type: ignore[union-attr]
        return models.SearchParams(hnsw_ef=ef, quantization=models.QuantizationSearchParams(
            rescore=rescore, oversampling=oversampling))
    return models.SearchParams(hnsw_ef=ef)


# --- the error boundary ------------------------------------------------------------------------


#: Codes of pymilvus's ``MilvusException`` that mean "not now" rather than "refused": 2 is
#: pymilvus's CONNECT_FAILED (it cannot reach the server, also while it reconnects) and the
#: server's ErrServiceUnavailable; 101 is ErrCollectionNotLoaded, what a restarted Milvus answers
#: until it has loaded the collection again by itself (measured: 5 to 35 s on 2.3.5).
MILVUS_UNAVAILABLE_CODES = (2, 101)
_GRPC_UNAVAILABLE = ("UNAVAILABLE", "DEADLINE_EXCEEDED")


def _unavailable(exc: BaseException) -> bool:
    """Whether an engine error says the engine cannot be reached, did not answer in time or cannot
    serve yet (vs. it refused the operation)."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    name = type(exc).__name__
    if name in ("MilvusUnavailableException", "ResponseHandlingException", "ConnectError", "ConnectTimeout",
                "ReadTimeout", "WriteTimeout", "PoolTimeout"):
        return True
    code = getattr(exc, "code", None)
    if callable(code):  # grpc.RpcError
        try:
            return getattr(code(), "name", "") in _GRPC_UNAVAILABLE
        except Exception:
            return False
    if name == "MilvusException":  # its code: pymilvus's or the server's number, or a gRPC status after retries
        return code in MILVUS_UNAVAILABLE_CODES or getattr(code, "name", "") in _GRPC_UNAVAILABLE
    return False


@contextmanager
def engine_errors(what: str, store: Any) -> Iterator[None]:
    """The boundary between an engine and the core: any exception an engine call raises becomes a
    :class:`~vecsim.errors.StoreError` naming the operation, collection and URI, with the original
    as ``__cause__``; vecsim's own errors pass through untouched.

    Engines raise many types (pymilvus ``MilvusException``, ``grpc.RpcError``, qdrant-client's
    ``UnexpectedResponse`` / ``ResponseHandlingException``, qdrant-edge's errors, which are plain
    ``Exception`` s from Rust, ``OSError``, a ``RecursionError`` serialising deeply nested metadata,
    an ``OverflowError`` on an integer beyond 64 bits), so everything but ``VecsimError`` is mapped;
    a connection failure becomes :class:`~vecsim.errors.StoreUnavailableError`.
    """
    try:
        yield
    except VecsimError:
        raise
    except Exception as exc:
        cls = StoreUnavailableError if _unavailable(exc) else StoreError
        collection = getattr(store, "collection", "?")
        uri = getattr(store, "uri", "?")
        raise cls(f"{what} in collection {collection!r} at {uri} failed: {type(exc).__name__}: {exc}") from exc


def closed_error(store: Any) -> StoreError:
    return StoreError(f"collection {store.collection!r} at {store.uri} is closed")
