"""Everything one running service holds, built from its settings: the key store, the task ledger
and queue, the SDK service, the metrics, the rate limiter and the URL policy; and how a task runs
(:meth:`Runtime.execute`) and how a task record reads as JSON (:func:`envelope`)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio

from ..errors import (
    StoreUnavailableError,
    TaskExistsError,
    TaskNotFoundError,
    VecsimError,
)
from ..media import MediaOptions
from ..schema import AddResult, AssetMatch, QueryResult, RemoveResult
from .auth import RateLimiter
from .errors import classify, public_message
from .keys import KeyStore
from .ledger import COMPLETED, FAILED, RETRY, TaskRecord, open_ledger
from .models import AddResponse, QueryInfo, QueryResponse, RemoveResponse
from .observability import Metrics
from .service import Service, remove_quietly
from .settings import ServerSettings
from .tasks import TaskQueue

log = logging.getLogger("vecsim.server")


def url_policy(settings: ServerSettings) -> Any:
    """The service's URL policy: addresses checked (no loopback, private, link-local, ...) except
    the ranges the operator allows, the download limit of the settings."""
    from ..media.fetch import UrlPolicy

    return UrlPolicy.strict(allow=tuple(settings.url_allow), max_bytes=settings.max_url_bytes,
                            connect_timeout=settings.url_timeout_s, read_timeout=settings.url_timeout_s,
                            deadline=settings.url_deadline_s)


class Runtime:
    def __init__(self, settings: ServerSettings):
        self.settings = settings
        data = Path(settings.data_dir)
        data.mkdir(parents=True, exist_ok=True)
        self.policy = url_policy(settings)
        media = MediaOptions(url_policy=self.policy)
        media = media.replace(max_pixels=settings.max_pixels, max_duration=settings.max_duration)
        self.keys = KeyStore(data / "keys.sqlite")
        self.ledger = open_ledger(settings.queue, data, settings.result_ttl_s)
        self.metrics = Metrics()
        self.limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_burst)
        self.sync_limiter = anyio.CapacityLimiter(settings.sync_concurrency)
        self.store_limiter = anyio.CapacityLimiter(16)  # removes: store writes only, no CPU-bound work
        self.service = Service(settings, media)
        self.service.on_stages = self._observe_stages
        self.queue = TaskQueue(
            settings, self.ledger, self.execute, self._post_callback, self.keys.webhook_secret,
            envelope_bytes=lambda rec: json.dumps(envelope(rec), separators=(",", ":"), ensure_ascii=False).encode(),
            on_finish=self._finished, on_callback=lambda outcome: self.metrics.callbacks.labels(outcome).inc(),
            on_retry=lambda rec: self.metrics.tasks.labels(rec.kind, "retried").inc())
        self._shutdown_deadline: float | None = None

    # --- checks done before a task is accepted --------------------------------------------------------

    def check_url(self, url: str) -> None:
        from ..media.fetch import check_url

        check_url(url, self.policy)

    @staticmethod
    def query_info(result: QueryResult) -> QueryInfo:
        return QueryInfo(source=result.source, media_type=result.media_type, duration=result.duration,
                         query_frames=result.query_frames, warnings=result.warnings)

    # --- running a task -------------------------------------------------------------------------------

    def execute(self, rec: TaskRecord) -> tuple[str, Any, Any]:
        """Run one claimed task: (status, result JSON, error). A store that cannot be reached (or
        was found so within the last second: no wait for its deadline) is :data:`RETRY`, the task
        runs again later; every other failure is a failed task with a stable code; nothing raises
        out of here."""
        p = rec.params
        unreachable = {"code": "store_unavailable", "message": "the vector store cannot be reached"}
        if self.service.health.down() is not None:
            return RETRY, None, unreachable
        try:
            if rec.kind == "add":
                if not p.get("checked", True):
                    # accepted while the store was down: the task_id is checked now, before anything
                    # is written, and that it was is saved, so that a later attempt that finds the
                    # asset knows it is this task's own
                    if self.service.exists(rec.project, rec.id):
                        raise TaskExistsError(f"task_id {rec.id!r} is already in the index")
                    if self.ledger.save_params(replace(rec, params={**p, "checked": True})) is None:
                        return RETRY, None, {"code": "claim_lost", "message": "another worker took the task over"}
                # a retry after a kill finds what the first attempt committed (a replace is simply run again)
                result = (self.service.recovered_add(rec.project, rec.id, p.get("source", ""))
                          if rec.attempts > 1 and not p.get("replace") else None)
                if result is None:
                    result = self.service.add(rec.project, p["media"], p.get("metadata"), rec.id, bool(p.get("replace")))
                out: Any = result.model_dump(mode="json")
            elif rec.kind == "query":
                q = self.service.query(rec.project, p["media"], p.get("top_k"), p.get("threshold"), p.get("rotations"))
                out = {"output": [a.model_dump(mode="json") for a in q.output],
                       "query": self.query_info(q).model_dump(mode="json")}
            elif rec.kind == "remove":
                try:
                    out = self.service.remove(rec.project, p["target"]).model_dump(mode="json")
                except TaskNotFoundError:
                    if rec.attempts == 1:
                        raise
                    # a retry after a kill: the first attempt removed it
                    out = RemoveResult(task_id=p["target"], removed_frames=0).model_dump(mode="json")
            else:
                raise VecsimError(f"unknown task kind {rec.kind!r}")
            return COMPLETED, out, None
        except StoreUnavailableError:
            return RETRY, None, unreachable
        except Exception as exc:  # noqa: BLE001 - every failure is recorded with a code
            status, code, _ = classify(exc)
            if status >= 500 and not isinstance(exc, VecsimError):
                log.exception("task %s (%s) of project %s failed", rec.id, rec.kind, rec.project)
            return FAILED, None, {"code": code, "message": public_message(exc)}

    def _finished(self, rec: TaskRecord) -> None:
        """After a task's result is recorded: its spooled upload is no longer needed (deleted only
        now, so that a worker killed between running and recording can still run it again)."""
        media = rec.params.get("media") or {}
        if "spool" in media:
            remove_quietly(media["spool"])
        self.metrics.tasks.labels(rec.kind, rec.status).inc()

    def _observe_stages(self, stages: dict[str, float]) -> None:
        for name, seconds in stages.items():
            self.metrics.stage.labels(name).observe(seconds)

    def _post_callback(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        from ..media.fetch import post_url

        return post_url(url, body, policy=self.policy, headers=headers, timeout=self.settings.callback_timeout_s)

    # --- metrics refreshed on scrape --------------------------------------------------------------------

    def refresh_gauges(self) -> None:
        depth, age = self.queue.pending()
        self.metrics.queue_depth.set(depth)
        self.metrics.queue_age.set(age)
        self.metrics.ready.set(1 if self.service.ready else 0)
        if self.service.ready and self.service.health.down() is None:
            for project in self.keys.projects()[:1000]:
                try:
                    self.metrics.assets.labels(project).set(self.service.count(project))
                except StoreUnavailableError:
                    break  # one deadline per scrape at most, not one per project
                except Exception:  # noqa: BLE001 - a store hiccup must not fail the scrape
                    pass

    def begin_shutdown(self) -> None:
        """The process is stopping (SIGTERM): the workers take no new task from now on, and
        :meth:`close` waits for running ones only until ``shutdown_timeout_s`` after this."""
        if self._shutdown_deadline is None:
            self._shutdown_deadline = time.monotonic() + self.settings.shutdown_timeout_s
            self.queue.stop_taking()

    def close(self) -> None:
        """Stop the workers (they get ``shutdown_timeout_s``, counted from :meth:`begin_shutdown`
        where it was called, for their running tasks), then close the index and the ledger."""
        self.begin_shutdown()
        self.queue.stop(timeout=max(0.0, self._shutdown_deadline - time.monotonic()))
        self.service.close()
        self.ledger.close()


def envelope(rec: TaskRecord) -> dict[str, Any]:
    """A task record as the API shows it (the same models as the sync answers)."""
    common = {"task_id": rec.id, "status": rec.status, "created_at": rec.created, "finished_at": rec.finished,
              "error": rec.error, "retries": rec.retries}
    result = rec.result if rec.status == COMPLETED else None
    if rec.kind == "add":
        body: Any = AddResponse(**common, output=AddResult(**result) if result else None)
    elif rec.kind == "query":
        body = QueryResponse(**common, output=[AssetMatch(**a) for a in result["output"]] if result else None,
                             query=QueryInfo(**result["query"]) if result else None)
    else:
        body = RemoveResponse(**common, output=RemoveResult(**result) if result else None)
    return body.model_dump(mode="json")
