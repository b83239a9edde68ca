"""Whether the vector store answers, as the service last saw it: what ``/readyz`` reports while
the index is loaded, and what lets sync calls answer 503 at once and task workers put tasks back
without waiting for a dead store's deadline each time.

Two sources keep it current: every store call the service makes (:meth:`StoreHealth.failed` on a
:class:`~vecsim.errors.StoreUnavailableError`, :meth:`StoreHealth.succeeded` otherwise), and
:meth:`StoreHealth.check`, a probe run at most once per ``ttl_s`` and one at a time, whose answer
the caller waits for at most ``wait_s`` (a probe still running then means the store does not
answer: a flood of ``/readyz`` calls never piles up on a stopped server).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..errors import StoreUnavailableError, VecsimError

log = logging.getLogger("vecsim.server")


class StoreHealth:
    def __init__(self, probe: Callable[[], None], ttl_s: float = 1.0, wait_s: float = 2.0):
        self._probe = probe
        self.ttl_s, self.wait_s = ttl_s, wait_s
        self._lock = threading.Lock()
        self._ok, self._at, self._reason = True, float("-inf"), ""
        self._probing: threading.Event | None = None

    def _set(self, ok: bool, reason: str) -> None:
        with self._lock:
            if ok != self._ok:
                if ok:
                    log.info("the vector store answers again")
                else:
                    log.warning("the vector store cannot be reached: %s", reason)
            self._ok, self._at, self._reason = ok, time.monotonic(), reason

    def succeeded(self) -> None:
        self._set(True, "")

    def failed(self, exc: BaseException) -> None:
        self._set(False, str(exc) or type(exc).__name__)

    def down(self) -> str | None:
        """The reason, where a call or probe found the store unreachable within the last ``ttl_s``;
        else None (up, or not known lately: try it)."""
        with self._lock:
            if not self._ok and time.monotonic() - self._at < self.ttl_s:
                return self._reason
        return None

    def check(self) -> tuple[bool, str]:
        """(answers, reason): the last state if it is fresh, else a probe's answer."""
        with self._lock:
            if time.monotonic() - self._at < self.ttl_s:
                return self._ok, self._reason
            start = self._probing is None
            if start:
                self._probing = threading.Event()
            done = self._probing
        if start:
            threading.Thread(target=self._run_probe, args=(done,), name="vecsim-store-probe", daemon=True).start()
        if not done.wait(self.wait_s):
            return False, f"the vector store has not answered a probe within {self.wait_s:g} s"
        with self._lock:
            return self._ok, self._reason

    def _run_probe(self, done: threading.Event) -> None:
        try:
            self._probe()
        except StoreUnavailableError as exc:
            self.failed(exc)
        except VecsimError as exc:  # it answered, with an error: reachable
            log.warning("the store probe failed: %s", exc)
            self.succeeded()
        except Exception as exc:  # noqa: BLE001 - a probe must never kill its thread silently
            log.exception("the store probe failed")
            self.failed(exc)
        else:
            self.succeeded()
        finally:
            with self._lock:
                self._probing = None
            done.set()
