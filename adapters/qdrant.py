"""Qdrant adapter (``qdrant-client``): the embedded local mode for ``qdrant-local:PATH`` and a
Qdrant server for ``qdrant://host:port`` (``qdrants://`` for TLS).

Schema: a vecsim collection ``NAME`` is two Qdrant collections. ``NAME`` holds one point per kept
frame (two named vectors: ``emb``, the embedding, and ``pdq``, the 256 bits of the PDQ hash as
0/1 bytes under Manhattan distance = Hamming distance, kept on disk; payload ``task_id``,
``generation``, ``frame``, ``timestamp``, ``span_end``, ``pdq``, and in a collection created with
``spec.local_features`` ``local``: the frame's packed local features as base64, absent for none,
read only by point id in :meth:`QdrantStore.local_features`, never by a search or a scroll;
point id = UUID5 of ``"<task_id>#<generation>#<frame>"``), with the
:class:`~vecsim.store.CollectionSpec` in the collection metadata ``vecsim.spec``. ``NAME_assets``
holds one vector-less point per visible asset (id = UUID5 of the task_id). Writes wait for the
engine (``wait=True``), so a query after ``add`` / ``remove`` sees the change.

Projects: in a collection with projects (``spec.projects``, every collection vecsim >= 0.4
creates), the points of both collections carry the payload ``project`` and their ids are the UUID5
of the project-prefixed keys (``_common.frame_key`` / ``asset_key``); on a server ``project`` has a
keyword payload index created with ``is_tenant=True`` (Qdrant >= 1.11 keeps each tenant's points
together and plans a filtered search per tenant; an older server gets a plain keyword index; the
local mode has no payload indexes). HNSW is built per project (``m=0,
payload_m=M``: Qdrant's multitenancy layout; every search of such a collection is filtered to one
project). Every search, scroll, count and delete by filter of a store object is filtered to its
project, in the engine (``docs/tenancy.md``).

Index configs: ``FLAT`` is exact search; ``HNSW`` maps to Qdrant's HNSW (``M`` -> ``m``,
``efConstruction`` -> ``ef_construct``, search ``ef`` -> ``hnsw_ef``) on a server. ``HNSW_SQ8`` adds
int8 scalar quantization and ``HNSW_PQ`` product quantization (compression ``4 * dim / m``); the
quantized vectors stay in RAM, the originals go on disk, and with ``rerank`` a search fetches
``oversampling`` x the candidates and re-scores them with the originals. The local mode searches
by brute force whatever the config says, so it accepts only ``FLAT``; IVF types are Milvus
indexes and are refused with the equivalent to use. The mapping of a config onto Qdrant's vectors,
HNSW, quantization and search parameters is shared with ``qdrant_edge.py`` (``_common.py``).
Options: :class:`~adapters.options.QdrantOptions` (``api_key``, ``prefer_grpc``, ``timeout``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from vecsim.errors import IndexConfigError, StoreError
from vecsim.index_config import IndexConfig
from vecsim.store import AssetRecord, CollectionSpec, FrameRow, Hit, StoredFrame
from vecsim.validate import DEFAULT_PROJECT, check_project

from ._common import (
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
    pq_compression,
    qdrant_layout,
    qdrant_search_params,
    read_local,
    scan_generations,
    stored_frames,
)
from .options import QdrantOptions

SPEC_KEY = "vecsim.spec"
VECTOR = "emb"
PDQ_VECTOR = "pdq"
SCROLL_PAGE = 1000
#: Frame points per upsert request, and bytes (estimated) per request: under a server's 32 MB.
UPSERT_BATCH = 1000
REQUEST_BYTES = 16 << 20
#: Point ids whose local features are read per ``retrieve``.
LOCAL_BATCH = 1000

#: The first Qdrant server with ``is_tenant`` keyword indexes (older ones get a plain keyword index
#: on ``project``: the same isolation, without the per-tenant storage layout).
TENANT_INDEX_SINCE = (1, 11)

__all__ = ["QdrantStore", "pdq_bits", "pq_compression", "search_params", "vector_config"]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text)[:3])


def vector_config(spec: CollectionSpec, models):  # noqa: ANN001  (qdrant_client.models)
    """Named vectors, HNSW and quantization settings of the frames collection."""
    layout = qdrant_layout(spec)
    distance = models.Distance.COSINE if layout.distance == "COSINE" else models.Distance.DOT
    vectors = {
        VECTOR: models.VectorParams(size=spec.dim, distance=distance, on_disk=layout.compressed or None),
        PDQ_VECTOR: models.VectorParams(size=256, distance=models.Distance.MANHATTAN, on_disk=True,
                                        datatype=models.Datatype.UINT8),
    }
    hnsw = quant = None
    if layout.hnsw is not None and spec.projects:  # one graph per project: every search is filtered to one
        hnsw = models.HnswConfigDiff(m=0, payload_m=layout.hnsw[0], ef_construct=layout.hnsw[1])
    elif layout.hnsw is not None:
        hnsw = models.HnswConfigDiff(m=layout.hnsw[0], ef_construct=layout.hnsw[1])
    if layout.scalar_int8:
        quant = models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
            type=models.ScalarType.INT8, always_ram=True))
    elif layout.pq_ratio is not None:
        quant = models.ProductQuantization(product=models.ProductQuantizationConfig(
            compression=models.CompressionRatio(f"x{layout.pq_ratio}"), always_ram=True))
    return vectors, hnsw, quant


def search_params(index: IndexConfig, models):  # noqa: ANN001
    return qdrant_search_params(index, models)


class QdrantStore(ProjectScoped):
    """A :class:`~vecsim.store.VectorStore` on Qdrant (local mode or server)."""

    def __init__(self, uri: str, collection: str, create_spec: CollectionSpec, options: QdrantOptions | None = None,
                 project: str = DEFAULT_PROJECT):
        from qdrant_client import QdrantClient

        project = check_project(project)
        options = options or QdrantOptions()
        check_collection_name(collection, QDRANT_COLLECTION_NAME)
        self.uri = uri
        self.collection = collection
        self.assets_collection = f"{collection}_assets"
        self.options = options
        self._conn: Any = None
        self.engine = "qdrant-local" if uri.startswith("qdrant-local:") else "qdrant"
        with engine_errors("connect", self):
            if self.engine == "qdrant-local":
                self._conn = QdrantClient(path=uri[len("qdrant-local:"):])
                import importlib.metadata

                self.engine_version = f"qdrant-client-local-{importlib.metadata.version('qdrant-client')}"
            else:
                scheme = "https" if uri.startswith("qdrants://") else "http"
                url = f"{scheme}://{uri.split('://', 1)[1]}"
                self._conn = QdrantClient(url=url, api_key=options.api_key, prefer_grpc=options.prefer_grpc,
                                          timeout=options.timeout)
                self.engine_version = str(self._conn.info().version)
        try:
            with engine_errors("open", self):
                if self._client.collection_exists(collection):
                    self.spec = self._read_spec()
                else:
                    self._check_supported(create_spec.index, create_spec.dim)
                    self._create(create_spec)
                    self.spec = create_spec
                self._set_project(project)
        except BaseException:
            try:
                self.close()
            except Exception:
                pass  # never mask the error that got us here
            raise

    @property
    def _client(self) -> Any:
        conn = self._root._conn  # a view uses (and sees the close of) its owner's client
        if conn is None:
            raise closed_error(self)
        return conn

    def close(self) -> None:
        """Close the client; a :meth:`for_project` view holds none: closing it does nothing."""
        if self.is_view:
            return
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with engine_errors("close", self):
                conn.close()

    def __enter__(self) -> QdrantStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- collection ----------------------------------------------------------------------------

    def _check_supported(self, index: IndexConfig, dim: int) -> None:
        if index.type.startswith("IVF"):
            raise IndexConfigError(
                f"{index.type} is a Milvus index; Qdrant indexes with HNSW (and compresses with scalar or "
                "product quantization over HNSW). Use --index-type HNSW, or FLAT for exact search."
            )
        if index.type == "HNSW_PQ":
            pq_compression(index, dim)
        if self.engine == "qdrant-local" and index.type != "FLAT":
            raise IndexConfigError(
                f"{index.type} is not available on the qdrant-client local mode ({self.uri}), which searches "
                "by brute force whatever the config says; use FLAT there, or a Qdrant server (qdrant://host:6333)."
            )

    def _create(self, spec: CollectionSpec) -> None:
        from qdrant_client import models

        vectors, hnsw, quant = vector_config(spec, models)
        c = self._client
        with engine_errors("create", self):
            if c.collection_exists(self.assets_collection):  # left by a creation that died half-way
                c.delete_collection(self.assets_collection)
            c.create_collection(self.assets_collection, vectors_config={})
            c.create_collection(
                self.collection,
                vectors_config=vectors,
                hnsw_config=hnsw,
                quantization_config=quant,
                metadata={SPEC_KEY: spec.to_json()},
            )
            if self.engine != "qdrant-local":  # payload indexes (the local mode has none)
                for key in ("task_id", "generation"):
                    c.create_payload_index(self.collection, key, models.PayloadSchemaType.KEYWORD, wait=True)
                if spec.projects:  # the tenant index: each project's points together, filtered searches per tenant
                    tenant = (models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)
                              if _version(self.engine_version) >= TENANT_INDEX_SINCE else models.PayloadSchemaType.KEYWORD)
                    for name in (self.collection, self.assets_collection):
                        c.create_payload_index(name, PROJECT_FIELD, tenant, wait=True)

    def _read_spec(self) -> CollectionSpec:
        meta = getattr(self._client.get_collection(self.collection).config, "metadata", None) or {}
        raw = meta.get(SPEC_KEY)
        if not raw:
            raise StoreError(f"collection {self.collection!r} at {self.uri} was not made by vecsim (no {SPEC_KEY})")
        spec = CollectionSpec.from_json(raw)
        if spec.schema_version != CollectionSpec.schema_version or not self._client.collection_exists(
            self.assets_collection
        ):
            raise StoreError(f"collection {self.collection!r} at {self.uri} has vecsim schema version "
                             f"{spec.schema_version}; this vecsim reads {CollectionSpec.schema_version}")
        return spec

    # --- writes --------------------------------------------------------------------------------

    def insert_frames(self, rows: list[FrameRow]) -> None:
        from qdrant_client import models

        check_local(rows)  # before anything is written
        local = bool(self.spec.local_features)
        project = self._key_project
        with engine_errors("insert", self):
            points = [
                models.PointStruct(
                    id=point_id(frame_key(r.task_id, r.generation, r.frame, project)),
                    vector={VECTOR: as_vector(r.vector), PDQ_VECTOR: pdq_bits(r.pdq)},
                    payload={**frame_payload(r, project), LOCAL_FIELD: encode_local(r.local)} if local and r.local
                    else frame_payload(r, project),
                )
                for r in rows
            ]
            client = self._client  # a closed store raises, even with no rows
            for batch in _point_batches(points, self.spec.dim):
                client.upsert(self.collection, batch, wait=True)

    def commit_asset(self, record: AssetRecord) -> None:
        self.commit_assets([record])

    def commit_assets(self, records: Sequence[AssetRecord]) -> None:
        """One upsert of all the records (``wait=True``: visible when it returns); each point is
        written whole, so a kill part-way leaves every asset committed or invisible."""
        from qdrant_client import models

        records = list(records)
        what = f"commit of {records[0].task_id!r}" if len(records) == 1 else f"commit of {len(records)} assets"
        with engine_errors(what, self):
            client = self._client  # a closed store raises, even with nothing to commit
            if records:
                project = self._key_project
                client.upsert(self.assets_collection, [
                    models.PointStruct(id=point_id(asset_key(r.task_id, project)), vector={},
                                       payload=asset_payload(r, project)) for r in records
                ], wait=True)

    def delete_asset(self, task_id: str) -> AssetRecord | None:
        from qdrant_client import models

        record = self.assets([task_id]).get(task_id)
        if record is not None:
            with engine_errors(f"delete of {task_id!r}", self):
                self._client.delete(self.assets_collection,
                                    models.PointIdsList(points=[point_id(asset_key(task_id, self._key_project))]),
                                    wait=True)
        return record

    def _in_project(self) -> list:
        """The filter conditions that confine a query to this store's project ([] in a collection
        without projects, whose rows all belong to the default project)."""
        from qdrant_client import models

        if not self.spec.projects:
            return []
        return [models.FieldCondition(key=PROJECT_FIELD, match=models.MatchValue(value=self.project))]

    def _project_filter(self):
        """A filter to this store's project, or None (a collection without projects)."""
        from qdrant_client import models

        must = self._in_project()
        return models.Filter(must=must) if must else None

    def _frame_filter(self, task_id: str, keep_generation: str | None = None, generation: str | None = None):
        from qdrant_client import models

        must = [*self._in_project(), models.FieldCondition(key="task_id", match=models.MatchValue(value=task_id))]
        if generation is not None:
            must.append(models.FieldCondition(key="generation", match=models.MatchValue(value=generation)))
        must_not = []
        if keep_generation is not None:
            must_not.append(models.FieldCondition(key="generation", match=models.MatchValue(value=keep_generation)))
        return models.Filter(must=must, must_not=must_not or None)

    def delete_frames(self, task_id: str, keep_generation: str | None = None) -> int:
        from qdrant_client import models

        with engine_errors(f"delete of {task_id!r} frames", self):
            flt = self._frame_filter(task_id, keep_generation)
            n = self._client.count(self.collection, count_filter=flt, exact=True).count
            if n:
                self._client.delete(self.collection, models.FilterSelector(filter=flt), wait=True)
        return n

    # --- reads ---------------------------------------------------------------------------------

    def search(self, vectors: np.ndarray, limit: int, per_asset: int = 1) -> list[list[Hit]]:
        from qdrant_client import models

        params = None if self.engine == "qdrant-local" else search_params(self.spec.index, models)  # local: exact
        flt = self._project_filter()  # the engine filters: other projects never take a place in the top-k
        out: list[list[Hit]] = []
        with engine_errors("search", self):
            for v in np.asarray(vectors, dtype=np.float32):
                res = self._client.query_points_groups(
                    self.collection, query=v.tolist(), using=VECTOR, group_by="task_id", limit=limit,
                    group_size=per_asset, with_payload=FRAME_FIELDS, search_params=params,  # not `local`
                    query_filter=flt,
                )
                out.append([hit_from(p.payload, p.score) for g in res.groups for p in g.hits])
        return out

    def assets(self, task_ids: list[str]) -> dict[str, AssetRecord]:
        if not task_ids:
            return {}
        with engine_errors("read of asset records", self):
            project = self._key_project  # the key holds the project: another project's record is another id
            points = self._client.retrieve(self.assets_collection,
                                           [point_id(asset_key(t, project)) for t in dict.fromkeys(task_ids)],
                                           with_payload=True)
            return {p.payload["task_id"]: asset_record(p.payload) for p in points}

    def _scroll(self, name: str, flt=None, fields: list[str] | None = None):
        """The payloads (``fields`` of them, or all) of every point of a collection (matching
        ``flt``), page by page."""
        offset = None
        while True:
            points, offset = self._client.scroll(name, scroll_filter=flt, limit=SCROLL_PAGE, offset=offset,
                                                 with_payload=fields or True, with_vectors=False)
            yield from (p.payload for p in points)
            if offset is None:
                return

    def list_assets(self, limit: int, after: str | None = None) -> list[AssetRecord]:
        """One scroll of the project's asset records (their ``task_id`` only), the page chosen by
        :func:`~adapters._common.page_of` (Qdrant cannot order or range-filter strings)."""
        with engine_errors("list of asset records", self):
            self._client  # noqa: B018  (a closed store raises, even for limit 0)
            keys = (p["task_id"] for p in self._scroll(self.assets_collection, self._project_filter(), ["task_id"]))
            return page_of(keys, limit, after, self.assets)

    def frames(self, task_id: str, generation: str) -> list[StoredFrame]:
        with engine_errors(f"read of {task_id!r} frames", self):
            return stored_frames(self._scroll(self.collection, self._frame_filter(task_id, generation=generation),
                                              ["frame", "timestamp", "span_end", "pdq"]))

    def generations(self) -> tuple[dict[str, str], dict[tuple[str, str], int]]:
        fields = ["task_id", "generation"]
        with engine_errors("scan", self):
            flt = self._project_filter()
            return scan_generations(self._scroll(self.assets_collection, flt, fields),
                                    self._scroll(self.collection, flt, fields))

    def local_features(self, keys: Sequence[tuple[str, str, int]]) -> dict[tuple[str, str, int], bytes]:
        """Read by point id, only the ``local`` payload key, ``LOCAL_BATCH`` ids per ``retrieve``."""
        wanted = {point_id(k): key for k, key in local_keys(keys, self._key_project).items()}
        if not wanted:
            return {}
        with engine_errors("read of local features", self):
            client = self._client  # a closed store raises, even where nothing is stored
            if not self.spec.local_features:  # created without them: nothing is stored
                return {}
            return read_local(wanted, lambda ids: ((p.id, (p.payload or {}).get(LOCAL_FIELD)) for p in client.retrieve(
                self.collection, ids, with_payload=[LOCAL_FIELD], with_vectors=False)), LOCAL_BATCH)

    def build_index(self, timeout: float = 3600.0) -> None:
        if self.engine == "qdrant-local":
            self._client  # noqa: B018  (a closed store raises)
            return  # no index to build: the local mode searches by brute force
        with engine_errors("index build", self):
            self._wait_for_optimizers(timeout)

    def _wait_for_optimizers(self, timeout: float) -> None:
        import time

        from qdrant_client import models

        deadline = time.monotonic() + timeout
        while (status := self._client.get_collection(self.collection).status) != models.CollectionStatus.GREEN:
            if status == models.CollectionStatus.RED:
                raise StoreError(f"Qdrant reports collection {self.collection!r} as failed (red)")
            if time.monotonic() > deadline:
                raise StoreError(f"Qdrant optimizers of {self.collection!r} still busy after {timeout:.0f} s")
            time.sleep(0.5)

    def count(self) -> tuple[int, int]:
        with engine_errors("count", self):
            flt = self._project_filter()
            return (self._client.count(self.assets_collection, count_filter=flt, exact=True).count,
                    self._client.count(self.collection, count_filter=flt, exact=True).count)


def _point_batches(points: list, dim: int) -> Iterator[list]:
    """Frame points in upserts of at most ``UPSERT_BATCH`` points and about ``REQUEST_BYTES``
    (a vector as JSON ~12 bytes a dimension, the PDQ bits ~2 bytes each, and the local features)."""
    return batched(points, lambda p: 1024 + 12 * dim + len(p.payload.get(LOCAL_FIELD, "")), UPSERT_BATCH,
                   REQUEST_BYTES)
