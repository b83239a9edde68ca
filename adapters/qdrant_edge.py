"""Qdrant Edge adapter (``qdrant-edge-py``): Qdrant's storage engine in-process, for ``qdrant-edge:PATH``.

Unlike the qdrant-client local mode (a pure-Python brute-force stand-in), Qdrant Edge runs the real
engine on a local folder: segments, a write-ahead log, payload indexes, HNSW graphs and quantization.
There is no server, no collection and no group-by API, so this adapter builds those itself.

Layout: a vecsim collection ``NAME`` is the folder ``PATH/NAME/`` holding two Edge shards and a file:

- ``frames/``: one point per kept frame (point id = UUID5 of ``"<task_id>#<generation>#<frame>"``, the
  same ids as ``adapters/qdrant.py``), with two named vectors: ``emb`` (the embedding; COSINE ->
  ``Cosine``, IP -> ``Dot``) and ``pdq`` (the 256-bit PDQ hash as 256 ``uint8`` values of 0/1 with
  ``Manhattan`` distance, which on bits is the Hamming distance; kept on disk (``Memory.Cold``) and
  never graph-indexed, see :meth:`QdrantEdgeStore.search_pdq`). Payload ``task_id``, ``generation``,
  ``frame``, ``timestamp``, ``span_end``, ``pdq`` (hex, as the other adapters), and in a collection
  created with ``spec.local_features`` ``local``: the frame's packed local features as base64,
  absent for none, read only by point id (:meth:`QdrantEdgeStore.local_features`), never by a
  search or a scroll; keyword payload indexes on ``task_id`` and ``generation``;
- ``assets/``: one vector-less point per visible asset (id = UUID5 of the task_id, payload = the
  :class:`~vecsim.store.AssetRecord`); Edge needs a vector definition, so it declares an unused
  sparse vector;

  in a collection with projects (``spec.projects``, every collection vecsim >= 0.4 creates), the
  points of both shards also carry the payload ``project``, with a keyword payload index made with
  ``is_tenant=True`` (Qdrant then keeps each project's points together in storage and plans a
  filtered search per tenant), the ids are the UUID5 of the project-prefixed keys
  (``_common.frame_key`` / ``asset_key``), and every query, scroll, count and delete by filter of a
  store object is filtered to its project (``docs/tenancy.md``). The HNSW types build one graph
  per project (``m=0, payload_m=M``, Qdrant's multitenancy layout) instead of one over all rows:
  every search of such a collection is filtered to one project, and on a global graph a filtered
  search whose neighbourhood was full of another project's rows found too few of its own; a project
  smaller than ``full_scan_threshold_kb`` gets no graph and is searched exactly, through the index;
- ``vecsim_spec.json``: the :class:`~vecsim.store.CollectionSpec`, checked on every open.

A collection is built in a hidden sibling folder and renamed into place, so a creation that dies
half-way leaves no half-made collection (at worst a ``.NAME.creating-*`` folder to delete).

Writes are applied synchronously (and logged to the shard's WAL, which a later open replays if the
process died before :meth:`close`), so the next read sees them. A shard folder can be open in one
process at a time (the engine locks its WAL): within a process every store on the same collection
shares one pair of open shards (:class:`_Shards`, reference-counted; the last :meth:`close` flushes
and closes them), and another process is refused with a :class:`~vecsim.errors.StoreError`.

Memory: the embedding vectors (unquantized), the payloads and the id trackers of both shards use
Qdrant's ``Cached`` tier: memory mapped and warmed into the page cache when the shard opens, so the
first searches do not wait on the disk (at 100 000 rows a cold search took 8 ms, a warm one 2 ms;
at 1 M rows, reading the records of a query's assets from a cold assets shard took 150 ms).

Index configs: ``FLAT`` is exact search (``SearchParams(exact=True)``, no graph is built).
``HNSW`` maps to the shard's HNSW (``M`` -> ``m``, ``efConstruction`` -> ``ef_construct``, search
``ef`` -> ``hnsw_ef``); ``HNSW_SQ8`` adds int8 scalar quantization and ``HNSW_PQ`` product
quantization (compression ``4 * dim / m``: 4, 8, 16, 32 or 64),
the quantized vectors pinned in RAM and the originals on disk, searched with
``QuantizationSearchParams(rescore=rerank, oversampling)``. Metrics: ``COSINE`` and ``IP``. IVF
types are Milvus indexes and are refused with the equivalent to use.

HNSW is built by ``EdgeShard.optimize()``, never in the background: the engine holds Python's
lock while it builds, so a background thread would freeze the process all the same. Until then
(and for rows added since) segments are searched by brute force, which is exact, so results are
always correct, only slower. A bulk load (``CustomIndex.add_many``) calls :meth:`build_index` once
at the end (measured on 2 cores, 256-d, M=16, efConstruction=100: 24 s for 100 000 rows, 7.3 min
to go from 100 000 to 1 000 000). For the HNSW types, :meth:`search` also calls :meth:`optimize`
first when at least ``auto_optimize`` rows (default 20 000) were written since the last
optimization (or were found unindexed at open), so that assets added one by one do not leave an
ever larger brute-force part; ``auto_optimize=None`` builds only when asked. Segments smaller than
``indexing_threshold_kb`` (Qdrant default 10 000 KB) are left unindexed by the engine, and a segment
smaller than ``full_scan_threshold_kb`` (default 10 000 KB) is searched by brute force even when
indexed.

Grouping: with no group-by API, :meth:`search` asks for the best ``limit * per_asset * OVERSAMPLE``
rows of every query vector in one ``query_batch`` (at most ``MAX_FETCH``) and groups them by
``task_id`` here: an asset's group is its best rows among those fetched, up to ``per_asset``, best
first; groups come best asset first. Only when a fetch held fewer than ``limit`` assets while the
shard has more rows (one asset's near-identical frames filled it) does it fetch again for that
query vector, excluding the assets already seen by a payload filter, twice as deep each time (at
most ``MAX_ROUNDS`` fetches): an asset cannot crowd the others out. With exact search the assets
and each group's frames are exactly numpy's (the tests compare). An HNSW search costs
``ef = max(hnsw_ef, fetched)``; ``QdrantEdgeOptions(hnsw_ef=...)`` overrides the collection's ``ef``
for one store object.

Errors: every public method runs inside ``_common.engine_errors``, so what the engine raises (its
Rust errors, a ``RecursionError`` on deeply nested metadata, an ``OverflowError`` on an integer
beyond 64 bits) reaches the caller as a :class:`~vecsim.errors.StoreError`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vecsim.errors import IndexConfigError, StoreError
from vecsim.index_config import IndexConfig
from vecsim.store import AssetRecord, CollectionSpec, FrameRow, Hit, StoredFrame
from vecsim.validate import DEFAULT_PROJECT, check_project

from ._common import (  # same point ids, encodings and index mapping as the server adapter
    FRAME_FIELDS,
    LOCAL_FIELD,
    PROJECT_FIELD,
    QDRANT_COLLECTION_NAME,
    ProjectScoped,
    as_vector,
    asset_key,
    asset_payload,
    asset_record,
    batched,
    check_collection_name,
    check_local,
    closed_error,
    encode_local,
    engine_errors,
    frame_key,
    frame_payload,
    hit_from,
    local_keys,
    page_of,
    pdq_bits,
    point_id,
    qdrant_layout,
    qdrant_search_params,
    read_local,
    scan_generations,
    stored_frames,
)
from .options import DEFAULT_AUTO_OPTIMIZE, QdrantEdgeOptions  # noqa: F401  (re-exported)

SCHEME = "qdrant-edge:"
ENGINE = "qdrant-edge"
VECTOR = "emb"
PDQ_VECTOR = "pdq"
PDQ_BITS = 256
FRAMES_DIR = "frames"
ASSETS_DIR = "assets"
SPEC_FILE = "vecsim_spec.json"
EMBEDDED_MARKER = "vecsim-index.json"  # names the folder's engine for whoever looks at it
SCROLL_PAGE = 4096
WRITE_BATCH = 1024  # points per update operation (one WAL record)
WRITE_BYTES = 8 << 20  # and about this many bytes (estimated) per operation, local features included
OVERSAMPLE_EXACT = 4  # first fetch = limit * per_asset * this frames (FLAT)
OVERSAMPLE_HNSW = 2  # same for the HNSW types: the fetch size is also the graph's ef
MAX_FETCH = 4096  # most frames fetched per query vector per round
MAX_ROUNDS = 8  # most fetches per query vector to find its `limit` assets
HNSW_TYPES = ("HNSW", "HNSW_SQ8", "HNSW_PQ")
_FRAME_FIELDS = FRAME_FIELDS  # what a search fetches: never the local features
LOCAL_BATCH = 4096  # point ids per retrieve of local features


def _hit(p: Any) -> Hit:
    return hit_from(p.payload, p.score)


def check_supported(spec: CollectionSpec) -> None:
    """Refuse, before anything is created, an index type Qdrant Edge cannot build."""
    index = spec.index
    kind = str(index.type)
    if kind.startswith("IVF"):
        raise IndexConfigError(
            f"{kind} is a Milvus index; Qdrant indexes with HNSW (and compresses with scalar or product "
            "quantization over HNSW). Use --index-type HNSW, HNSW_SQ8 or HNSW_PQ, or FLAT for exact search."
        )
    if kind != "FLAT" and kind not in HNSW_TYPES:
        raise IndexConfigError(f"index type {kind} is not available on Qdrant Edge; use FLAT, HNSW, HNSW_SQ8 "
                               "or HNSW_PQ")
    if metric_name(index) not in ("COSINE", "IP"):
        raise IndexConfigError(f"metric {metric_name(index)} is not available on Qdrant Edge; use COSINE or IP")
    if kind == "HNSW_PQ":
        qdrant_layout(spec)  # checks m


def metric_name(index: IndexConfig) -> str:
    return getattr(index.metric, "value", str(index.metric))


class QdrantEdgeStore(ProjectScoped):
    """A :class:`~vecsim.store.VectorStore` on Qdrant Edge (``qdrant-edge:PATH``), in-process."""

    def __init__(self, uri: str, collection: str, create_spec: CollectionSpec,
                 options: QdrantEdgeOptions | None = None, project: str = DEFAULT_PROJECT):
        """``options.indexing_threshold_kb`` and ``options.full_scan_threshold_kb`` apply when the
        collection is created (they are saved with its shards); ``options.auto_optimize``
        (unindexed rows that make a search optimize first, or None for never) to this store object.
        ``project``: the project this store object is confined to (:meth:`for_project`)."""
        project = check_project(project)
        options = options or QdrantEdgeOptions()
        if importlib.util.find_spec("qdrant_edge") is None:
            raise IndexConfigError(f"{uri!r} needs qdrant-edge-py (a dependency of vecsim): pip install qdrant-edge-py")
        folder = uri.removeprefix(SCHEME)  # or a plain path: the embedded default
        if not folder or ("://" in folder):
            raise IndexConfigError(f"a Qdrant Edge URI is {SCHEME}PATH or a plain path (a folder), got {uri!r}")
        check_collection_name(collection, QDRANT_COLLECTION_NAME)
        self.options = options
        auto_optimize = options.auto_optimize
        indexing_threshold_kb = options.indexing_threshold_kb
        full_scan_threshold_kb = options.full_scan_threshold_kb
        self.uri = uri
        self.collection = collection
        self.engine = ENGINE
        self.engine_version = f"qdrant-edge-py-{importlib.metadata.version('qdrant-edge-py')}"
        self.root = Path(folder).expanduser()
        self.path = self.root / collection
        self.auto_optimize = None if auto_optimize is None else int(auto_optimize)
        self._frames: Any = None
        self._assets: Any = None
        self._shared: _Shards | None = None
        try:
            with engine_errors("open", self):
                if not self.path.exists():
                    check_supported(create_spec)
                    self._create(create_spec, indexing_threshold_kb, full_scan_threshold_kb)
                self.spec = self._read_spec()  # ours, or that of a store that created it meanwhile
                self._set_project(project)
                self._open_shards()
                self._params = self._search_params()
        except BaseException:
            try:
                self.close()
            except Exception:
                pass  # never mask the error that got us here
            raise

    def close(self) -> None:
        """Release this store's hold on the shards; the last store of the process that holds them
        flushes and closes them (another process may then open the collection). Idempotent. A
        :meth:`for_project` view holds nothing: closing it does nothing."""
        if self.is_view:
            return
        shared, self._shared = self._shared, None
        self._frames = self._assets = None
        if shared is not None:
            shared.release()

    def __enter__(self) -> QdrantEdgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- collection ----------------------------------------------------------------------------

    def _vector_params(self, spec: CollectionSpec, full_scan_threshold_kb: int) -> dict[str, Any]:
        from qdrant_edge import (
            CompressionRatio,
            Distance,
            EdgeVectorParams,
            HnswIndexConfig,
            Memory,
            ProductQuantizationConfig,
            ScalarQuantizationConfig,
            ScalarType,
            VectorStorageDatatype,
        )

        layout = qdrant_layout(spec)
        if layout.hnsw is None:  # FLAT, m=0: no graph; optimize() still merges and vacuums segments
            hnsw = HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=full_scan_threshold_kb)
        else:
            hnsw = (HnswIndexConfig(m=0, payload_m=layout.hnsw[0], ef_construct=layout.hnsw[1],
                                    full_scan_threshold=full_scan_threshold_kb) if spec.projects
                    else HnswIndexConfig(m=layout.hnsw[0], ef_construct=layout.hnsw[1],
                                         full_scan_threshold=full_scan_threshold_kb))
        quantization = None
        if layout.scalar_int8:
            quantization = ScalarQuantizationConfig(type=ScalarType.Int8, memory=Memory.Pinned)
        elif layout.pq_ratio is not None:
            ratio = getattr(CompressionRatio, f"X{layout.pq_ratio}")
            quantization = ProductQuantizationConfig(compression=ratio, memory=Memory.Pinned)
        distance = Distance.Cosine if layout.distance == "COSINE" else Distance.Dot
        return {  # compressed: the quantized vectors in RAM, the originals (for re-scoring) on disk
            VECTOR: EdgeVectorParams(size=spec.dim, distance=distance, hnsw_config=hnsw,
                                     quantization_config=quantization,
                                     # the vectors a search reads, in the page cache from the open on
                                     memory=Memory.Cold if quantization is not None else Memory.Cached),
            PDQ_VECTOR: EdgeVectorParams(
                size=PDQ_BITS, distance=Distance.Manhattan, datatype=VectorStorageDatatype.Uint8,
                memory=Memory.Cold, hnsw_config=HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10_000),
            ),
        }

    def _create(self, spec: CollectionSpec, indexing_threshold_kb: int | None, full_scan_threshold_kb: int) -> None:
        from qdrant_edge import (
            EdgeConfig,
            EdgeOptimizersConfig,
            EdgeShard,
            EdgeSparseVectorParams,
            KeywordIndexParams,
            Memory,
            PayloadSchemaType,
            UpdateOperation,
        )

        tmp = self.root / f".{self.collection}.creating-{uuid.uuid4().hex[:12]}"
        try:
            with engine_errors("create", self):
                self.root.mkdir(parents=True, exist_ok=True)
                marker = self.root / EMBEDDED_MARKER
                if not marker.exists():  # names the engine of the folder (a plain path picks by it)
                    marker.write_text(json.dumps({"engine": ENGINE}) + "\n", encoding="utf-8")
                tmp.mkdir()
                optimizers = (EdgeOptimizersConfig(indexing_threshold=int(indexing_threshold_kb))
                              if indexing_threshold_kb is not None else None)
                frames = EdgeShard.create(str(tmp / FRAMES_DIR), EdgeConfig(
                    vectors=self._vector_params(spec, int(full_scan_threshold_kb)), optimizers=optimizers,
                    payload_memory=Memory.Cached, id_tracker_memory=Memory.Cached))  # warm from the open on
                try:
                    for key in ("task_id", "generation"):
                        frames.update(UpdateOperation.create_field_index(key, PayloadSchemaType.Keyword))
                    if spec.projects:
                        frames.update(UpdateOperation.create_field_index(PROJECT_FIELD, KeywordIndexParams(is_tenant=True)))
                    frames.flush()
                finally:
                    frames.close()
                assets = EdgeShard.create(str(tmp / ASSETS_DIR),
                                          EdgeConfig(sparse_vectors={"unused": EdgeSparseVectorParams()},
                                                     payload_memory=Memory.Cached, id_tracker_memory=Memory.Cached))
                try:
                    if spec.projects:  # counts and scans of one project's records
                        assets.update(UpdateOperation.create_field_index(PROJECT_FIELD, KeywordIndexParams(is_tenant=True)))
                    assets.flush()
                finally:
                    assets.close()
                (tmp / SPEC_FILE).write_text(spec.to_json(), encoding="utf-8")
                try:
                    os.rename(tmp, self.path)  # atomic: the collection appears whole or not at all
                except OSError:
                    if not (self.path / SPEC_FILE).exists():
                        raise
                    # another store created it meanwhile: use theirs (its spec is checked on open)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _read_spec(self) -> CollectionSpec:
        try:
            raw = (self.path / SPEC_FILE).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise StoreError(f"folder {str(self.path)!r} of {self.uri} is not a vecsim collection "
                             f"(no {SPEC_FILE})") from None
        try:
            stored = json.loads(raw).get("schema_version")
        except (ValueError, AttributeError) as exc:
            raise StoreError(f"{SPEC_FILE} of collection {self.collection!r} at {self.uri} is unreadable: {exc}") from exc
        if stored != CollectionSpec.schema_version:
            raise StoreError(f"collection {self.collection!r} at {self.uri} has vecsim schema version "
                             f"{stored}; this vecsim reads {CollectionSpec.schema_version}")
        try:
            spec = CollectionSpec.from_json(raw)
        except Exception as exc:
            raise StoreError(f"{SPEC_FILE} of collection {self.collection!r} at {self.uri} is unreadable: {exc}") from exc
        check_supported(spec)
        return spec

    def _open_shards(self) -> None:
        self._shared = _Shards.acquire(self)
        self._frames, self._assets = self._shared.frames, self._shared.assets

    @property
    def _unoptimized(self) -> int:
        shared = self._root._shared
        return shared.unoptimized if shared is not None else 0

    @_unoptimized.setter
    def _unoptimized(self, value: int) -> None:
        shared = self._root._shared
        if shared is not None:
            shared.unoptimized = value

    def _search_params(self) -> Any:
        import qdrant_edge

        return qdrant_search_params(self.spec.index, qdrant_edge, self.options.hnsw_ef)

    def _shard(self, name: str) -> Any:
        shard = getattr(self._root, name)  # a view uses (and sees the close of) its owner's shards
        if shard is None:
            raise closed_error(self)
        return shard

    def optimize(self) -> bool:
        """Run the engine's optimizers now (builds HNSW / quantization over segments above the
        indexing threshold, merges small segments, vacuums deleted rows). Blocks until done;
        True if anything changed."""
        frames, assets = self._shard("_frames"), self._shard("_assets")
        with self._root._shared.optimizing, engine_errors("optimize", self):  # one optimization at a time
            changed = bool(frames.optimize())
            assets.optimize()
        self._unoptimized = 0
        return changed

    def build_index(self) -> None:
        """The protocol's "finish the index after a bulk load": :meth:`optimize`."""
        self.optimize()

    def _maybe_optimize(self) -> None:
        if (self.auto_optimize is not None and str(self.spec.index.type) in HNSW_TYPES
                and self._unoptimized >= self.auto_optimize):
            self.optimize()

    # --- writes --------------------------------------------------------------------------------

    def insert_frames(self, rows: list[FrameRow]) -> None:
        from qdrant_edge import Point, UpdateOperation

        check_local(rows)  # before anything is written
        local = bool(self.spec.local_features)
        dim = self.spec.dim
        project = self._key_project
        with engine_errors("insert", self):
            # WRITE_BATCH rows per operation, fewer where local features make them large
            for chunk in batched(rows, lambda r: 1024 + 12 * dim + (4 * len(r.local) // 3 if local else 0),
                                 WRITE_BATCH, WRITE_BYTES):
                points = [
                    Point(
                        id=point_id(frame_key(r.task_id, r.generation, r.frame, project)),
                        vector={VECTOR: as_vector(r.vector), PDQ_VECTOR: pdq_bits(r.pdq)},
                        payload={**frame_payload(r, project), LOCAL_FIELD: encode_local(r.local)}
                        if local and r.local else frame_payload(r, project),
                    )
                    for r in chunk
                ]
                self._shard("_frames").update(UpdateOperation.upsert_points(points))
                self._unoptimized += len(points)

    def commit_asset(self, record: AssetRecord) -> None:
        self.commit_assets([record])

    def commit_assets(self, records: Sequence[AssetRecord]) -> None:
        """One upsert per ``WRITE_BATCH`` records. Each record is one point, so each asset's commit
        is atomic on its own; the frames were logged to the frames shard's WAL before this call,
        so a kill after it returns loses nothing."""
        from qdrant_edge import Point, UpdateOperation

        records = list(records)
        shard = self._shard("_assets")  # a closed store says so, even for no records
        project = self._key_project
        for i in range(0, len(records), WRITE_BATCH):
            chunk = records[i : i + WRITE_BATCH]
            what = f"commit of {chunk[0].task_id!r}" if len(chunk) == 1 else f"commit of {len(chunk)} assets"
            with engine_errors(what, self):  # also: a payload the engine cannot take
                points = [Point(id=point_id(asset_key(r.task_id, project)), vector={}, payload=asset_payload(r, project))
                          for r in chunk]
                shard.update(UpdateOperation.upsert_points(points))

    def delete_asset(self, task_id: str) -> AssetRecord | None:
        from qdrant_edge import UpdateOperation

        record = self.assets([task_id]).get(task_id)
        if record is not None:
            with engine_errors(f"delete of {task_id!r}", self):
                self._shard("_assets").update(
                    UpdateOperation.delete_points([point_id(asset_key(task_id, self._key_project))]))
        return record

    def _in_project(self) -> list[Any]:
        """The filter conditions that confine a query to this store's project ([] in a collection
        without projects, whose rows all belong to the default project)."""
        from qdrant_edge import FieldCondition, MatchValue

        if not self.spec.projects:
            return []
        return [FieldCondition(key=PROJECT_FIELD, match=MatchValue(self.project))]

    def _project_filter(self) -> Any:
        """A filter to this store's project, or None (a collection without projects)."""
        from qdrant_edge import Filter

        must = self._in_project()
        return Filter(must=must) if must else None

    def _frame_filter(self, task_id: str, keep_generation: str | None = None, generation: str | None = None) -> Any:
        from qdrant_edge import FieldCondition, Filter, MatchValue

        must = [*self._in_project(), FieldCondition(key="task_id", match=MatchValue(task_id))]
        if generation is not None:
            must.append(FieldCondition(key="generation", match=MatchValue(generation)))
        must_not = None
        if keep_generation is not None:
            must_not = [FieldCondition(key="generation", match=MatchValue(keep_generation))]
        return Filter(must=must, must_not=must_not)

    def delete_frames(self, task_id: str, keep_generation: str | None = None) -> int:
        from qdrant_edge import CountRequest, UpdateOperation

        with engine_errors(f"delete of {task_id!r} frames", self):
            flt = self._frame_filter(task_id, keep_generation)
            n = self._shard("_frames").count(CountRequest(exact=True, filter=flt))
            if n:
                self._shard("_frames").update(UpdateOperation.delete_points_by_filter(flt))
        return n

    # --- reads ---------------------------------------------------------------------------------

    def search(self, vectors: np.ndarray, limit: int, per_asset: int = 1) -> list[list[Hit]]:
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(vectors) == 0:
            return []
        if limit < 1 or per_asset < 1:
            return [[] for _ in vectors]
        with engine_errors("search", self):
            self._maybe_optimize()
            return self._search_grouped(vectors, limit, per_asset)

    def _search_grouped(self, vectors: np.ndarray, limit: int, per_asset: int) -> list[list[Hit]]:
        """One over-fetching search for all query vectors, grouped by asset here; a further
        (filtered) search only for a query vector whose fetch held fewer than ``limit`` assets
        while the shard has more rows (one asset's near-identical frames filled it)."""
        from qdrant_edge import FieldCondition, Filter, MatchAny, Query, QueryRequest

        queries = [v.tolist() for v in vectors]
        in_project = self._in_project() or None  # the engine filters: other projects never fill a fetch
        oversample = OVERSAMPLE_EXACT if str(self.spec.index.type) == "FLAT" else OVERSAMPLE_HNSW
        fetch = min(MAX_FETCH, limit * per_asset * oversample)
        groups: list[dict[str, list[Hit]]] = [{} for _ in queries]  # task_id -> its frames, best first
        searching = {i: fetch for i in range(len(queries))}
        for round_ in range(MAX_ROUNDS):
            if not searching:
                break
            todo = list(searching.items())
            results = self._query_batch([
                QueryRequest(limit=ask, query=Query.Nearest(queries[i], using=VECTOR), params=self._params,
                             with_payload=_FRAME_FIELDS,
                             filter=Filter(must=in_project,
                                           must_not=[FieldCondition(key="task_id", match=MatchAny(list(groups[i])))])
                             if groups[i] else (Filter(must=in_project) if in_project else None))
                for i, ask in todo
            ])
            for (i, ask), points in zip(todo, results):
                found = groups[i]
                for p in points:  # best first: an asset's first row is its best frame
                    group = found.setdefault(p.payload["task_id"], [])
                    if len(group) < per_asset:
                        group.append(_hit(p))
                missing = limit - len(found)
                if missing <= 0 or len(points) < ask:  # enough assets, or no more rows at all
                    del searching[i]
                else:  # crowded out: fetch the assets not seen yet, twice as deep each round
                    searching[i] = min(MAX_FETCH, missing * per_asset * oversample * 2 ** (round_ + 1))
        return [[h for g in sorted(found.values(), key=lambda g: g[0].raw_score, reverse=True)[:limit] for h in g]
                for found in groups]

    def _query_batch(self, requests: list[Any]) -> list[list[Any]]:
        from qdrant_edge import QueryBatchRequest

        if not requests:
            return []
        return self._shard("_frames").query_batch(QueryBatchRequest(requests))

    def search_pdq(self, pdq: str, limit: int = 10) -> list[tuple[str, str, int, int]]:
        """Frame rows (any generation) nearest to a PDQ hash: ``(task_id, generation, frame,
        Hamming distance)``, closest first. A brute-force scan of the on-disk ``pdq`` vectors."""
        from qdrant_edge import PayloadSelector, Query, QueryRequest, SearchParams

        with engine_errors("PDQ search", self):
            points = self._shard("_frames").query(QueryRequest(
                limit=limit, query=Query.Nearest(pdq_bits(pdq), using=PDQ_VECTOR), params=SearchParams(exact=True),
                filter=self._project_filter(), with_payload=PayloadSelector.Include(["task_id", "generation", "frame"])))
        return [(p.payload["task_id"], p.payload["generation"], int(p.payload["frame"]), round(p.score))
                for p in points]

    def assets(self, task_ids: list[str]) -> dict[str, AssetRecord]:
        if not task_ids:
            return {}
        with engine_errors("read of asset records", self):
            project = self._key_project  # the key holds the project: another project's record is another id
            points = self._shard("_assets").retrieve([point_id(asset_key(t, project)) for t in dict.fromkeys(task_ids)],
                                                     True, False)
            return {p.payload["task_id"]: asset_record(p.payload) for p in points}

    def _scroll(self, name: str, flt: Any = None, fields: list[str] | None = None):
        from qdrant_edge import ScrollRequest

        """The payloads of every point of a shard (matching ``flt``), page by page."""
        shard = self._shard(name)
        offset = None
        while True:
            points, offset = shard.scroll(ScrollRequest(offset=offset, limit=SCROLL_PAGE, filter=flt,
                                                        with_payload=fields or True, with_vector=False))
            yield from (p.payload for p in points)
            if offset is None:
                return

    def list_assets(self, limit: int, after: str | None = None) -> list[AssetRecord]:
        """One scroll of the project's asset records (their ``task_id`` only), the page chosen by
        :func:`~adapters._common.page_of` (Qdrant cannot order or range-filter strings)."""
        with engine_errors("list of asset records", self):
            self._shard("_assets")  # a closed store raises, even for limit 0
            keys = (p["task_id"] for p in self._scroll("_assets", self._project_filter(), ["task_id"]))
            return page_of(keys, limit, after, self.assets)

    def frames(self, task_id: str, generation: str) -> list[StoredFrame]:
        with engine_errors(f"read of {task_id!r} frames", self):
            flt = self._frame_filter(task_id, generation=generation)
            return stored_frames(self._scroll("_frames", flt, ["frame", "timestamp", "span_end", "pdq"]))

    def generations(self) -> tuple[dict[str, str], dict[tuple[str, str], int]]:
        fields = ["task_id", "generation"]
        with engine_errors("scan", self):
            flt = self._project_filter()
            return scan_generations(self._scroll("_assets", flt, fields), self._scroll("_frames", flt, fields))

    def local_features(self, keys: Sequence[tuple[str, str, int]]) -> dict[tuple[str, str, int], bytes]:
        """Read by point id, only the ``local`` payload key, ``LOCAL_BATCH`` ids per ``retrieve``."""
        from qdrant_edge import PayloadSelector

        wanted = {point_id(k): key for k, key in local_keys(keys, self._key_project).items()}
        if not wanted:
            return {}
        with engine_errors("read of local features", self):
            shard = self._shard("_frames")  # a closed store raises, even where nothing is stored
            if not self.spec.local_features:  # created without them: nothing is stored
                return {}
            selector = PayloadSelector.Include([LOCAL_FIELD])
            return read_local(wanted, lambda ids: ((p.id, (p.payload or {}).get(LOCAL_FIELD))
                                                   for p in shard.retrieve(ids, selector, False)), LOCAL_BATCH)

    def count(self) -> tuple[int, int]:
        from qdrant_edge import CountRequest

        with engine_errors("count", self):
            flt = self._project_filter()
            return (self._shard("_assets").count(CountRequest(exact=True, filter=flt)),
                    self._shard("_frames").count(CountRequest(exact=True, filter=flt)))


class _Shards:
    """The two shards of one collection, open once per process and shared by every store object
    on it (as Milvus Lite shares one server per file): two indexes opened on one path in one
    process see each other's writes at once. The engine itself locks a shard against a second
    process."""

    _open: dict[str, _Shards] = {}
    _guard = threading.Lock()

    def __init__(self, key: str, frames: Any, assets: Any):
        self.key, self.frames, self.assets = key, frames, assets
        self.holders = 1
        info = frames.info()  # rows not in an optimized segment (each point has 2 vectors, both counted)
        self.unoptimized = max(0, info.points_count - info.indexed_vectors_count // 2)
        self.optimizing = threading.Lock()

    @classmethod
    def acquire(cls, store: QdrantEdgeStore) -> _Shards:
        from qdrant_edge import EdgeShard

        key = os.path.realpath(store.path)
        with cls._guard:
            shared = cls._open.get(key)
            if shared is not None:
                shared.holders += 1
                return shared
            loaded = []
            try:
                for sub in (FRAMES_DIR, ASSETS_DIR):
                    folder = store.path / sub
                    if not folder.is_dir():
                        raise StoreError(f"collection {store.collection!r} at {store.uri} is damaged: "
                                         f"{str(folder)!r} is missing")
                    try:  # the config saved with the shard at creation
                        loaded.append(EdgeShard.load(str(folder)))
                    except Exception as exc:
                        busy = "WouldBlock" in str(exc)
                        raise StoreError(
                            f"collection {store.collection!r} at {store.uri} is open in another process; a Qdrant "
                            "Edge index can be open in one process at a time: close it there first"
                            if busy else f"cannot open collection {store.collection!r} at {store.uri}: {exc}"
                        ) from exc
                shared = cls._open[key] = cls(key, *loaded)
            except BaseException:
                for shard in loaded:
                    shard.close()
                raise
            return shared

    def release(self) -> None:
        with self._guard:
            self.holders -= 1
            if self.holders > 0:
                return
            del self._open[self.key]
        errors = []
        for shard in (self.frames, self.assets):
            for step in (shard.flush, shard.close):  # close even if the flush failed (the WAL has it)
                try:
                    step()
                except Exception as exc:  # noqa: BLE001 - reported below, after both are closed
                    errors.append(exc)
        if errors:
            raise StoreError(f"closing the Qdrant Edge shards at {self.key} failed: {errors[0]}") from errors[0]
