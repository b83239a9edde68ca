"""Settings read from the environment, in one place.

The index URI: ``VECSIM_INDEX``, else the variables the engines' own tools read, so that a machine
already set up for Milvus or Qdrant needs nothing more: ``MILVUS_URI`` (a Milvus server URI;
pymilvus itself reads this variable when it is imported and refuses anything but
``http(s)://host:port``, so a ``*.db`` path belongs in ``VECSIM_INDEX``), then ``QDRANT_URL`` (a Qdrant server: ``http(s)://host:6333`` is read
as ``qdrant(s)://host:6333``), else ``./vecsim.db``. A Qdrant server's API key: the ``api_key`` (or
``token``) option, else ``QDRANT_API_KEY``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

DEFAULT_URI = "vecsim.db"


def default_uri() -> str:
    """The index URI when none is given (see the module docstring for the order)."""
    for name in ("VECSIM_INDEX", "MILVUS_URI"):
        if value := os.environ.get(name, "").strip():
            return value
    if qdrant := os.environ.get("QDRANT_URL", "").strip():
        scheme, sep, rest = qdrant.partition("://")
        if not sep:
            return f"qdrant://{qdrant}"
        return f"qdrants://{rest}" if scheme.lower() == "https" else f"qdrant://{rest}"
    return DEFAULT_URI


def env_store_options(uri: str, options: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """``(options, kwargs)`` with what the environment adds for ``uri``: today ``QDRANT_API_KEY``
    as the key of a Qdrant server when neither the options object nor the keywords give one."""
    key = os.environ.get("QDRANT_API_KEY")
    if not key or not uri.startswith(("qdrant://", "qdrants://")):
        return options, kwargs
    if options is not None:
        if getattr(options, "api_key", "given") is None:
            return dataclasses.replace(options, api_key=key), kwargs
        return options, kwargs
    if kwargs.get("api_key") or kwargs.get("token"):
        return options, kwargs
    return options, {**kwargs, "api_key": key}
