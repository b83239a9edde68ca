"""Qdrant adapter (``qdrant-client``): the embedded local mode for ``qdrant-local:PATH`` and a
Qdrant server for ``qdrant://host:port`` (``qdrants://`` for TLS).

Schema: a vecsim collection ``NAME`` is two Qdrant collections. ``NAME`` holds one point per kept
frame (two named vectors: ``emb``, the embedding, and ``pdq``, the 256 bits of the PDQ hash as
0/1 bytes under Manhattan distance = Hamming distance, kept on disk; payload ``task_id``, ``generation``, ``frame``, ``timestamp``,
``span_end``, ``pdq``; point id = UUID5 of ``"<task_id>#<generation>#<frame>"``), with the
:class:`~vecsim.store.CollectionSpec` in the collection metadata ``vecsim.spec``. ``NAME_assets``
holds one vector-less point per visible asset (id = UUID5 of the task_id). Writes wait for the
engine (``wait=True``), so a query after ``add`` / ``remove`` sees the change.

Index configs: ``FLAT`` is exact search; ``HNSW`` maps to Qdrant's HNSW (``M`` -> ``m``,
``efConstruction`` -> ``ef_construct``, search ``ef`` -> ``hnsw_ef``) on a server. ``HNSW_SQ8`` adds
int8 scalar quantization and ``HNSW_PQ`` product quantization (compression ``4 * dim / m``); the
quantized vectors stay in RAM, the originals go on disk, and with ``rerank`` a search fetches
``oversampling`` x the candidates and re-scores them with the originals. The local mode searches
by brute force whatever the config says, so it accepts only ``FLAT``; IVF types are Milvus
indexes and are refused with the equivalent to use.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import asdict

import numpy as np

from vecsim.errors import IndexConfigError, StoreError
from vecsim.index_config import IndexConfig
from vecsim.store import AssetRecord, CollectionSpec, FrameRow, Hit, StoredFrame

SPEC_KEY = "vecsim.spec"
VECTOR = "emb"
PDQ_VECTOR = "pdq"
PQ_COMPRESSIONS = (4, 8, 16, 32, 64)
SCROLL_PAGE = 1000
_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$")
_NS = uuid.UUID("6f1f3c2e-3d3b-4f0e-9a43-2b1c5d0e7a11")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def _point_id(key: str) -> str:
    return str(uuid.uuid5(_NS, key))


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


def vector_config(spec: CollectionSpec, models):  # noqa: ANN001  (qdrant_client.models or qdrant_edge)
    """Named vectors, HNSW and quantization settings of the frames collection."""
    index = spec.index
    distance = models.Distance.COSINE if index.metric.value == "COSINE" else models.Distance.DOT
    compressed = index.type in ("HNSW_SQ8", "HNSW_PQ")
    vectors = {
        VECTOR: models.VectorParams(size=spec.dim, distance=distance, on_disk=compressed or None),
        PDQ_VECTOR: models.VectorParams(size=256, distance=models.Distance.MANHATTAN, on_disk=True,
                                        datatype=models.Datatype.UINT8),
    }
    hnsw = quant = None
    if index.type.startswith("HNSW"):
        hnsw = models.HnswConfigDiff(m=index.M, ef_construct=index.efConstruction)  # type: ignore[union-attr]
    if index.type == "HNSW_SQ8":
        quant = models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
            type=models.ScalarType.INT8, always_ram=True))
    elif index.type == "HNSW_PQ":
        quant = models.ProductQuantization(product=models.ProductQuantizationConfig(
            compression=models.CompressionRatio(f"x{pq_compression(index, spec.dim)}"), always_ram=True))
    return vectors, hnsw, quant


def search_params(index: IndexConfig, models):  # noqa: ANN001
    if index.type == "FLAT":
        return models.SearchParams(exact=True)
    quantization = None
    if index.type in ("HNSW_SQ8", "HNSW_PQ"):
        quantization = models.QuantizationSearchParams(
            rescore=index.rerank, oversampling=index.oversampling if index.rerank else None)  # type: ignore[union-attr]
    return models.SearchParams(hnsw_ef=index.search_params().get("ef"), quantization=quantization)


class QdrantStore:
    """A :class:`~vecsim.store.VectorStore` on Qdrant (local mode or server)."""

    def __init__(self, uri: str, collection: str, create_spec: CollectionSpec, *, api_key: str | None = None,
                 token: str | None = None, prefer_grpc: bool = False, timeout: int | None = None):
        from qdrant_client import QdrantClient

        if not _COLLECTION_NAME.match(collection):
            raise IndexConfigError(f"invalid collection name {collection!r}")
        self.uri = uri
        self.collection = collection
        self.assets_collection = f"{collection}_assets"
        try:
            if uri.startswith("qdrant-local:"):
                self.engine = "qdrant-local"
                self._client = QdrantClient(path=uri[len("qdrant-local:"):])
                import importlib.metadata

                self.engine_version = f"qdrant-client-local-{importlib.metadata.version('qdrant-client')}"
            else:
                self.engine = "qdrant"
                scheme = "https" if uri.startswith("qdrants://") else "http"
                url = f"{scheme}://{uri.split('://', 1)[1]}"
                self._client = QdrantClient(url=url, api_key=api_key or token, prefer_grpc=prefer_grpc,
                                            timeout=timeout)
                self.engine_version = str(self._client.info().version)
        except Exception as exc:
            raise StoreError(f"cannot open Qdrant at {uri}: {exc}") from exc
        try:
            if self._client.collection_exists(collection):
                self.spec = self._read_spec()
            else:
                self._check_supported(create_spec.index, create_spec.dim)
                self._create(create_spec)
                self.spec = create_spec
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

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
        try:
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
        except Exception as exc:
            raise StoreError(f"cannot create collection {self.collection!r} on {self.uri}: {exc}") from exc

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

        points = [
            models.PointStruct(
                id=_point_id(f"{r.task_id}#{r.generation}#{r.frame}"),
                vector={VECTOR: np.asarray(r.vector, dtype=np.float32).tolist(), PDQ_VECTOR: pdq_bits(r.pdq)},
                payload={"task_id": r.task_id, "generation": r.generation, "frame": r.frame,
                         "timestamp": float(r.timestamp), "span_end": float(r.span_end), "pdq": r.pdq},
            )
            for r in rows
        ]
        try:
            self._client.upsert(self.collection, points, wait=True)
        except Exception as exc:
            raise StoreError(f"insert into {self.collection!r} failed: {exc}") from exc

    def commit_asset(self, record: AssetRecord) -> None:
        from qdrant_client import models

        try:
            self._client.upsert(self.assets_collection, [
                models.PointStruct(id=_point_id(record.task_id), vector={}, payload=asdict(record))
            ], wait=True)
        except Exception as exc:
            raise StoreError(f"commit of {record.task_id!r} failed: {exc}") from exc

    def delete_asset(self, task_id: str) -> AssetRecord | None:
        from qdrant_client import models

        record = self.assets([task_id]).get(task_id)
        if record is not None:
            self._client.delete(self.assets_collection, models.PointIdsList(points=[_point_id(task_id)]), wait=True)
        return record

    def _frame_filter(self, task_id: str, keep_generation: str | None = None, generation: str | None = None):
        from qdrant_client import models

        must = [models.FieldCondition(key="task_id", match=models.MatchValue(value=task_id))]
        if generation is not None:
            must.append(models.FieldCondition(key="generation", match=models.MatchValue(value=generation)))
        must_not = []
        if keep_generation is not None:
            must_not.append(models.FieldCondition(key="generation", match=models.MatchValue(value=keep_generation)))
        return models.Filter(must=must, must_not=must_not or None)

    def delete_frames(self, task_id: str, keep_generation: str | None = None) -> int:
        from qdrant_client import models

        flt = self._frame_filter(task_id, keep_generation)
        n = self._client.count(self.collection, count_filter=flt, exact=True).count
        if n:
            self._client.delete(self.collection, models.FilterSelector(filter=flt), wait=True)
        return n

    # --- reads ---------------------------------------------------------------------------------

    def search(self, vectors: np.ndarray, limit: int, per_asset: int = 1) -> list[list[Hit]]:
        from qdrant_client import models

        params = None if self.engine == "qdrant-local" else search_params(self.spec.index, models)  # local: exact
        out: list[list[Hit]] = []
        for v in np.asarray(vectors, dtype=np.float32):
            res = self._client.query_points_groups(
                self.collection, query=v.tolist(), using=VECTOR, group_by="task_id", limit=limit,
                group_size=per_asset, with_payload=True, search_params=params,
            )
            out.append([
                Hit(task_id=p.payload["task_id"], generation=p.payload["generation"], frame=int(p.payload["frame"]),
                    timestamp=float(p.payload["timestamp"]), span_end=float(p.payload["span_end"]),
                    pdq=p.payload["pdq"], raw_score=float(p.score))
                for g in res.groups for p in g.hits
            ])
        return out

    def assets(self, task_ids: list[str]) -> dict[str, AssetRecord]:
        if not task_ids:
            return {}
        points = self._client.retrieve(self.assets_collection, [_point_id(t) for t in dict.fromkeys(task_ids)],
                                       with_payload=True)
        return {p.payload["task_id"]: AssetRecord(**p.payload) for p in points}

    def _scroll(self, name: str, flt=None):
        offset = None
        while True:
            points, offset = self._client.scroll(name, scroll_filter=flt, limit=SCROLL_PAGE, offset=offset,
                                                 with_payload=True, with_vectors=False)
            yield from points
            if offset is None:
                return

    def frames(self, task_id: str, generation: str) -> list[StoredFrame]:
        rows = sorted((p.payload for p in self._scroll(self.collection, self._frame_filter(task_id, generation=generation))),
                      key=lambda r: r["frame"])
        return [StoredFrame(frame=int(r["frame"]), timestamp=float(r["timestamp"]), span_end=float(r["span_end"]),
                            pdq=r["pdq"]) for r in rows]

    def generations(self) -> tuple[dict[str, str], dict[tuple[str, str], int]]:
        committed = {p.payload["task_id"]: p.payload["generation"] for p in self._scroll(self.assets_collection)}
        present: dict[tuple[str, str], int] = {}
        for p in self._scroll(self.collection):
            key = (p.payload["task_id"], p.payload["generation"])
            present[key] = present.get(key, 0) + 1
        return committed, present

    def build_index(self, timeout: float = 3600.0) -> None:
        if self.engine == "qdrant-local":
            return  # no index to build: the local mode searches by brute force
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
        return (self._client.count(self.assets_collection, exact=True).count,
                self._client.count(self.collection, exact=True).count)

