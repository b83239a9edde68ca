"""Milvus adapter (pymilvus ``MilvusClient``): Milvus Lite for a local ``*.db`` path, a Milvus
server for ``http(s)://host:port``.

Schema: a vecsim collection ``NAME`` is two Milvus collections. ``NAME`` holds one row per
kept frame (primary key ``"<task_id>#<generation>#<frame>"``, the vector, PDQ hash, timestamp and
covered span; in a collection created with ``spec.local_features``, also ``local``: the frame's
packed local features as base64, ``VARCHAR(16384)``, ``""`` for none, read only by primary key in
:meth:`MilvusStore.local_features`, never by a search or a scan); ``NAME_assets`` holds one
record per visible asset (primary key ``task_id``, the committed generation, metadata JSON,
source, media type, duration; Milvus needs a vector field in every collection, so it carries a
constant 2-d placeholder). The
:class:`~vecsim.store.CollectionSpec` is saved as the property ``vecsim.spec`` of ``NAME``, so an
open checks it before touching any vector.

Projects: in a collection with projects (``spec.projects``, every collection vecsim >= 0.4
creates), both collections have a ``project`` field (``VARCHAR(64)``), the frame rows' primary key
is ``"<project>/<task_id>#<generation>#<frame>"`` and the records' is a ``pk`` field
``"<project>/<task_id>"`` (``_common.frame_key`` / ``asset_key``), and every search, query, scan,
count and delete by expression of a store object starts with ``project == "<its project>"``. On a
Milvus server (>= 2.2.9) ``project`` is the frames collection's *partition key*: Milvus hashes the
projects into its partitions (64 by default) and a search filtered on the key reads only the
partition of that project. The assets collection gets a plain field (its records are upserted, and
Milvus 2.3.5 loses an upserted row from every read filtered on a partition key, milvus-io/milvus
#30607; records are read by primary key, which holds the project, so a partition would buy
nothing) and so does Milvus Lite (it accepts a partition key but never prunes by it: it only splits
every flush into 16 segments). ``docs/tenancy.md`` has the measurements.

Milvus Lite's own behaviours (one shared server and client per file, served on a private unix
socket, rebuilding truncated index files) live in ``milvus_lite.py``.

Writes on Milvus Lite: ``insert_frames`` leaves its rows in Lite's memtable (searched there by a
slower path); ``commit_assets`` flushes them into a segment, then upserts all its records in one
request and flushes those: a bulk load pays two flushes per group of assets, not two per asset.
``build_index`` flushes, then waits until Lite's background thread has indexed every segment.

Search: a Milvus >= 2.4 server groups hits by asset itself (``group_by_field``). Milvus < 2.4
ignores it; Milvus Lite's grouping only re-groups rows it fetched anyway (and with pymilvus it
reads ``strict_group_size=False`` as true, see ``__init__``). There one plain search per batch of
query vectors over-fetches rows and they are grouped here; a follow-up search, filtered to exclude
the assets found, runs only for a query whose fetch one asset's near-identical frames crowded.

Consistency (a server; Milvus Lite is always strong): collections are created with ``Bounded``
consistency and reads use it (fast: a search does not wait for the newest writes), until this store
object writes to a collection. From then on its reads of that collection use ``Session``: Milvus
waits until this client's own last write is visible, so a query issued after ``add`` or ``remove``
returns sees the change, without paying ``Strong``'s wait for everybody's writes. The option
``MilvusOptions(consistency="Strong")`` (or ``Eventually``, ``Session``) fixes the level of every
read instead.

Deadlines (a server): with ``MilvusOptions(timeout=T)`` every request carries a deadline of T
seconds (pymilvus's default is none: a server that accepts connections but never answers, a
stopped process, holds the caller for ever) and so does a reconnection; loading a collection into
memory at open, or creating one (which loads it), waits at least ``LOAD_TIMEOUT_S``. pymilvus
reconnects by itself once the server is back on the same address (measured with Milvus 2.3.5
killed and restarted: the same client answers again as soon as the server serves the
collection). A request that cannot reach the server, runs past its deadline or finds the
collection not loaded yet (a restarting server) is a :class:`~vecsim.errors.StoreUnavailableError`
(``_common.engine_errors``).

Index types: FLAT, IVF_FLAT, IVF_SQ8, IVF_PQ and HNSW under their Milvus names; ``HNSW_SQ8`` /
``HNSW_PQ`` as Milvus 2.6's ``HNSW_SQ`` (sq_type SQ8) / ``HNSW_PQ`` with the engine's own
refinement on exact vectors. IVF_PQ / IVF_SQ8 with ``rerank`` fetch ``oversampling`` x the
candidates with their exact vectors and re-score them here (Milvus has no refinement for IVF).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from vecsim.errors import IndexConfigError, StoreError
from vecsim.index_config import IndexConfig
from vecsim.store import AssetRecord, CollectionSpec, FrameRow, Hit, StoredFrame
from vecsim.validate import DEFAULT_PROJECT, check_project

from ._common import (
    ASSET_FIELDS,
    DIGEST_FIELD,
    FRAME_FIELDS,
    LOCAL_FIELD,
    LOCAL_FIELD_MAX_CHARS,
    MILVUS_COLLECTION_NAME,
    PROJECT_FIELD,
    PROJECT_FIELD_MAX_CHARS,
    ProjectScoped,
    as_vector,
    asset_key,
    asset_record,
    batched,
    check_collection_name,
    check_local,
    check_page,
    closed_error,
    encode_local,
    engine_errors,
    frame_key,
    frame_payload,
    hit_from,
    local_keys,
    read_local,
    scan_generations,
    stored_frames,
)
from .milvus_lite import (
    LITE_INDEX_TYPES,
    drop_lite_index_files,
    finish_lite_index,
    open_lite_client,
    release_lite_client,
)
from .options import CONSISTENCY_LEVELS, MilvusOptions  # noqa: F401  (CONSISTENCY_LEVELS: re-exported)

SPEC_PROPERTY = "vecsim.spec"
#: Index types and the first Milvus server version that builds them.
SERVER_INDEX_TYPES = {"FLAT": (2, 0), "IVF_FLAT": (2, 0), "IVF_SQ8": (2, 0), "IVF_PQ": (2, 0), "HNSW": (2, 0),
                      "HNSW_SQ8": (2, 6), "HNSW_PQ": (2, 6)}
INSERT_BATCH = 1000
#: Frame rows whose local features are read per ``get`` (a reply of up to ~16 MB of base64).
LOCAL_BATCH = 1000
#: Asset records per upsert request, and bytes (estimated) per request: well under gRPC's 64 MB.
ASSET_BATCH = 1000
REQUEST_BYTES = 16 << 20
#: Rows asked per query vector, per wanted asset, when the engine cannot group by asset.
CLIENT_GROUP_OVERSAMPLE = 16
#: The same on Milvus Lite, where every row fetched costs ~0.12 ms of Python (Segment.row_to_dict
#: + projection: 800 rows ~100 ms a query vector, measured); a fetch that is short of assets is
#: completed by follow-up searches (``_uncrowd``). Lite's own group_by fetches 3 x (groups x size).
LITE_GROUP_OVERSAMPLE = 4
MAX_SEARCH_LIMIT = 16384
FRAME_WINDOW = 4000  # frame numbers per read: room for 4 generations under the 16384-row limit
QUERY_LIMIT = 16384
#: Query vectors per search request, and result rows per request (gRPC messages stay < 64 MB).
SEARCH_BATCH = 256
ROWS_PER_REQUEST = 40_000
#: Query vectors whose candidates are re-scored per read of exact vectors.
RERANK_BATCH = 16
#: Most extra searches per query vector when a grouped search came back short of assets.
UNCROWD_ROUNDS = 8
#: The first Milvus server version with partition keys.
PARTITION_KEY_SINCE = (2, 2, 9)
#: Whether a new collection on Milvus Lite makes ``project`` the frames' partition key. Lite 3.2
#: accepts one but its search never prunes by it (every segment is filtered alike), and it splits
#: each flush into 16 hash buckets: more segments, more index files, nothing faster (measured:
#: docs/tenancy.md). A plain field filtered in every expression isolates projects the same.
LITE_PARTITION_KEY = False
#: Least deadline of loading a collection into memory at open (seconds), whatever ``timeout``;
#: ``create_collection`` with an index loads the new collection too.
LOAD_TIMEOUT_S = 600.0
_LOADS = frozenset({"load_collection", "create_collection"})
#: The client methods that send requests to the server: the ones given ``timeout=``.
_REQUESTS = frozenset({
    "get_server_version", "has_collection", "describe_collection", "get_load_state", "load_collection",
    "create_collection", "drop_collection", "insert", "upsert", "delete", "search", "query", "get", "flush",
    "describe_index", "query_iterator",
})
#: Longest primary key of a frame row: "<project>/" (65) + task_id (256) + "#<generation>#<frame>".
FRAME_PK_MAX_CHARS = 512
log = logging.getLogger(__name__)
_OUTPUT_FIELDS = FRAME_FIELDS  # what a search fetches: never the local features


def is_server_uri(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "tcp://", "grpc://"))


def _parse_version(text: str) -> tuple[int, ...]:
    nums = re.findall(r"\d+", text.split("-")[-1] if text.startswith("milvus_lite") else text)
    return tuple(int(n) for n in nums[:3])


def _literal(value: str) -> str:
    """A string literal for a Milvus boolean expression."""
    return json.dumps(value, ensure_ascii=False)


class MilvusStore(ProjectScoped):
    """A :class:`~vecsim.store.VectorStore` on Milvus Lite or a Milvus server."""

    def __init__(self, uri: str, collection: str, create_spec: CollectionSpec, options: MilvusOptions | None = None,
                 project: str = DEFAULT_PROJECT):
        project = check_project(project)
        options = options or MilvusOptions()
        check_collection_name(collection, MILVUS_COLLECTION_NAME,
                              "letters, digits and _ only, not starting with a digit")
        self.uri = uri
        self.collection = collection
        self.assets_collection = f"{collection}_assets"
        self.engine = "milvus" if is_server_uri(uri) else "milvus-lite"
        self.options = options
        #: Read level per collection: fixed by ``consistency``, else Bounded until this store writes.
        self._fixed_level = "Strong" if self._lite else options.consistency
        self._written: set[str] = set()
        self._db_name = options.db_name
        self._conn: Any = None
        self._conn = self._connect(uri, options)
        try:
            with engine_errors("open", self):
                self.engine_version = str(self._client.get_server_version())
                self._version = _parse_version(self.engine_version)
                if self._client.has_collection(collection):
                    self.spec = self._read_spec()
                    self._ensure_loaded()
                    stored = {f["name"] for f in self._client.describe_collection(self.assets_collection)["fields"]}
                else:
                    self._check_supported(create_spec.index, create_spec.dim)
                    self._create(create_spec)
                    self.spec = create_spec
                    stored = {DIGEST_FIELD}
                #: The record fields read and written: a collection made before ``digest`` lacks it.
                self._asset_fields = [*ASSET_FIELDS, *([DIGEST_FIELD] if DIGEST_FIELD in stored else [])]
                self._set_project(project)
        except BaseException:
            try:
                self.close()
            except Exception:
                pass  # never mask the error that got us here
            raise
        # Milvus Lite 3.2's group_by fetches max(3 x limit x group_size, 10 x limit) rows and
        # groups them in Python, as here; and pymilvus sends strict_group_size=False as the string
        # "False", which Lite's translator (adapter/grpc/translators/search.py) reads with bool():
        # true, so groups smaller than group_size (an image: one frame) vanished. Every Lite search
        # call also costs O(rows) of Python (search/executor_indexed.py): one plain search here.
        self._group_in_store = not self._lite and self._version >= (2, 4)
        self._oversample = LITE_GROUP_OVERSAMPLE if self._lite else CLIENT_GROUP_OVERSAMPLE

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def _lite(self) -> bool:
        """Milvus Lite (a local ``*.db``): see ``milvus_lite.py`` for what differs."""
        return self.engine == "milvus-lite"

    @property
    def _client(self) -> Any:
        conn = self._root._conn  # a view uses (and sees the close of) its owner's client
        if conn is None:
            raise closed_error(self)
        return conn

    def _connect(self, uri: str, options: MilvusOptions):
        if self._lite:  # one client per file, shared by the stores on it (milvus_lite.py)
            return open_lite_client(uri, options.db_name)
        from pymilvus import MilvusClient

        kwargs: dict[str, Any] = {"uri": uri}
        if options.token:
            kwargs["token"] = options.token
        if options.db_name:
            kwargs["db_name"] = options.db_name
        if options.timeout is not None:
            kwargs["timeout"] = options.timeout  # pymilvus: the deadline of connecting and reconnecting
        with engine_errors("connect", self):  # pymilvus raises several types for "cannot connect"
            client = MilvusClient(**kwargs)
        return client if options.timeout is None else _Deadlines(client, float(options.timeout))

    def close(self) -> None:
        """Close this store's client (Milvus Lite: release the shared one); a :meth:`for_project`
        view holds none: closing it does nothing."""
        if self.is_view or self._conn is None:
            return
        conn, self._conn = self._conn, None
        with engine_errors("close", self):
            if self._lite:
                release_lite_client(self.uri, self._db_name)
            else:
                conn.close()

    def __enter__(self) -> MilvusStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_supported(self, index: IndexConfig, dim: int) -> None:
        if self._lite and index.type not in LITE_INDEX_TYPES:
            raise IndexConfigError(
                f"{index.type} is not available on Milvus Lite ({self.uri}); it needs a Milvus server "
                f"(--index http://host:19530). Milvus Lite offers {', '.join(LITE_INDEX_TYPES)}."
            )
        needs = SERVER_INDEX_TYPES[index.type]
        if self.engine == "milvus" and self._version < needs:
            raise IndexConfigError(
                f"{index.type} needs Milvus {'.'.join(map(str, needs))} or newer; the server at {self.uri} is "
                f"{self.engine_version}. Use IVF_PQ (with rerank) or IVF_SQ8 for a compressed index there."
            )
        if index.type in ("IVF_PQ", "HNSW_PQ") and dim % index.m:  # type: ignore[union-attr]
            raise IndexConfigError(f"{index.type} m={index.m} must divide the vector dimension {dim}")  # type: ignore[union-attr]

    def _create(self, spec: CollectionSpec) -> None:
        from pymilvus import DataType

        c = self._client
        frames = c.create_schema(auto_id=False, enable_dynamic_field=False)
        frames.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=FRAME_PK_MAX_CHARS if spec.projects else 320)
        if spec.projects:
            frames.add_field(PROJECT_FIELD, DataType.VARCHAR, max_length=PROJECT_FIELD_MAX_CHARS,
                             is_partition_key=self._partition_key)
        frames.add_field("task_id", DataType.VARCHAR, max_length=256)
        frames.add_field("generation", DataType.VARCHAR, max_length=32)
        frames.add_field("frame", DataType.INT64)
        frames.add_field("timestamp", DataType.FLOAT)
        frames.add_field("span_end", DataType.FLOAT)
        frames.add_field("pdq", DataType.VARCHAR, max_length=64)
        frames.add_field("vector", DataType.FLOAT_VECTOR, dim=spec.dim)
        if spec.local_features:  # base64 of at most MAX_LOCAL_BYTES bytes: 16384 ASCII characters
            frames.add_field(LOCAL_FIELD, DataType.VARCHAR, max_length=LOCAL_FIELD_MAX_CHARS)
        frame_index = c.prepare_index_params()
        index_type, build_params = _milvus_index(spec.index)
        frame_index.add_index(
            field_name="vector", index_type=index_type, metric_type=spec.index.metric.value, params=build_params
        )
        assets = c.create_schema(auto_id=False, enable_dynamic_field=False)
        if spec.projects:  # the key "<project>/<task_id>"; no partition key (records are upserted: see above)
            assets.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=PROJECT_FIELD_MAX_CHARS + 1 + 256)
            assets.add_field(PROJECT_FIELD, DataType.VARCHAR, max_length=PROJECT_FIELD_MAX_CHARS)
            assets.add_field("task_id", DataType.VARCHAR, max_length=256)
        else:
            assets.add_field("task_id", DataType.VARCHAR, is_primary=True, max_length=256)
        assets.add_field("generation", DataType.VARCHAR, max_length=32)
        assets.add_field("media_type", DataType.VARCHAR, max_length=16)
        assets.add_field("source", DataType.VARCHAR, max_length=2048)
        assets.add_field("duration", DataType.FLOAT)
        assets.add_field("frames", DataType.INT64)
        assets.add_field("metadata", DataType.JSON)
        assets.add_field(DIGEST_FIELD, DataType.VARCHAR, max_length=64)
        assets.add_field("placeholder", DataType.FLOAT_VECTOR, dim=2)
        asset_index = c.prepare_index_params()
        asset_index.add_index(field_name="placeholder", index_type="FLAT", metric_type="L2")
        with engine_errors("create", self):
            if c.has_collection(self.assets_collection):  # left by a creation that died half-way
                c.drop_collection(self.assets_collection)
            c.create_collection(self.assets_collection, schema=assets, index_params=asset_index,
                                consistency_level=self._created_level)
            # The frames collection, with the spec, last: its presence marks a complete collection.
            c.create_collection(
                self.collection,
                schema=frames,
                index_params=frame_index,
                consistency_level=self._created_level,
                properties={SPEC_PROPERTY: spec.to_json()},
            )

    def _read_spec(self) -> CollectionSpec:
        desc = self._client.describe_collection(self.collection)
        raw = (desc.get("properties") or {}).get(SPEC_PROPERTY)
        if not raw:
            raise StoreError(
                f"collection {self.collection!r} at {self.uri} was not made by vecsim (no {SPEC_PROPERTY} "
                "property); choose another collection name"
            )
        spec = CollectionSpec.from_json(raw)
        if spec.schema_version != CollectionSpec.schema_version or not self._client.has_collection(
            self.assets_collection
        ):
            raise StoreError(
                f"collection {self.collection!r} at {self.uri} has vecsim schema version {spec.schema_version}; "
                f"this vecsim reads version {CollectionSpec.schema_version}: re-index into a new collection"
            )
        return spec

    def _ensure_loaded(self) -> None:
        from pymilvus.exceptions import MilvusException

        for name in (self.collection, self.assets_collection):
            state = str(self._client.get_load_state(name).get("state", ""))
            if "Loaded" in state:
                continue
            try:
                self._client.load_collection(name)
            except MilvusException as exc:
                if not self._lite:
                    raise
                dropped = drop_lite_index_files(self.uri, self._db_name, name)
                if not dropped:
                    raise
                log.warning(
                    "Milvus Lite could not load %r at %s (%s); rebuilding its %d index file(s) from the "
                    "stored vectors (a process killed while Milvus Lite wrote one leaves it truncated)",
                    name, self.uri, exc.message, dropped,
                )
                self._client.load_collection(name)

    @property
    def _partition_key(self) -> bool:
        """Whether a new collection makes ``project`` the frames' partition key (see the module
        docstring): a server that has them; Milvus Lite only if :data:`LITE_PARTITION_KEY`."""
        return LITE_PARTITION_KEY if self._lite else self._version >= PARTITION_KEY_SINCE

    def _scoped(self, expr: str = "") -> str:
        """``expr`` confined to this store's project (in a collection with projects)."""
        if not self.spec.projects:
            return expr
        own = f"{PROJECT_FIELD} == {_literal(self.project)}"
        return f"{own} and ({expr})" if expr else own

    @property
    def _created_level(self) -> str:
        return "Strong" if self._lite else "Bounded"

    def _level(self, name: str) -> str:
        """The consistency level of a read of collection ``name`` (see the module docstring)."""
        if self._fixed_level:
            return self._fixed_level
        return "Session" if name in self._written else "Bounded"

    def _flush(self, name: str) -> None:
        self._written.add(name)
        if self._lite:
            # Milvus Lite searches unflushed (memtable) rows by brute force after a per-row Python
            # copy of each vector (storage/memtable.py to_search_snapshot); a flush writes them to
            # a segment, which a background thread then indexes. A server seals segments by itself.
            self._client.flush(name)

    # --- writes --------------------------------------------------------------------------------

    def insert_frames(self, rows: list[FrameRow]) -> None:
        # No flush here (Milvus Lite: a flush per asset costs 55-87 ms): the frames of a bulk load
        # stay in Lite's memtable, searchable (by brute force), until commit_assets flushes them.
        check_local(rows)  # before anything is written
        local = bool(self.spec.local_features)  # the field exists: every row carries it ("" = none)
        project = self._key_project
        with engine_errors("insert", self):
            data = [{"pk": frame_key(r.task_id, r.generation, r.frame, project), **frame_payload(r, project),
                     "vector": as_vector(r.vector), **({LOCAL_FIELD: encode_local(r.local)} if local else {})}
                    for r in rows]
            for batch in _request_batches(data, _frame_row_bytes, INSERT_BATCH):
                self._client.insert(self.collection, batch)
            self._written.add(self.collection)

    def commit_asset(self, record: AssetRecord) -> None:
        self.commit_assets([record])

    def commit_assets(self, records: Sequence[AssetRecord]) -> None:
        """One upsert of all the records (in requests under the gRPC size limit). Milvus Lite:
        flush the frames first (durable in a segment, and searched by its index rather than
        Lite's slow memtable path, before any record makes them visible), then the records once.
        Each row is written whole, so a kill part-way leaves every asset committed or invisible."""
        records = list(records)
        what = f"commit of {records[0].task_id!r}" if len(records) == 1 else f"commit of {len(records)} assets"
        with engine_errors(what, self):
            client = self._client  # a closed store raises, even with nothing to commit
            if not records:
                return
            rows = [_asset_row(r, self._key_project, DIGEST_FIELD in self._asset_fields) for r in records]
            if self._lite:
                self._flush(self.collection)
            for batch in _request_batches(rows):
                client.upsert(self.assets_collection, batch)
            self._flush(self.assets_collection)

    def delete_asset(self, task_id: str) -> AssetRecord | None:
        record = self.assets([task_id]).get(task_id)
        if record is not None:
            with engine_errors(f"delete of {task_id!r}", self):
                self._client.delete(self.assets_collection, ids=[asset_key(task_id, self._key_project)])
                self._flush(self.assets_collection)
        return record

    def delete_frames(self, task_id: str, keep_generation: str | None = None) -> int:
        expr = f"task_id == {_literal(task_id)}"
        if keep_generation is not None:
            expr += f" and generation != {_literal(keep_generation)}"
        expr = self._scoped(expr)
        with engine_errors(f"delete of {task_id!r} frames", self):
            n = len(self._rows_by_frame(expr, ["pk"]))
            if n:
                self._client.delete(self.collection, filter=expr)
                self._flush(self.collection)
        return n

    # --- reads ---------------------------------------------------------------------------------

    def search(self, vectors: np.ndarray, limit: int, per_asset: int = 1) -> list[list[Hit]]:
        if len(vectors) == 0:
            return []
        with engine_errors("search", self):
            return self._search_grouped(vectors, limit, per_asset)

    def _search_grouped(self, vectors: np.ndarray, limit: int, per_asset: int) -> list[list[Hit]]:
        kwargs: dict[str, Any] = {}
        # With rerank, fetch ``oversampling`` x the assets and re-score them with exact vectors.
        wanted = int(np.ceil(limit * self.spec.index.oversampling)) if self._rerank else limit  # type: ignore[union-attr]
        if self._group_in_store:  # a Milvus >= 2.4 server groups by asset itself, correctly
            kwargs["group_by_field"] = "task_id"
            if per_asset > 1:
                kwargs.update(group_size=per_asset, strict_group_size=False)
            ask = wanted
        else:
            # Milvus < 2.4 ignores group_by_field silently, and Milvus Lite's grouping costs a
            # search per group size (see __init__): over-fetch with one plain search, group here.
            ask = min(MAX_SEARCH_LIMIT, wanted * per_asset * self._oversample)
        out: list[list[Hit]] = []
        rows_per_query = ask * max(1, per_asset) if self._group_in_store else ask
        step = max(1, min(SEARCH_BATCH, ROWS_PER_REQUEST // rows_per_query))
        for i in range(0, len(vectors), step):
            queries = np.asarray(vectors[i : i + step], dtype=np.float32)
            batch = queries.tolist()
            results = self._search(batch, ask, **kwargs)
            if not self._group_in_store:
                results = self._uncrowd(batch, results, wanted, ask, per_asset)
            grouped = [_group_hits(hits, wanted, per_asset) for hits in results]
            if self._rerank:
                grouped = self._exact_rescore(queries, grouped, limit, per_asset)
            out.extend(grouped)
        return out

    def _uncrowd(self, batch: list, results: list, wanted: int, ask: int, per_asset: int) -> list:
        """Make sure one asset's many near-identical frames cannot crowd the others out.

        Grouping here sees only the ``ask`` rows fetched per query: an asset with more frames
        than that close to the query fills them. For a query whose fetch came back full (more
        rows exist) but holds fewer than ``wanted`` assets, search again excluding the assets
        that already have ``per_asset`` frames, until ``wanted`` assets or no more rows (at most
        ``UNCROWD_ROUNDS`` times). An asset left out of a full fetch ranks below every asset in
        it, so the assets found first keep their places."""
        short = [i for i, hits in enumerate(results)
                 if len(hits) >= ask and len({h["entity"]["task_id"] for h in hits}) < wanted]
        if not short:
            return results
        results = [list(hits) for hits in results]
        for i in short:
            for _ in range(UNCROWD_ROUNDS):
                per: dict[str, set[tuple[str, int]]] = {}
                for h in results[i]:
                    e = h["entity"]
                    per.setdefault(e["task_id"], set()).add((e["generation"], int(e["frame"])))
                missing = wanted - len(per)
                if missing <= 0:
                    break
                full = sorted(t for t, frames in per.items() if len(frames) >= per_asset)
                n = min(MAX_SEARCH_LIMIT, missing * per_asset * self._oversample)
                flt = f"task_id not in {json.dumps(full, ensure_ascii=False)}" if full else ""
                more = list(self._search([batch[i]], n, filter=flt)[0])
                results[i].extend(more)
                if len(more) < n:
                    break  # the collection has no more rows
        return results

    def _exact_rescore(self, queries: np.ndarray, grouped: list[list[Hit]], limit: int,
                       per_asset: int) -> list[list[Hit]]:
        """Re-score each query's candidates with their exact vectors (read by primary key) and
        keep the ``per_asset`` best frames of the ``limit`` best assets."""
        out: list[list[Hit]] = []
        for i in range(0, len(grouped), RERANK_BATCH):
            chunk = grouped[i : i + RERANK_BATCH]
            project = self._key_project
            pks = list(dict.fromkeys(frame_key(h.task_id, h.generation, h.frame, project) for hits in chunk for h in hits))
            rows = self._client.get(self.collection, ids=pks, output_fields=["vector"],
                                    consistency_level=self._level(self.collection)) if pks else []
            stored = {row["pk"]: np.asarray(row["vector"], dtype=np.float32) for row in rows}
            for q, hits in zip(queries[i : i + RERANK_BATCH], chunk):
                rescored = [
                    {"distance": float(stored[pk] @ q), "entity": {**asdict(h), "pk": pk}}
                    for h in hits if (pk := frame_key(h.task_id, h.generation, h.frame, project)) in stored
                ]
                out.append(_group_hits(rescored, limit, per_asset))
        return out

    @property
    def _rerank(self) -> bool:
        """Re-score candidates here: IVF indexes with ``rerank`` (HNSW_SQ8/PQ refine in Milvus)."""
        return self.spec.index.type.startswith("IVF_") and bool(getattr(self.spec.index, "rerank", False))

    def _search(self, data: list, limit: int, filter: str = "", **kwargs: Any):
        """One search request, confined to this store's project in the engine: rows of other
        projects never take a place among the ``limit`` (a partition key prunes the others)."""
        return self._client.search(
            self.collection,
            data=data,
            limit=limit,
            filter=self._scoped(filter),
            output_fields=_OUTPUT_FIELDS,
            search_params={"metric_type": self.spec.index.metric.value, "params": _milvus_search_params(self.spec.index, limit)},
            consistency_level=self._level(self.collection),
            **kwargs,
        )

    def _rows_by_frame(self, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        """Every row matching ``expr`` (already :meth:`_scoped`), read in windows of frame numbers,
        each well inside Milvus's 16384-row query limit (an asset's frames are numbered 0..n-1 per
        generation)."""
        out: list[dict[str, Any]] = []
        start = 0
        while True:
            rows = self._client.query(
                self.collection,
                filter=f"{expr} and frame >= {start} and frame < {start + FRAME_WINDOW}",
                output_fields=fields,
                limit=QUERY_LIMIT,
                consistency_level=self._level(self.collection),
            )
            out.extend(rows)
            if not rows:
                return out
            start += FRAME_WINDOW

    def frames(self, task_id: str, generation: str) -> list[StoredFrame]:
        with engine_errors(f"read of {task_id!r} frames", self):
            return stored_frames(self._rows_by_frame(
                self._scoped(f"task_id == {_literal(task_id)} and generation == {_literal(generation)}"),
                ["frame", "timestamp", "span_end", "pdq"],
            ))

    def assets(self, task_ids: list[str]) -> dict[str, AssetRecord]:
        if not task_ids:
            return {}
        with engine_errors("read of asset records", self):
            project = self._key_project  # the key holds the project: another project's record is another key
            rows = self._client.get(
                self.assets_collection,
                ids=list(dict.fromkeys(asset_key(t, project) for t in task_ids)),
                output_fields=self._asset_fields,
                consistency_level=self._level(self.assets_collection),
            )
            return {r["task_id"]: asset_record(r) for r in rows}

    def list_assets(self, limit: int, after: str | None = None) -> list[AssetRecord]:
        """Keyset pagination on the records' primary key in the engine: ``pk > "<project>/<after>"``
        (in a collection without projects, made by vecsim < 0.4: ``task_id > "<after>"``, its
        key), filtered to the project. Within one project the key's order is the task_id's (the
        same prefix; Milvus compares strings by UTF-8 bytes). A server's query with a limit
        returns the matching rows with the smallest keys, in key order (each segment yields its
        rows from its primary-key map in order and the results are merged by key: what pymilvus's
        query iterator relies on). Milvus Lite sorts by key only for a query marked as an
        iterator's (``iterator``), so there it is marked; a server is not (Milvus 2.3.5 answers
        such a query without the rows written in the last few hundred milliseconds, whatever the
        consistency level). :func:`~adapters._common.check_page` refuses a page out of key order.
        At most ``QUERY_LIMIT`` rows per request."""
        out: list[AssetRecord] = []
        key = "pk" if self.spec.projects else "task_id"
        in_key_order = {"iterator": "True"} if self._lite else {}
        with engine_errors("list of asset records", self):
            client = self._client  # a closed store raises, even for limit 0
            last = after
            while len(out) < limit:
                ask = min(limit - len(out), QUERY_LIMIT)
                # every stored task_id is non-empty: "" as the bound when there is none starts at the first
                expr = f"{key} > {_literal(asset_key(last if last is not None else '', self._key_project))}"
                rows = client.query(self.assets_collection, filter=self._scoped(expr), output_fields=self._asset_fields,
                                    limit=ask, consistency_level=self._level(self.assets_collection), **in_key_order)
                page = check_page([asset_record(r) for r in rows], last, self)
                out.extend(page)
                if len(page) < ask:
                    break
                last = page[-1].task_id
        return out

    def local_features(self, keys: Sequence[tuple[str, str, int]]) -> dict[tuple[str, str, int], bytes]:
        """Read by primary key, only the ``local`` field, ``LOCAL_BATCH`` keys per ``get``."""
        wanted = local_keys(keys, self._key_project)
        if not wanted:
            return {}
        with engine_errors("read of local features", self):
            client = self._client  # a closed store raises, even where there is no such field
            if not self.spec.local_features:  # created without the field: nothing is stored
                return {}
            level = self._level(self.collection)
            return read_local(wanted, lambda pks: ((row.get("pk"), row.get(LOCAL_FIELD)) for row in client.get(
                self.collection, ids=pks, output_fields=["pk", LOCAL_FIELD], consistency_level=level)), LOCAL_BATCH)

    def generations(self) -> tuple[dict[str, str], dict[tuple[str, str], int]]:
        fields = ["task_id", "generation"]
        with engine_errors("scan", self):
            if not self._lite:
                # A server's query_iterator misses rows not yet in a sealed segment (Milvus 2.3.5,
                # pymilvus 2.6, whatever the consistency level): a record written since would be
                # missing from ``committed``, and vacuum would delete that asset's frames.
                for name in (self.assets_collection, self.collection):
                    self._client.flush(name)
            return scan_generations(self._scan(self.assets_collection, fields), self._scan(self.collection, fields))

    def _scan(self, name: str, fields: list[str]):
        """Every row of this store's project in a collection, in batches (query_iterator)."""
        import logging

        log = logging.getLogger("pymilvus")
        level = log.level
        log.setLevel(logging.ERROR)  # Milvus Lite has no MVCC timestamp: the iterator warns, harmlessly
        it = None
        try:
            it = self._client.query_iterator(name, batch_size=1000, filter=self._scoped(), output_fields=fields,
                                             consistency_level=self._level(name))
            while batch := it.next():
                yield from batch
        finally:
            if it is not None:
                it.close()
            log.setLevel(level)

    def build_index(self, timeout: float = 3600.0) -> None:
        with engine_errors("index build", self):
            if self._lite:  # flush what is in the memtable, and index every segment now
                for name in (self.collection, self.assets_collection):
                    self._flush(name)
                finish_lite_index(self.uri, self._db_name, [self.collection])
                return
            self._wait_for_index(timeout)

    def _wait_for_index(self, timeout: float) -> None:
        import time

        self._client.flush(self.collection)
        deadline = time.monotonic() + timeout
        while True:
            info = self._client.describe_index(self.collection, index_name="vector")
            if int(info.get("pending_index_rows", 0)) == 0 and int(info.get("indexed_rows", 0)) >= int(
                    info.get("total_rows", 0)):
                return
            if str(info.get("state", "")) == "Failed":
                raise StoreError(f"index build of {self.collection!r} failed: {info.get('index_state_fail_reason')}")
            if time.monotonic() > deadline:
                raise StoreError(f"index build of {self.collection!r} not finished after {timeout:.0f} s: {info}")
            time.sleep(0.5)

    def count(self) -> tuple[int, int]:
        def n(name: str) -> int:
            res = self._client.query(name, filter=self._scoped(), output_fields=["count(*)"],
                                     consistency_level=self._level(name))
            return int(res[0]["count(*)"])

        with engine_errors("count", self):
            return n(self.assets_collection), n(self.collection)


class _Deadlines:
    """A ``MilvusClient`` whose every request (:data:`_REQUESTS`) carries ``timeout=`` unless the
    caller gives one: pymilvus's client-level timeout is only the connection's."""

    def __init__(self, client: Any, timeout: float):
        self._inner, self._timeout = client, timeout

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in _REQUESTS:
            return attr
        timeout = max(self._timeout, LOAD_TIMEOUT_S) if name in _LOADS else self._timeout

        def call(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", timeout)
            return attr(*args, **kwargs)

        return call


def _milvus_index(index: IndexConfig) -> tuple[str, dict[str, Any]]:
    """Milvus index type and build parameters of a config."""
    params = index.build_params()
    if index.type == "HNSW_SQ8":
        return "HNSW_SQ", {**params, "sq_type": "SQ8", "refine": index.rerank, "refine_type": "FP32"}  # type: ignore[union-attr]
    if index.type == "HNSW_PQ":
        return "HNSW_PQ", {**params, "m": index.m, "nbits": 8, "refine": index.rerank,  # type: ignore[union-attr]
                           "refine_type": "FP32"}
    return index.type, params


def _milvus_search_params(index: IndexConfig, limit: int) -> dict[str, Any]:
    params = index.search_params()
    if "ef" in params:  # Milvus refuses ef < limit (k); client-side grouping asks for many rows
        params["ef"] = max(params["ef"], limit)
    if index.type in ("HNSW_SQ8", "HNSW_PQ") and index.rerank:  # type: ignore[union-attr]
        params["refine_k"] = index.oversampling  # type: ignore[union-attr]
    return params


def _asset_row(record: AssetRecord, project: str | None = None, digest: bool = True) -> dict[str, Any]:
    """The row of an asset record; with its key and ``project`` in a collection with projects;
    with its ``digest`` where the collection has the field."""
    scoped = {} if project is None else {"pk": asset_key(record.task_id, project), PROJECT_FIELD: project}
    if digest:
        scoped[DIGEST_FIELD] = record.digest
    return {
        **scoped,
        "task_id": record.task_id,
        "generation": record.generation,
        "media_type": record.media_type,
        "source": record.source[:2048],
        "duration": float(record.duration),
        "frames": record.frames,
        "metadata": record.metadata,
        "placeholder": [1.0, 0.0],
    }


def _asset_row_bytes(row: dict[str, Any]) -> int:
    """About the size of an asset row in a request (the metadata JSON and the source dominate)."""
    return 256 + len(row["source"].encode()) + len(json.dumps(row["metadata"], ensure_ascii=False).encode())


def _frame_row_bytes(row: dict[str, Any]) -> int:
    """About the size of a frame row in a request (the vector, and the local features if any)."""
    return 512 + 4 * len(row["vector"]) + len(row.get(LOCAL_FIELD, ""))


def _request_batches(rows: list[dict[str, Any]], size_of: Callable[[dict[str, Any]], int] = _asset_row_bytes,
                     max_rows: int | None = None) -> Iterator[list[dict[str, Any]]]:
    """Rows (asset rows by default) in requests of at most ``max_rows`` rows (default
    ``ASSET_BATCH``) and about ``REQUEST_BYTES`` (a row larger than that goes alone)."""
    return batched(rows, size_of, max_rows or ASSET_BATCH, REQUEST_BYTES)


def _group_hits(hits: Any, limit: int, per_asset: int) -> list[Hit]:
    """Keep the best ``per_asset`` frames of each of the ``limit`` best assets (hits may repeat)."""
    kept: dict[str, list[Hit]] = {}
    seen: set[tuple[str, str, int]] = set()
    for h in sorted(hits, key=lambda h: h["distance"], reverse=True):
        e = h["entity"]
        key = (e["task_id"], e["generation"], int(e["frame"]))
        if key in seen:
            continue
        seen.add(key)
        group = kept.get(e["task_id"])
        if group is None:
            if len(kept) == limit:
                continue
            group = kept[e["task_id"]] = []
        if len(group) < per_asset:
            group.append(hit_from(e, h["distance"]))
    return [hit for group in kept.values() for hit in group]

