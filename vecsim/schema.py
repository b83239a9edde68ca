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


class Segment(_Model):
    """A continuous stretch of the query that copies a continuous stretch of the asset."""

    query_start: float
    query_end: float
    match_start: float
    match_end: float
    score: float = Field(ge=0, le=1, description="mean similarity_score of the segment's matches")


class AssetMatch(_Model):
    """One indexed asset that the query copies, with its frame matches."""

    task_id: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    media_type: str
    score: float = Field(ge=0, le=1, description="rank score: 0.5 best similarity + 0.5 soft matched ratio")
    matched_ratio: float = Field(ge=0, le=1, description="matched query frames / sampled query frames")
    longest_segment_seconds: float = Field(ge=0, description="query seconds of the longest segment")
    matches: list[Match] = Field(description="one per matched query timestamp, in query time order")
    segments: list[Segment] = Field(description="temporally consistent runs of matches, best first")


class QueryResult(_Model):
    source: str
    media_type: str = "image"
    duration: float = Field(0.0, description="seconds of the query (0 for an image)")
    query_frames: int = Field(1, description="frames sampled from the query")
    output: list[AssetMatch] = Field(description="up to top_k assets, best first")
    warnings: list[str] = Field(default_factory=list, description="e.g. a damaged stream that was cut short")


class AddResult(_Model):
    task_id: str
    source: str
    media_type: str
    duration: float = 0.0
    frames: int = Field(description="frames sampled from the media")
    stored_frames: int = Field(description="rows written (fewer than frames when still stretches are merged)")
    replaced: bool = False
    warnings: list[str] = Field(default_factory=list)


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


class VacuumResult(_Model):
    removed_frames: int = Field(description="frame rows deleted")
    orphaned_generations: int = Field(description="(task_id, generation) pairs that no asset record commits")


class FrameInfo(_Model):
    timestamp: float
    span_end: float = Field(description="the frame stands for [timestamp, span_end)")
    pdq: str


class AssetInfo(_Model):
    task_id: str
    media_type: str
    source: str
    duration: float
    metadata: dict[str, Any]
    frames: list[FrameInfo]


class AssetSummary(_Model):
    """One asset on a page of ``list_assets``: its record, without the frames themselves."""

    task_id: str
    media_type: str
    source: str
    duration: float = Field(description="seconds (0 for an image)")
    metadata: dict[str, Any]
    frames: int = Field(ge=0, description="frame rows stored for the asset")


class AssetPage(_Model):
    """A page of a project's assets, by task_id ascending."""

    assets: list[AssetSummary]
    next: str | None = Field(description="the task_id to pass as `after` for the next page; null: this is the last")


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
    #: the format of the local features each frame keeps ("" for none: the collection was made
    #: with ``local_features=False`` or by vecsim < 0.3), and whether queries verify with them
    local_features: str = ""
    verification: bool = False
    #: the project the index object works in ("" = the default project); ``assets`` and
    #: ``frames`` count that project's only
    project: str = ""
