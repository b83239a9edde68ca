"""Bulk ingest (``vecsim ingest`` / :func:`vecsim.ingest`): add every asset of a manifest, in this
process or on a Ray cluster, resumably.

- :mod:`.manifest`: :class:`Manifest` / :func:`read_manifest` stream a CSV, JSON lines or Parquet
  manifest as :class:`ManifestRow` (one asset to add) and :class:`BadRow` (one that cannot be).
- :mod:`.failures`: :class:`FailuresFile`, the append-only JSON lines record of failed rows.
- :mod:`.work`: a row's media read, digested, decoded and embedded (the worker's half).
- :mod:`.writer`: embedded assets committed in groups, each whole, each task_id once.
- :mod:`.job`: :func:`ingest`, the driver; :mod:`.local` and :mod:`.on_ray` run the work.
"""

from .failures import FailuresFile, read_failures
from .job import IngestResult, derived_task_id, ingest
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
    "BAD_ROW_CODES", "BadRow", "FailuresFile", "IngestResult", "Manifest", "ManifestError", "ManifestRow",
    "derived_task_id", "detect_format", "ingest", "read_failures", "read_manifest",
]
