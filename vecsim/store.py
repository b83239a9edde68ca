"""The one small protocol between the core and a vector store.

An adapter (``vecsim.adapters.<engine>``) holds one collection of *frame rows*: one row per
sampled frame of an asset, keyed by ``(task_id, frame)``. The core never imports an engine's
client; it only calls the methods below. To add a backend, write one module in ``adapters/``
that implements :class:`VectorStore` and register its URI scheme in ``adapters/__init__.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .index_config import IndexConfig


@dataclass(frozen=True)
class CollectionSpec:
    """What a collection was built with; saved with the collection and checked on every open."""

    descriptor_name: str
    descriptor_version: str
    dim: int
    index: IndexConfig
    schema_version: int = 1


@dataclass
class FrameRow:
    """One row to write: one sampled frame of an asset."""

    task_id: str
    frame: int  # 0-based position of the frame in the asset; frame 0 carries the asset's metadata
    media_type: str
    timestamp: float  # seconds
    vector: np.ndarray  # float32, L2-normalised, shape (dim,)
    pdq: str  # 64 hex chars
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """One search result: the best-scoring frame of one asset for one query vector."""

    task_id: str
    frame: int
    timestamp: float
    media_type: str
    pdq: str
    raw_score: float  # cosine / inner product, higher is closer


@dataclass(frozen=True)
class StoredFrame:
    task_id: str
    frame: int
    media_type: str
    timestamp: float
    pdq: str
    source: str
    metadata: dict[str, Any]


class VectorStore(Protocol):
    """A collection of frame rows in one engine."""

    uri: str
    engine: str  # e.g. "milvus-lite", "milvus"
    engine_version: str
    collection: str
    spec: CollectionSpec  # as stored with the collection

    def insert(self, rows: list[FrameRow]) -> None:
        """Write rows; visible to every later call of this store once it returns."""

    def delete(self, task_id: str) -> int:
        """Delete every row of ``task_id``; returns how many were deleted (0 if none)."""

    def search(self, vectors: np.ndarray, limit: int) -> list[list[Hit]]:
        """For each query vector, the best frame of each of the ``limit`` closest *assets*,
        best first. An asset with many near-identical frames must not crowd others out."""

    def frames(self, task_id: str) -> list[StoredFrame]:
        """Every row of ``task_id``, in frame order (empty if unknown)."""

    def metadata(self, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The caller metadata of each asset (from its frame 0)."""

    def count(self) -> tuple[int, int]:
        """``(assets, frames)`` in the collection."""

    def close(self) -> None: ...
