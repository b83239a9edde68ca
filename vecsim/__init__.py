"""vecsim: visual copy detection for images and videos on Milvus and Qdrant: add, query, remove."""

from .errors import (
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
    StoreError,
    StoreUnavailableError,
    TaskExistsError,
    TaskNotFoundError,
    UnsupportedMediaError,
    VecsimError,
)
from .adapters import MilvusOptions, QdrantEdgeOptions, QdrantOptions
from .index import CustomIndex
from .aio import AsyncCustomIndex
from .index_config import FlatIndex, HnswIndex, IvfFlatIndex, IvfPqIndex, IvfSq8Index, parse_index_config
from .schema import (
    AddManyResult,
    AddResult,
    AssetInfo,
    AssetMatch,
    AssetPage,
    AssetSummary,
    IndexInfo,
    Match,
    QueryResult,
    RemoveResult,
)
from .validate import DEFAULT_PROJECT, check_project

__version__ = "0.3.0"

__all__ = [
    "AddManyResult", "AddResult", "AssetInfo", "AssetMatch", "AssetPage", "AssetSummary", "AsyncCustomIndex", "CalibrationError", "DEFAULT_PROJECT",
    "CorruptMediaError", "CustomIndex", "DescriptorError", "DescriptorFileNotFoundError", "DescriptorMismatchError", "EmptyMediaError", "FlatIndex", "HnswIndex", "IndexConfigError",
    "IndexInfo", "InvalidRequestError", "IvfFlatIndex", "IvfPqIndex", "IvfSq8Index", "Match", "MediaError", "MediaFetchError",
    "MediaNotFoundError", "MediaTooLargeError", "MissingDependencyError", "MilvusOptions", "QdrantEdgeOptions", "QdrantOptions", "QueryResult",
    "RemoveResult", "StoreError", "StoreUnavailableError", "TaskExistsError",
    "TaskNotFoundError", "UnsupportedMediaError", "VecsimError", "check_project", "parse_index_config",
]
