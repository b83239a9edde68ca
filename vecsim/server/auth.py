"""Who is calling: the project of the request's API key, and its rate limit.

``Authorization: Token KEY`` (or ``Bearer KEY``). A missing, malformed, unknown or revoked key
is the same 401 ``unauthorized`` (the answer never says which). The key is compared in constant
time (:meth:`KeyStore.project_of`) and never logged. Each project has a token bucket of
``rate_burst`` requests refilled at ``rate_limit_per_s``; an empty bucket is a 429 ``rate_limited``
with ``Retry-After``. The buckets are per service process (docs/service.md: with N replicas, a
project's limit is N times this).
"""

from __future__ import annotations

import math
import threading
import time

from .errors import ServiceError
from .keys import KeyStore

UNAUTHORIZED = ServiceError(401, "unauthorized", "a valid API key is required: Authorization: Token KEY",
                            {"WWW-Authenticate": "Token"})


def key_from_header(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, key = value.strip().partition(" ")
    if scheme.lower() not in ("token", "bearer") or not key.strip():
        return None
    return key.strip()


class RateLimiter:
    """A token bucket per project, in this process."""

    def __init__(self, per_s: float, burst: int):
        self.per_s, self.burst = float(per_s), float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # project -> (tokens, last refill)
        self._lock = threading.Lock()

    def take(self, project: str) -> None:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(project, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.per_s)
            if tokens < 1.0:
                self._buckets[project] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / self.per_s))
                raise ServiceError(429, "rate_limited", f"project {project!r} is over its rate limit of "
                                   f"{self.per_s:g} requests per second", {"Retry-After": str(wait)})
            self._buckets[project] = (tokens - 1.0, now)


def authenticate(keys: KeyStore, header: str | None) -> str:
    project = keys.project_of(key_from_header(header) or "")
    if project is None:
        raise UNAUTHORIZED
    return project
