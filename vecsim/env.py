"""Settings read from the environment, in one place.

The index URI: ``VECSIM_INDEX``, else the variables the engines' own tools read, so that a machine
already set up for Milvus or Qdrant needs nothing more: ``MILVUS_URI`` (a Milvus server URI;
pymilvus itself reads this variable when it is imported and refuses anything but
``http(s)://host:port``, so a ``*.db`` path belongs in ``VECSIM_INDEX``), then ``QDRANT_URL`` (a Qdrant server: ``http(s)://host:6333`` is read
as ``qdrant(s)://host:6333``), else ``./vecsim.db``. A Qdrant server's API key: the ``api_key`` (or
``token``) option, else ``QDRANT_API_KEY``.
"""

from __future__ import annotations

import os

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


def env_store_options(uri: str, options: dict) -> dict:
    """``options`` plus what the environment adds for ``uri`` (today: ``QDRANT_API_KEY`` for a
    Qdrant server when no key is given)."""
    if uri.startswith(("qdrant://", "qdrants://")) and not (options.get("api_key") or options.get("token")):
        if key := os.environ.get("QDRANT_API_KEY"):
            return {**options, "api_key": key}
    return options
