"""``vecsim serve``: the custom-search HTTP service over the SDK (docs/service.md).

Needs the ``serve`` extra: ``pip install 'vecsim[serve]'``.
"""

from __future__ import annotations

from .app import create_app
from .settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
