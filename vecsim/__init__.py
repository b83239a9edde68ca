"""vecsim: visual copy detection for images and videos on Milvus and Qdrant: add, query, remove."""

from .errors import (
    AuthenticationError,
    CalibrationError,
    CorruptMediaError,
    DescriptorError,
    DescriptorFileNotFoundError,
    DescriptorMismatchError,
    EmptyMediaError,
    IndexConfigError,
    InvalidRequestError,
    MediaError,
    MediaFetchError,
    MediaNotFoundError,
    MediaTooLargeError,
    MissingDependencyError,
    RateLimitedError,
    RemoteError,
    RemoteTimeoutError,
    ServiceUnavailableError,
    StoreError,
    StoreUnavailableError,
    TaskExistsError,
    TaskInProgressError,
    TaskNotFoundError,
    UnsupportedMediaError,
    UnsupportedOperationError,
    VecsimError,
)
from .adapters import MilvusOptions, QdrantEdgeOptions, QdrantOptions
from .index import CustomIndex
from .aio import AsyncCustomIndex
from .bulk import IngestResult, ingest
from .remote import AsyncRemoteIndex, AsyncRemoteTask, RemoteIndex, RemoteOptions, RemoteTask
from .index_config import FlatIndex, HnswIndex, IvfFlatIndex, IvfPqIndex, IvfSq8Index, parse_index_config
from .schema import (AddManyResult, AddResult, AssetInfo, AssetMatch, AssetPage, AssetSummary, IndexInfo, Match,
                     QueryResult, RemoveResult)
from .validate import DEFAULT_PROJECT, check_project

__version__ = "0.3.0"

__all__ = [
    "AddManyResult", "AddResult", "AssetInfo", "AssetMatch", "AssetPage", "AssetSummary", "AsyncCustomIndex",
    "AsyncRemoteIndex", "AsyncRemoteTask", "AuthenticationError", "CalibrationError", "DEFAULT_PROJECT",
    "RateLimitedError", "RemoteError", "RemoteIndex", "RemoteOptions", "RemoteTask", "RemoteTimeoutError",
    "ServiceUnavailableError", "TaskInProgressError", "UnsupportedOperationError",
    "CorruptMediaError", "CustomIndex", "DescriptorError", "DescriptorFileNotFoundError", "DescriptorMismatchError", "EmptyMediaError", "FlatIndex", "HnswIndex", "IndexConfigError",
    "IndexInfo", "IngestResult", "InvalidRequestError", "IvfFlatIndex", "IvfPqIndex", "IvfSq8Index", "Match", "MediaError", "MediaFetchError",
    "MediaNotFoundError", "MediaTooLargeError", "MissingDependencyError", "MilvusOptions", "QdrantEdgeOptions", "QdrantOptions", "QueryResult",
    "RemoveResult", "StoreError", "StoreUnavailableError", "TaskExistsError",
    "TaskNotFoundError", "UnsupportedMediaError", "VecsimError", "check_project", "ingest", "parse_index_config",
]
