"""The public response models (pydantic v2). ``.model_dump_json()`` gives the documented JSON
(see ``docs/response-format.md``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Match(_Model):
    """One query second matched to one second of an indexed asset."""

    query_timestamp: float = Field(description="seconds into the query (0 for an image)")
    matching_timestamp: float = Field(description="seconds into the indexed asset (0 for an image)")
    similarity_score: float = Field(ge=0, le=1, description="calibrated robust score, 1.0 = exact copy")
    exact_score: float = Field(ge=0, le=1, description="PDQ score: high only for near-identical frames")


class AssetMatch(_Model):
    """One indexed asset that the query copies, with its frame matches."""

    task_id: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    media_type: str
    score: float = Field(ge=0, le=1, description="the asset's rank score (its best similarity_score)")
    matches: list[Match]


class QueryResult(_Model):
    source: str
    output: list[AssetMatch] = Field(description="up to top_k assets, best first")


class AddResult(_Model):
    task_id: str
    source: str
    media_type: str
    frames: int
    replaced: bool = False


class AddFailure(_Model):
    source: str
    error: str = Field(description="the error's class name, e.g. CorruptMediaError")
    message: str


class AddManyResult(_Model):
    added: list[AddResult]
    failed: list[AddFailure]


class RemoveResult(_Model):
    task_id: str
    removed_frames: int


class FrameInfo(_Model):
    timestamp: float
    pdq: str


class AssetInfo(_Model):
    task_id: str
    media_type: str
    source: str
    metadata: dict[str, Any]
    frames: list[FrameInfo]


class DescriptorInfo(_Model):
    name: str
    version: str
    dim: int


class IndexInfo(_Model):
    uri: str
    engine: str
    engine_version: str
    collection: str
    descriptor: DescriptorInfo
    index: dict[str, Any]
    assets: int
    frames: int
