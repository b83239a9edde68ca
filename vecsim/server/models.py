"""The service's response bodies (pydantic): an envelope around the SDK's own result models, so
the JSON of ``output`` is exactly what ``CustomIndex`` returns. Documented field by field in
``docs/service.md``; ``/openapi.json`` is generated from these."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..schema import AddResult, AssetInfo, AssetMatch, AssetPage, IndexInfo, RemoveResult

Status = Literal["queued", "running", "completed", "failed"]


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True)


class ErrorDetail(_Body):
    code: str = Field(description="stable machine-readable code, e.g. unsupported_media, url_not_allowed")
    message: str = Field(description="what went wrong, naming the input")


class ErrorResponse(_Body):
    error: ErrorDetail
    request_id: str = Field(description="the X-Request-ID of the request (also in the service's log)")


class QueryInfo(_Body):
    """About the query media itself."""

    source: str = Field(description="the upload's file name or the url")
    media_type: str = Field(description='"image" or "video"')
    duration: float = Field(description="seconds of the query (0 for an image)")
    query_frames: int = Field(description="frames sampled from the query")
    warnings: list[str] = Field(default_factory=list)


class _Envelope(_Body):
    task_id: str = Field(description="add: the asset's task_id; query / remove: the id of this call's task. "
                         "GET /api/v2/task/{task_id} reads an async task")
    status: Status = Field(description="queued, running, completed or failed")
    error: ErrorDetail | None = Field(None, description="set when status is failed")
    created_at: float | None = Field(None, description="unix time the task was accepted (async)")
    finished_at: float | None = Field(None, description="unix time it finished (async)")
    retries: int = Field(0, description="async: times the task was put back in the queue because the vector "
                         "store could not be reached; it runs again by itself once the store answers")


class AddResponse(_Envelope):
    kind: Literal["add"] = "add"
    output: AddResult | None = Field(None, description="set when completed: the SDK's AddResult")


class QueryResponse(_Envelope):
    kind: Literal["query"] = "query"
    output: list[AssetMatch] | None = Field(
        None, description="set when completed: up to top_k assets of this project, best first, each with its "
        "frame matches (query_timestamp, matching_timestamp, similarity_score, exact_score), segments and "
        "matched_ratio (the SDK's QueryResult.output)")
    query: QueryInfo | None = Field(None, description="set when completed: the query media")


class RemoveResponse(_Envelope):
    kind: Literal["remove"] = "remove"
    output: RemoveResult | None = Field(None, description="set when completed: the SDK's RemoveResult")


TaskResponse = AddResponse | QueryResponse | RemoveResponse


class _Read(_Body):
    status: Literal["completed"] = "completed"


class AssetResponse(_Read):
    output: AssetInfo = Field(description="the asset: its metadata and its frames (the SDK's AssetInfo)")


class AssetsResponse(_Read):
    output: AssetPage = Field(description="a page of the project's assets, by task_id; pass next as after for "
                              "the next page (null: this was the last)")


class InfoResponse(_Read):
    output: IndexInfo = Field(description="the index as this project sees it (the SDK's IndexInfo; uri is the "
                              "service's address, assets and frames this project's)")


class Health(_Body):
    status: Literal["ok", "loading", "failed", "store_unavailable"]
    detail: str = ""
