"""The service's settings: one :class:`ServerSettings`, read from a TOML file and ``VECSIM_*``
environment variables (pydantic-settings). Every field and its default is in ``docs/service.md``.

Precedence, highest first: keyword arguments (what ``vecsim serve`` passes for its options), the
environment (``VECSIM_INDEX``, ``VECSIM_MAX_UPLOAD_BYTES``, ...; lists as JSON,
``VECSIM_URL_ALLOW='["10.1.0.0/16"]'``), the config file (``--config FILE`` or
``$VECSIM_CONFIG``), then the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from ..errors import InvalidRequestError


class ServerSettings(BaseSettings):
    """What ``vecsim serve`` runs with (``create_app(settings)`` takes the same object)."""

    model_config = SettingsConfigDict(env_prefix="VECSIM_", extra="forbid", validate_default=True)

    # --- the index -------------------------------------------------------------------------------
    index: str = Field("vecsim.db", description="index URI (any vecsim supports: a path, milvus-lite:, "
                       "qdrant-edge:, http://host:19530, qdrant://host:6333)")
    collection: str = Field("vecsim", description="collection in that index; every project shares it")
    data_dir: Path = Field(Path("vecsim-service"), description="keys, the task queue, task records and "
                           "spooled uploads live here (one folder per service instance)")

    # --- network ---------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="bind address; 0.0.0.0 only behind a proxy or in a container")
    port: int = Field(8000, ge=0, le=65535)

    # --- durable async tasks ---------------------------------------------------------------------
    queue: str = Field("sqlite", description='"sqlite" (the task queue in data_dir, one service process) '
                       'or a redis://host:port/db URL (shared by several replicas)')
    workers: int = Field(1, ge=0, le=64, description="task worker threads in this process; 0: an API-only "
                         "replica that accepts tasks and leaves them to other replicas")
    max_queue: int = Field(1000, ge=1, description="tasks queued or running before async calls get 429")
    result_ttl_s: float = Field(7 * 86400.0, gt=0, description="how long finished tasks' results are kept")
    task_lease_s: float = Field(60.0, ge=5, description="a running task not renewed for this long is "
                                "taken over (its worker died)")
    requeue_after_s: float = Field(600.0, ge=10, description="a queued task no worker took for this long "
                                   "is queued again (its queue message was lost in a kill)")

    store_token: SecretStr | None = Field(None, description="the store's credentials: a Milvus server's "
                                          "user:password or token, a Qdrant server's API key (else QDRANT_API_KEY); "
                                          "never logged")

    # --- the vector store's faults, shutting down ------------------------------------------------
    store_timeout_s: float = Field(10.0, gt=0, description="deadline of each request to a Milvus or Qdrant "
                                   "server (a sync call that hits it answers 503 store_unavailable)")
    store_retry_backoff_s: float = Field(1.0, gt=0, description="an async task that cannot reach the store is "
                                         "queued again after this, doubling each time")
    store_retry_max_s: float = Field(30.0, gt=0, description="the longest wait between two tries of such a task")
    shutdown_timeout_s: float = Field(30.0, gt=0, description="on SIGTERM: how long running requests and tasks "
                                      "may take to finish before the process exits")

    # --- callbacks -------------------------------------------------------------------------------
    callback_attempts: int = Field(6, ge=1, le=20, description="deliveries tried per callback")
    callback_backoff_s: float = Field(2.0, gt=0, description="first retry delay; doubles each attempt")
    callback_timeout_s: float = Field(10.0, gt=0, description="connect and read time-out of one delivery")

    # --- limits ----------------------------------------------------------------------------------
    max_upload_bytes: int = Field(512 * 1024**2, ge=1, description="largest request body (413 above)")
    max_url_bytes: int = Field(512 * 1024**2, ge=1, description="largest download of a url input")
    url_timeout_s: float = Field(10.0, gt=0, description="connect and per-read time-out of a url download")
    url_deadline_s: float = Field(120.0, gt=0, description="longest a whole url download may take")
    max_pixels: int | None = Field(None, ge=1, description="the SDK's max_pixels (None: its default)")
    max_duration: float | None = Field(None, gt=0, description="the SDK's max_duration in seconds")
    rate_limit_per_s: float = Field(20.0, gt=0, description="requests per second per project (429 above)")
    rate_burst: int = Field(40, ge=1, description="requests a project may send at once before the rate applies")
    request_timeout_s: float = Field(60.0, gt=0, description="a sync call running longer answers 504")
    sync_concurrency: int = Field(2, ge=1, le=64, description="sync calls embedding or searching at once")
    url_allow: list[str] = Field(default_factory=list, description="address ranges (CIDR) a url or "
                                 "callback_url may resolve to although private, e.g. 10.1.0.0/16")

    # --- operations ------------------------------------------------------------------------------
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = Field(True, description="one JSON line per request on stderr")
    console: bool = Field(False, description="serve the web console at / (docs/console.md); off by default")

    @field_validator("queue")
    @classmethod
    def _queue(cls, value: str) -> str:
        if value != "sqlite" and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f'queue must be "sqlite" or a redis:// URL, got {value!r}')
        return value

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource):
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = _CONFIG_FILE.get() or os.environ.get("VECSIM_CONFIG")
        if config:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
        return tuple(sources)

    @classmethod
    def load(cls, config: str | os.PathLike | None = None, **overrides: Any) -> ServerSettings:
        """Settings from ``config`` (a TOML file; else ``$VECSIM_CONFIG``), the environment and
        ``overrides`` (``None`` values are ignored: they mean "not given on the command line")."""
        if config is not None and not Path(config).is_file():
            raise InvalidRequestError(f"config file {os.fspath(config)!r} does not exist")
        token = _CONFIG_FILE.set(os.fspath(config) if config is not None else None)
        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        finally:
            _CONFIG_FILE.reset(token)


class _ConfigFile:
    """The config file of the settings being built (a context variable: thread-safe)."""

    def __init__(self) -> None:
        import contextvars

        self._var: contextvars.ContextVar[str | None] = contextvars.ContextVar("vecsim_config", default=None)

    def get(self) -> str | None:
        return self._var.get()

    def set(self, value: str | None):
        return self._var.set(value)

    def reset(self, token) -> None:  # noqa: ANN001
        self._var.reset(token)


_CONFIG_FILE = _ConfigFile()
