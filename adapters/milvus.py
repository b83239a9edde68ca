"""Milvus adapter (pymilvus ``MilvusClient``): Milvus Lite for a local ``*.db`` path, a Milvus
server for ``http(s)://host:port``.

Schema: a vecsim collection ``NAME`` is two Milvus collections. ``NAME`` holds one row per
kept frame (primary key ``"<task_id>#<generation>#<frame>"``, the vector, PDQ hash, timestamp and
covered span); ``NAME_assets`` holds one record per visible asset (primary key ``task_id``,
the committed generation, metadata JSON, source, media type, duration; Milvus needs a vector
field in every collection, so it carries a constant 2-d placeholder). The
:class:`~vecsim.store.CollectionSpec` is saved as the property ``vecsim.spec`` of ``NAME``, so an
open checks it before touching any vector.

Consistency (a server; Milvus Lite is always strong): collections are created with ``Bounded``
consistency and reads use it (fast: a search does not wait for the newest writes), until this store
object writes to a collection. From then on its reads of that collection use ``Session``: Milvus
waits until this client's own last write is visible, so a query issued after ``add`` or ``remove``
returns sees the change, without paying ``Strong``'s wait for everybody's writes. The option
``consistency="Strong"`` (or ``Eventually``, ``Session``) fixes the level of every read instead.

Index types: FLAT, IVF_FLAT, IVF_SQ8, IVF_PQ and HNSW under their Milvus names; ``HNSW_SQ8`` /
``HNSW_PQ`` as Milvus 2.6's ``HNSW_SQ`` (sq_type SQ8) / ``HNSW_PQ`` with the engine's own
refinement on exact vectors. IVF_PQ / IVF_SQ8 with ``rerank`` fetch ``oversampling`` x the
candidates with their exact vectors and re-score them here (Milvus has no refinement for IVF).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
from dataclasses import asdict
from typing import Any

import numpy as np

from vecsim.errors import IndexConfigError, StoreError
from vecsim.index_config import IndexConfig
from vecsim.store import AssetRecord, CollectionSpec, FrameRow, Hit, StoredFrame

SPEC_PROPERTY = "vecsim.spec"
CONSISTENCY_LEVELS = ("Strong", "Bounded", "Session", "Eventually")
LITE_INDEX_TYPES = ("FLAT", "IVF_FLAT", "IVF_SQ8", "HNSW")
#: Index types and the first Milvus server version that builds them.
SERVER_INDEX_TYPES = {"FLAT": (2, 0), "IVF_FLAT": (2, 0), "IVF_SQ8": (2, 0), "IVF_PQ": (2, 0), "HNSW": (2, 0),
                      "HNSW_SQ8": (2, 6), "HNSW_PQ": (2, 6)}
INSERT_BATCH = 1000
#: Rows asked per query vector, per wanted asset, when the engine cannot group by asset.
CLIENT_GROUP_OVERSAMPLE = 16
MAX_SEARCH_LIMIT = 16384
FRAME_WINDOW = 4000  # frame numbers per read: room for 4 generations under the 16384-row limit
QUERY_LIMIT = 16384
#: Query vectors per search request, and result rows per request (gRPC messages stay < 64 MB).
SEARCH_BATCH = 256
ROWS_PER_REQUEST = 40_000
#: Query vectors whose candidates are re-scored per read of exact vectors.
RERANK_BATCH = 16
log = logging.getLogger(__name__)
_COLLECTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
_OUTPUT_FIELDS = ["task_id", "generation", "frame", "timestamp", "span_end", "pdq"]


#: Open MilvusStore objects per Milvus Lite path in this process. Milvus Lite runs one in-process
#: server per path that holds the file's lock until released; the last store to close releases it,
#: so another process can open the file afterwards.
_lite_users: dict[str, int] = {}


def _release_lite(uri: str) -> None:
    path = os.path.abspath(uri)
    _lite_users[path] = _lite_users.get(path, 1) - 1
    if _lite_users[path] <= 0:
        del _lite_users[path]
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(path)


def _drop_lite_index_files(uri: str, db_name: str | None, collection: str) -> int:
    """Delete the index files Milvus Lite keeps beside a collection's segments; return how many.

    They are derived data: Milvus Lite rebuilds a missing one from the segment's stored vectors
    when the collection loads. It writes them in a background thread, in place, so a process killed
    while one was being written leaves it truncated, and the next load fails on it.
    """
    root = os.path.join(uri, "databases", db_name) if db_name and db_name != "default" else uri
    pattern = os.path.join(root, "collections", collection, "partitions", "*", "indexes", "*.idx")
    paths = glob.glob(pattern)
    for path in paths:
        os.remove(path)
    return len(paths)


def is_server_uri(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "tcp://", "grpc://"))


def _parse_version(text: str) -> tuple[int, ...]:
    nums = re.findall(r"\d+", text.split("-")[-1] if text.startswith("milvus_lite") else text)
    return tuple(int(n) for n in nums[:3])


def _literal(value: str) -> str:
    """A string literal for a Milvus boolean expression."""
    return json.dumps(value, ensure_ascii=False)


class MilvusStore:
    """A :class:`~vecsim.store.VectorStore` on Milvus Lite or a Milvus server."""

    def __init__(
        self,
        uri: str,
        collection: str,
        create_spec: CollectionSpec,
        *,
        token: str | None = None,
        db_name: str | None = None,
        consistency: str | None = None,
    ):
        if not _COLLECTION_NAME.match(collection):
            raise IndexConfigError(
                f"invalid collection name {collection!r}: letters, digits and _ only, not starting with a digit"
            )
        self.uri = uri
        self.collection = collection
        self.assets_collection = f"{collection}_assets"
        self.engine = "milvus" if is_server_uri(uri) else "milvus-lite"
        if consistency is not None and consistency not in CONSISTENCY_LEVELS:
            raise IndexConfigError(f"consistency must be one of {', '.join(CONSISTENCY_LEVELS)}, got {consistency!r}")
        #: Read level per collection: fixed by ``consistency``, else Bounded until this store writes.
        self._fixed_level = "Strong" if self.engine == "milvus-lite" else consistency
        self._written: set[str] = set()
        self._client = self._connect(uri, token, db_name)
        self._db_name = db_name
        try:
            self.engine_version = str(self._client.get_server_version())
            self._version = _parse_version(self.engine_version)
            if self._client.has_collection(collection):
                self.spec = self._read_spec()
                self._ensure_loaded()
            else:
                self._check_supported(create_spec.index, create_spec.dim)
                self._create(create_spec)
                self.spec = create_spec
        except BaseException:
            self.close()
            raise
        self._group_in_store = self.engine == "milvus-lite" or self._version >= (2, 4)

    # --- lifecycle -----------------------------------------------------------------------------

    def _connect(self, uri: str, token: str | None, db_name: str | None):
        from pymilvus import MilvusClient

        kwargs: dict[str, Any] = {"uri": uri}
        if token:
            kwargs["token"] = token
        if db_name:
            kwargs["db_name"] = db_name
        try:
            client = MilvusClient(**kwargs)
        except Exception as exc:  # pymilvus raises several types for "cannot connect"
            hint = (
                " (Milvus Lite lets one process at a time open a .db; is another process using it?)"
                if self.engine == "milvus-lite" else ""
            )
            raise StoreError(f"cannot open Milvus at {uri}: {exc}{hint}") from exc
        if self.engine == "milvus-lite":
            _lite_users[os.path.abspath(uri)] = _lite_users.get(os.path.abspath(uri), 0) + 1
        return client

    def close(self) -> None:
        if self._client is None:
            return
        self._client.close()
        self._client = None
        if self.engine == "milvus-lite":
            _release_lite(self.uri)

    def _check_supported(self, index: IndexConfig, dim: int) -> None:
        if self.engine == "milvus-lite" and index.type not in LITE_INDEX_TYPES:
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
        frames.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=320)
        frames.add_field("task_id", DataType.VARCHAR, max_length=256)
        frames.add_field("generation", DataType.VARCHAR, max_length=32)
        frames.add_field("frame", DataType.INT64)
        frames.add_field("timestamp", DataType.FLOAT)
        frames.add_field("span_end", DataType.FLOAT)
        frames.add_field("pdq", DataType.VARCHAR, max_length=64)
        frames.add_field("vector", DataType.FLOAT_VECTOR, dim=spec.dim)
        frame_index = c.prepare_index_params()
        index_type, build_params = _milvus_index(spec.index)
        frame_index.add_index(
            field_name="vector", index_type=index_type, metric_type=spec.index.metric.value, params=build_params
        )
        assets = c.create_schema(auto_id=False, enable_dynamic_field=False)
        assets.add_field("task_id", DataType.VARCHAR, is_primary=True, max_length=256)
        assets.add_field("generation", DataType.VARCHAR, max_length=32)
        assets.add_field("media_type", DataType.VARCHAR, max_length=16)
        assets.add_field("source", DataType.VARCHAR, max_length=2048)
        assets.add_field("duration", DataType.FLOAT)
        assets.add_field("frames", DataType.INT64)
        assets.add_field("metadata", DataType.JSON)
        assets.add_field("placeholder", DataType.FLOAT_VECTOR, dim=2)
        asset_index = c.prepare_index_params()
        asset_index.add_index(field_name="placeholder", index_type="FLAT", metric_type="L2")
        try:
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
        except Exception as exc:
            raise StoreError(f"cannot create collection {self.collection!r} on {self.uri}: {exc}") from exc

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
                if self.engine != "milvus-lite":
                    raise
                dropped = _drop_lite_index_files(self.uri, self._db_name, name)
                if not dropped:
                    raise
                log.warning(
                    "Milvus Lite could not load %r at %s (%s); rebuilding its %d index file(s) from the "
                    "stored vectors (a process killed while Milvus Lite wrote one leaves it truncated)",
                    name, self.uri, exc.message, dropped,
                )
                self._client.load_collection(name)

    @property
    def _created_level(self) -> str:
        return "Strong" if self.engine == "milvus-lite" else "Bounded"

    def _level(self, name: str) -> str:
        """The consistency level of a read of collection ``name`` (see the module docstring)."""
        if self._fixed_level:
            return self._fixed_level
        return "Session" if name in self._written else "Bounded"

    def _flush(self, name: str) -> None:
        self._written.add(name)
        if self.engine == "milvus-lite":
            # Milvus Lite searches unflushed rows by a slow path (38 ms vs 2 ms for 544 rows,
            # measured); a flush costs ~7 ms. A server seals segments by itself.
            self._client.flush(name)

    # --- writes --------------------------------------------------------------------------------

    def insert_frames(self, rows: list[FrameRow]) -> None:
        data = [
            {
                "pk": f"{r.task_id}#{r.generation}#{r.frame}",
                "task_id": r.task_id,
                "generation": r.generation,
                "frame": r.frame,
                "timestamp": float(r.timestamp),
                "span_end": float(r.span_end),
                "pdq": r.pdq,
                "vector": np.asarray(r.vector, dtype=np.float32).tolist(),
            }
            for r in rows
        ]
        try:
            for i in range(0, len(data), INSERT_BATCH):
                self._client.insert(self.collection, data[i : i + INSERT_BATCH])
            self._flush(self.collection)
        except Exception as exc:
            raise StoreError(f"insert into {self.collection!r} failed: {exc}") from exc

    def commit_asset(self, record: AssetRecord) -> None:
        row = {
            "task_id": record.task_id,
            "generation": record.generation,
            "media_type": record.media_type,
            "source": record.source[:2048],
            "duration": float(record.duration),
            "frames": record.frames,
            "metadata": record.metadata,
            "placeholder": [1.0, 0.0],
        }
        try:
            self._client.upsert(self.assets_collection, [row])
            self._flush(self.assets_collection)
        except Exception as exc:
            raise StoreError(f"commit of {record.task_id!r} failed: {exc}") from exc

    def delete_asset(self, task_id: str) -> AssetRecord | None:
        record = self.assets([task_id]).get(task_id)
        if record is not None:
            self._client.delete(self.assets_collection, ids=[task_id])
            self._flush(self.assets_collection)
        return record

    def delete_frames(self, task_id: str, keep_generation: str | None = None) -> int:
        expr = f"task_id == {_literal(task_id)}"
        if keep_generation is not None:
            expr += f" and generation != {_literal(keep_generation)}"
        n = len(self._rows_by_frame(expr, ["pk"]))
        if n:
            self._client.delete(self.collection, filter=expr)
            self._flush(self.collection)
        return n

    # --- reads ---------------------------------------------------------------------------------

    def search(self, vectors: np.ndarray, limit: int, per_asset: int = 1) -> list[list[Hit]]:
        if len(vectors) == 0:
            return []
        kwargs: dict[str, Any] = {}
        # With rerank, fetch ``oversampling`` x the assets and re-score them with exact vectors.
        wanted = int(np.ceil(limit * self.spec.index.oversampling)) if self._rerank else limit  # type: ignore[union-attr]
        if self._group_in_store:
            kwargs["group_by_field"] = "task_id"
            if per_asset > 1:
                kwargs.update(group_size=per_asset, strict_group_size=False)
            ask = wanted
        else:  # Milvus < 2.4 ignores group_by_field silently: over-fetch and group here.
            ask = min(MAX_SEARCH_LIMIT, wanted * per_asset * CLIENT_GROUP_OVERSAMPLE)
        out: list[list[Hit]] = []
        step = max(1, min(SEARCH_BATCH, ROWS_PER_REQUEST // (ask * max(1, per_asset))))
        for i in range(0, len(vectors), step):
            queries = np.asarray(vectors[i : i + step], dtype=np.float32)
            batch = queries.tolist()
            results = self._search(batch, ask, **kwargs)
            if self.engine == "milvus-lite" and per_asset > 1:
                # Milvus Lite 3.2 drops groups smaller than group_size (strict_group_size=False or
                # not): an image (one frame) would vanish. A group_size=1 search sees every asset.
                singles = self._search(batch, ask, group_by_field="task_id")
                results = [list(a) + list(b) for a, b in zip(singles, results)]
            grouped = [_group_hits(hits, wanted, per_asset) for hits in results]
            if self._rerank:
                grouped = self._exact_rescore(queries, grouped, limit, per_asset)
            out.extend(grouped)
        return out

    def _exact_rescore(self, queries: np.ndarray, grouped: list[list[Hit]], limit: int,
                       per_asset: int) -> list[list[Hit]]:
        """Re-score each query's candidates with their exact vectors (read by primary key) and
        keep the ``per_asset`` best frames of the ``limit`` best assets."""
        out: list[list[Hit]] = []
        for i in range(0, len(grouped), RERANK_BATCH):
            chunk = grouped[i : i + RERANK_BATCH]
            pks = list(dict.fromkeys(f"{h.task_id}#{h.generation}#{h.frame}" for hits in chunk for h in hits))
            rows = self._client.get(self.collection, ids=pks, output_fields=["vector"],
                                    consistency_level=self._level(self.collection)) if pks else []
            stored = {row["pk"]: np.asarray(row["vector"], dtype=np.float32) for row in rows}
            for q, hits in zip(queries[i : i + RERANK_BATCH], chunk):
                rescored = [
                    {"distance": float(stored[pk] @ q), "entity": {**asdict(h), "pk": pk}}
                    for h in hits if (pk := f"{h.task_id}#{h.generation}#{h.frame}") in stored
                ]
                out.append(_group_hits(rescored, limit, per_asset))
        return out

    @property
    def _rerank(self) -> bool:
        """Re-score candidates here: IVF indexes with ``rerank`` (HNSW_SQ8/PQ refine in Milvus)."""
        return self.spec.index.type.startswith("IVF_") and bool(getattr(self.spec.index, "rerank", False))

    def _search(self, data: list, limit: int, **kwargs: Any):
        return self._client.search(
            self.collection,
            data=data,
            limit=limit,
            output_fields=_OUTPUT_FIELDS,
            search_params={"metric_type": self.spec.index.metric.value, "params": _milvus_search_params(self.spec.index, limit)},
            consistency_level=self._level(self.collection),
            **kwargs,
        )

    def _rows_by_frame(self, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        """Every row matching ``expr``, read in windows of frame numbers, each well inside
        Milvus's 16384-row query limit (an asset's frames are numbered 0..n-1 per generation)."""
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
        rows = self._rows_by_frame(
            f"task_id == {_literal(task_id)} and generation == {_literal(generation)}",
            ["frame", "timestamp", "span_end", "pdq"],
        )
        rows.sort(key=lambda r: r["frame"])
        return [
            StoredFrame(frame=int(r["frame"]), timestamp=float(r["timestamp"]), span_end=float(r["span_end"]), pdq=r["pdq"])
            for r in rows
        ]

    def assets(self, task_ids: list[str]) -> dict[str, AssetRecord]:
        if not task_ids:
            return {}
        rows = self._client.get(
            self.assets_collection,
            ids=list(dict.fromkeys(task_ids)),
            output_fields=["task_id", "generation", "media_type", "source", "duration", "frames", "metadata"],
            consistency_level=self._level(self.assets_collection),
        )
        return {
            r["task_id"]: AssetRecord(
                task_id=r["task_id"],
                generation=r["generation"],
                media_type=r["media_type"],
                source=r["source"],
                duration=float(r["duration"]),
                frames=int(r["frames"]),
                metadata=r["metadata"] or {},
            )
            for r in rows
        }

    def generations(self) -> tuple[dict[str, str], dict[tuple[str, str], int]]:
        committed = {r["task_id"]: r["generation"] for r in self._scan(self.assets_collection, ["task_id", "generation"])}
        present: dict[tuple[str, str], int] = {}
        for r in self._scan(self.collection, ["task_id", "generation"]):
            key = (r["task_id"], r["generation"])
            present[key] = present.get(key, 0) + 1
        return committed, present

    def _scan(self, name: str, fields: list[str]):
        """Every row of a collection, in batches (query_iterator)."""
        import logging

        log = logging.getLogger("pymilvus")
        level = log.level
        log.setLevel(logging.ERROR)  # Milvus Lite has no MVCC timestamp: the iterator warns, harmlessly
        it = None
        try:
            it = self._client.query_iterator(name, batch_size=1000, filter="", output_fields=fields,
                                             consistency_level=self._level(name))
            while batch := it.next():
                yield from batch
        finally:
            if it is not None:
                it.close()
            log.setLevel(level)

    def build_index(self, timeout: float = 3600.0) -> None:
        if self.engine == "milvus-lite":
            return  # every write is flushed, and Milvus Lite indexes flushed segments at once
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
            res = self._client.query(name, filter="", output_fields=["count(*)"], consistency_level=self._level(name))
            return int(res[0]["count(*)"])

        return n(self.assets_collection), n(self.collection)


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
            group.append(Hit(
                task_id=e["task_id"],
                generation=e["generation"],
                frame=int(e["frame"]),
                timestamp=float(e["timestamp"]),
                span_end=float(e["span_end"]),
                pdq=e["pdq"],
                raw_score=float(h["distance"]),
            ))
    return [hit for group in kept.values() for hit in group]

