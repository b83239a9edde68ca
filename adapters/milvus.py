"""Milvus adapter (pymilvus ``MilvusClient``): Milvus Lite for a local ``*.db`` path, a Milvus
server for ``http(s)://host:port``.

Schema: one row per frame, primary key ``"<task_id>#<frame>"``. The collection's
:class:`~vecsim.store.CollectionSpec` is saved as the collection property ``vecsim.spec``
(JSON), so an open checks it before touching any vector.

Consistency: the collection is created with ``Strong`` consistency and every read asks for it,
so a query issued after ``add`` or ``remove`` returns sees the change.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict
from typing import Any

import numpy as np

from vecsim.errors import IndexConfigError, StoreError
from vecsim.index_config import IndexConfig, index_config_from_dict
from vecsim.store import CollectionSpec, FrameRow, Hit, StoredFrame

SPEC_PROPERTY = "vecsim.spec"
CONSISTENCY = "Strong"
LITE_INDEX_TYPES = ("FLAT", "IVF_FLAT", "IVF_SQ8", "HNSW")
SERVER_INDEX_TYPES = ("FLAT", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "HNSW")
INSERT_BATCH = 1000
#: Rows asked per query vector, per wanted asset, when the engine cannot group by asset.
CLIENT_GROUP_OVERSAMPLE = 16
MAX_SEARCH_LIMIT = 16384
FRAME_WINDOW = 10000
_COLLECTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
_OUTPUT_FIELDS = ["task_id", "frame", "timestamp", "media_type", "pdq"]


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
    ):
        if not _COLLECTION_NAME.match(collection):
            raise IndexConfigError(
                f"invalid collection name {collection!r}: letters, digits and _ only, not starting with a digit"
            )
        self.uri = uri
        self.collection = collection
        self.engine = "milvus" if is_server_uri(uri) else "milvus-lite"
        self._client = self._connect(uri, token, db_name)
        try:
            self.engine_version = str(self._client.get_server_version())
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
        self._group_in_store = self.engine == "milvus-lite" or _parse_version(self.engine_version) >= (2, 4)

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
        allowed = LITE_INDEX_TYPES if self.engine == "milvus-lite" else SERVER_INDEX_TYPES
        if index.type not in allowed:
            raise IndexConfigError(
                f"{index.type} is not available on Milvus Lite ({self.uri}); it needs a Milvus server "
                f"(--index http://host:19530). Milvus Lite offers {', '.join(LITE_INDEX_TYPES)}."
            )
        if index.type == "IVF_PQ" and dim % index.m:  # type: ignore[union-attr]
            raise IndexConfigError(f"IVF_PQ m={index.m} must divide the vector dimension {dim}")  # type: ignore[union-attr]

    def _create(self, spec: CollectionSpec) -> None:
        from pymilvus import DataType

        c = self._client
        schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=320)
        schema.add_field("task_id", DataType.VARCHAR, max_length=256)
        schema.add_field("frame", DataType.INT64)
        schema.add_field("media_type", DataType.VARCHAR, max_length=16)
        schema.add_field("timestamp", DataType.FLOAT)
        schema.add_field("source", DataType.VARCHAR, max_length=2048)
        schema.add_field("pdq", DataType.VARCHAR, max_length=64)
        schema.add_field("metadata", DataType.JSON)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=spec.dim)
        params = c.prepare_index_params()
        params.add_index(
            field_name="vector",
            index_type=spec.index.type,
            metric_type=spec.index.metric.value,
            params=spec.index.build_params(),
        )
        try:
            c.create_collection(
                self.collection,
                schema=schema,
                index_params=params,
                consistency_level=CONSISTENCY,
                properties={SPEC_PROPERTY: _spec_to_json(spec)},
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
        return _spec_from_json(raw)

    def _ensure_loaded(self) -> None:
        state = str(self._client.get_load_state(self.collection).get("state", ""))
        if "Loaded" not in state:
            self._client.load_collection(self.collection)

    # --- writes --------------------------------------------------------------------------------

    def insert(self, rows: list[FrameRow]) -> None:
        data = [
            {
                "pk": f"{r.task_id}#{r.frame}",
                "task_id": r.task_id,
                "frame": r.frame,
                "media_type": r.media_type,
                "timestamp": float(r.timestamp),
                "source": r.source[:2048],
                "pdq": r.pdq,
                "metadata": r.metadata if r.frame == 0 else {},
                "vector": np.asarray(r.vector, dtype=np.float32).tolist(),
            }
            for r in rows
        ]
        try:
            for i in range(0, len(data), INSERT_BATCH):
                self._client.insert(self.collection, data[i : i + INSERT_BATCH])
            if self.engine == "milvus-lite":
                # Milvus Lite searches unflushed rows by a slow path (38 ms vs 2 ms for 544 rows,
                # measured); a flush costs ~7 ms. A server seals segments by itself.
                self._client.flush(self.collection)
        except Exception as exc:
            raise StoreError(f"insert into {self.collection!r} failed: {exc}") from exc

    def delete(self, task_id: str) -> int:
        n = len(self._task_rows(task_id, ["pk"]))
        if n:
            self._client.delete(self.collection, filter=f"task_id == {_literal(task_id)}")
        return n

    # --- reads ---------------------------------------------------------------------------------

    def search(self, vectors: np.ndarray, limit: int) -> list[list[Hit]]:
        if len(vectors) == 0:
            return []
        kwargs: dict[str, Any] = {}
        if self._group_in_store:
            kwargs["group_by_field"] = "task_id"
            ask = limit
        else:  # Milvus < 2.4 ignores group_by_field silently: over-fetch and group here.
            ask = min(MAX_SEARCH_LIMIT, limit * CLIENT_GROUP_OVERSAMPLE)
        results = self._client.search(
            self.collection,
            data=np.asarray(vectors, dtype=np.float32).tolist(),
            limit=ask,
            output_fields=_OUTPUT_FIELDS,
            search_params={"metric_type": self.spec.index.metric.value, "params": self.spec.index.search_params()},
            consistency_level=CONSISTENCY,
            **kwargs,
        )
        out: list[list[Hit]] = []
        for hits in results:
            best: dict[str, Hit] = {}
            for h in hits:
                e = h["entity"]
                if e["task_id"] in best:
                    continue  # hits come best first: keep the asset's best frame
                best[e["task_id"]] = Hit(
                    task_id=e["task_id"],
                    frame=int(e["frame"]),
                    timestamp=float(e["timestamp"]),
                    media_type=e["media_type"],
                    pdq=e["pdq"],
                    raw_score=float(h["distance"]),
                )
                if len(best) == limit:
                    break
            out.append(list(best.values()))
        return out

    def _task_rows(self, task_id: str, fields: list[str]) -> list[dict[str, Any]]:
        """Every row of one asset. Frames are numbered 0..n-1, so read them in windows of frame
        numbers, each well inside Milvus's 16384-row query limit."""
        out: list[dict[str, Any]] = []
        start = 0
        while True:
            rows = self._client.query(
                self.collection,
                filter=f"task_id == {_literal(task_id)} and frame >= {start} and frame < {start + FRAME_WINDOW}",
                output_fields=fields,
                limit=FRAME_WINDOW,
                consistency_level=CONSISTENCY,
            )
            out.extend(rows)
            if len(rows) < FRAME_WINDOW:
                return out
            start += FRAME_WINDOW

    def frames(self, task_id: str) -> list[StoredFrame]:
        rows = self._task_rows(task_id, ["task_id", "frame", "media_type", "timestamp", "pdq", "source", "metadata"])
        rows.sort(key=lambda r: r["frame"])
        return [
            StoredFrame(
                task_id=r["task_id"],
                frame=int(r["frame"]),
                media_type=r["media_type"],
                timestamp=float(r["timestamp"]),
                pdq=r["pdq"],
                source=r["source"],
                metadata=r["metadata"] or {},
            )
            for r in rows
        ]

    def metadata(self, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        if not task_ids:
            return {}
        ids = ", ".join(_literal(t) for t in task_ids)
        rows = self._client.query(
            self.collection,
            filter=f"task_id in [{ids}] and frame == 0",
            output_fields=["task_id", "metadata"],
            consistency_level=CONSISTENCY,
        )
        return {r["task_id"]: r["metadata"] or {} for r in rows}

    def count(self) -> tuple[int, int]:
        def n(expr: str) -> int:
            res = self._client.query(
                self.collection, filter=expr, output_fields=["count(*)"], consistency_level=CONSISTENCY
            )
            return int(res[0]["count(*)"])

        return n("frame == 0"), n("")


def _spec_to_json(spec: CollectionSpec) -> str:
    d = asdict(spec)
    d["index"] = spec.index.model_dump(mode="json")
    return json.dumps(d, sort_keys=True)


def _spec_from_json(raw: str) -> CollectionSpec:
    d = json.loads(raw)
    d["index"] = index_config_from_dict(d["index"])
    return CollectionSpec(**d)
