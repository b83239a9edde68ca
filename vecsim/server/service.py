"""The service's one connection to the SDK: the shared :class:`~vecsim.CustomIndex`, loaded once
(model and store), and add / query / remove for a project through ``index.for_project(project)``.
Sync endpoints and async task workers both call here; there is no second copy of the logic.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

from .. import timing
from ..errors import StoreUnavailableError, TaskNotFoundError, UrlNotAllowedError, VecsimError
from ..media.inputs import is_url
from ..index import CustomIndex
from ..media import MediaOptions
from ..schema import AddResult, AssetInfo, AssetPage, IndexInfo, QueryResult, RemoveResult
from .errors import ServiceError
from .health import StoreHealth
from .settings import ServerSettings

log = logging.getLogger("vecsim.server")
#: Where the readiness probe reads (by primary key): an asset id of the default project that only
#: has to be looked up, found or not.
PROBE_TASK_ID = "vecsim-readyz-probe"
#: Seconds a store health observation stays fresh; and the most /readyz waits for a probe.
HEALTH_TTL_S = 1.0
PROBE_WAIT_S = 2.0
RETRY_AFTER = {"Retry-After": "5"}


def store_options(settings: ServerSettings) -> dict[str, Any]:
    """The index's store options from the settings: ``store_timeout_s`` as the request deadline
    of a Milvus or Qdrant server and ``store_token`` as its credentials (the embedded engines
    make no network requests)."""
    from ..adapters import engine_of

    engine = engine_of(settings.index)
    secret = {"token": settings.store_token.get_secret_value()} if settings.store_token else {}
    if engine == "milvus":
        return {"timeout": settings.store_timeout_s, **secret}
    if engine == "qdrant":
        return {"timeout": max(1, math.ceil(settings.store_timeout_s)), **secret}  # qdrant-client: whole seconds
    return {}


class _NamedFile:
    """An uploaded file (in the spool folder, or as the request parser holds it) that results
    name by its upload name."""

    def __init__(self, file: Any, name: str):
        self._f = open(file, "rb") if isinstance(file, (str, Path)) else file
        self.name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._f, attr)

    def close(self) -> None:
        self._f.close()


class Service:
    """Loads the index in the background (``/readyz`` says when it is ready) and runs calls."""

    def __init__(self, settings: ServerSettings, media: MediaOptions):
        self.settings = settings
        self.media = media
        self.index: CustomIndex | None = None
        self.error: str | None = None
        self._loaded = threading.Event()
        self.closing = threading.Event()
        self.spool_dir = Path(settings.data_dir) / "spool"
        #: Called with ``{stage: seconds}`` after each add and query (the metrics).
        self.on_stages: Any = None
        self.health = StoreHealth(self._probe, ttl_s=HEALTH_TTL_S, wait_s=min(PROBE_WAIT_S, settings.store_timeout_s))

    # --- lifecycle -------------------------------------------------------------------------------

    def load(self) -> None:
        """Open the index (the model and the store); run on a thread at start-up. A store that
        cannot be reached is tried again (backoff up to ``store_retry_max_s``) until it answers or
        the service stops; any other failure is final (``/readyz`` says ``failed``)."""
        start = time.monotonic()
        delay = self.settings.store_retry_backoff_s
        try:
            while True:
                try:
                    self.index = CustomIndex(self.settings.index, collection=self.settings.collection,
                                             media=self.media, progress=False, **store_options(self.settings))
                    break
                except StoreUnavailableError as exc:
                    self.error = None
                    self.health.failed(exc)
                    log.warning("the store of %s cannot be reached (%s); trying again in %.1f s",
                                self.settings.index, exc, delay)
                    if self.closing.wait(delay):
                        return
                    delay = min(delay * 2, self.settings.store_retry_max_s)
            self.health.succeeded()
            log.info("index %s loaded in %.1f s (%s)", self.settings.index, time.monotonic() - start,
                     self.index.store.engine)
        except Exception as exc:  # noqa: BLE001 - reported by /readyz and the log
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("the index %s could not be opened", self.settings.index)
        finally:
            self._loaded.set()

    @property
    def ready(self) -> bool:
        return self.index is not None

    def wait_ready(self, timeout: float | None = None) -> bool:
        self._loaded.wait(timeout)
        return self.ready

    def close(self) -> None:
        self.closing.set()
        if self.index is not None:
            self.index.close()
            self.index = None

    # --- the store's health --------------------------------------------------------------------------

    def _probe(self) -> None:
        """One cheap read of each collection by primary key (deadline: ``store_timeout_s``)."""
        store = self.check_ready().store
        store.assets([PROBE_TASK_ID])
        store.local_features([(PROBE_TASK_ID, "0", 0)])

    def store_status(self) -> tuple[bool, str]:
        """(the store answers, why not): for ``/readyz``, probed at most once per second."""
        return self.health.check()

    def check_store(self) -> None:
        """A 503 ``store_unavailable`` at once where a call or probe found the store unreachable
        within the last second (a sync call would only wait for its deadline)."""
        if self.health.down() is not None:
            raise ServiceError(503, "store_unavailable", "the vector store cannot be reached; retry later",
                               RETRY_AFTER)

    def _store_call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``, its outcome noted in :attr:`health`."""
        try:
            result = fn(*args, **kwargs)
        except StoreUnavailableError as exc:
            self.health.failed(exc)
            raise
        self.health.succeeded()
        return result

    def check_ready(self) -> CustomIndex:
        """The loaded index, or a 503 ``not_ready`` while the model and store load (or failed to)."""
        if self.index is None:
            raise ServiceError(503, "not_ready", "the service is still loading its model and store"
                               if self.error is None else "the service could not open its index", {"Retry-After": "5"})
        return self.index

    def for_project(self, project: str) -> CustomIndex:
        return self.check_ready().for_project(project)

    # --- the three operations ----------------------------------------------------------------------

    def _media(self, media: dict[str, Any]) -> Any:
        if "url" in media:  # the SDK reads any other string as a local path: never pass one on
            if not is_url(media["url"]):
                raise UrlNotAllowedError(str(media["url"])[:200], "only http:// and https:// URLs are fetched")
            return media["url"]
        if "file" in media:
            return _NamedFile(media["file"], media.get("filename") or "upload")
        path = Path(media["spool"])
        if not path.exists():
            raise ServiceError(500, "internal_error", f"the upload of {media.get('filename')!r} is no longer on disk")
        return _NamedFile(path, media.get("filename") or "upload")

    def _timed(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``, its stage times (:mod:`vecsim.timing`) passed to ``on_stages``."""
        with timing.collect() as stages:
            try:
                return self._store_call(fn, *args, **kwargs)
            finally:
                if self.on_stages is not None:
                    self.on_stages(dict(stages))

    def add(self, project: str, media: dict[str, Any], metadata: dict[str, Any] | None, task_id: str | None,
            replace: bool = False) -> AddResult:
        index = self.for_project(project)
        handle = self._media(media)
        try:
            return self._timed(index.add, handle, metadata=metadata, task_id=task_id, replace=replace)
        finally:
            _close(handle)

    def query(self, project: str, media: dict[str, Any], top_k: int | None, threshold: float | None,
              rotations: bool | None = None) -> QueryResult:
        index = self.for_project(project)
        handle = self._media(media)
        kwargs: dict[str, Any] = {"threshold": threshold, "rotations": rotations}
        if top_k is not None:
            kwargs["top_k"] = top_k
        try:
            return self._timed(index.query, handle, **kwargs)
        finally:
            _close(handle)

    def remove(self, project: str, task_id: str) -> RemoveResult:
        return self._store_call(self.for_project(project).remove, task_id)

    def recovered_add(self, project: str, task_id: str, source: str) -> AddResult | None:
        """The result of an add that a killed worker committed before it could record it (a task
        run a second time finds its asset already there), or None where it is not there."""
        try:
            info = self._store_call(self.for_project(project).get, task_id)
        except TaskNotFoundError:
            return None
        n = len(info.frames)
        return AddResult(task_id=task_id, source=info.source or source, media_type=info.media_type,
                         duration=info.duration, frames=n, stored_frames=n)

    def exists(self, project: str, task_id: str) -> bool:
        try:
            self._store_call(self.for_project(project).get, task_id)
        except TaskNotFoundError:
            return False
        return True

    def exists_if_reachable(self, project: str, task_id: str) -> bool | None:
        """:meth:`exists`, or None where the store cannot be reached: an async add is accepted
        while the store is down, and its task checks the task_id when it runs (task_exists)."""
        if self.health.down() is not None:
            return None
        try:
            return self.exists(project, task_id)
        except StoreUnavailableError:
            return None

    def count(self, project: str) -> int:
        return self._store_call(self.for_project(project).count)

    # --- reads -------------------------------------------------------------------------------------

    def get(self, project: str, task_id: str) -> AssetInfo:
        return self._store_call(self.for_project(project).get, task_id)

    def list_assets(self, project: str, limit: int, after: str | None) -> AssetPage:
        return self._store_call(self.for_project(project).list_assets, limit=limit, after=after)

    def info(self, project: str, uri: str) -> IndexInfo:
        """The project's view of the index, its ``uri`` the service's own address (the store's
        address and credentials are the operator's, never shown to a client)."""
        return self._store_call(self.for_project(project).info).model_copy(update={"uri": uri})


def _close(handle: Any) -> None:
    close = getattr(handle, "close", None)
    if close is not None:
        try:
            close()
        except OSError:
            pass


def remove_quietly(path: str | os.PathLike | None) -> None:
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not delete spooled upload %s: %s", path, exc)


__all__ = ["Service", "VecsimError"]
