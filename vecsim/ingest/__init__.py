"""Bulk ingest (groundwork): the manifest of assets to add, and the file of rows that failed.

- :mod:`.manifest`: :class:`Manifest` / :func:`read_manifest` stream a CSV, JSON lines or Parquet
  manifest as :class:`ManifestRow` (one asset to add) and :class:`BadRow` (one that cannot be).
- :mod:`.failures`: :class:`FailuresFile`, the append-only JSON lines record of failed rows.

The pipeline that adds the rows is not here yet (see docs/ingest-design.md).
"""

from .failures import FailuresFile, read_failures
from .manifest import (
    BAD_ROW_CODES,
    BadRow,
    Manifest,
    ManifestError,
    ManifestRow,
    detect_format,
    read_manifest,
)

__all__ = [
    "BAD_ROW_CODES", "BadRow", "FailuresFile", "Manifest", "ManifestError", "ManifestRow", "detect_format",
    "read_failures", "read_manifest",
]
