"""Where the time of an add or a query goes, for whoever asks (the service's metrics).

``with timing.collect() as stages:`` around a call gathers ``{stage: seconds}`` of the stages the
core marks with ``timing.stage(name)`` (``decode``, ``embed`` — the embedding, the PDQ hashes and
the keypoints —, ``search``, ``verify``, ``aggregate``, ``write``) in that thread; outside a ``collect`` a stage costs one context-variable read.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager

_current: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar("vecsim_timing", default=None)


@contextmanager
def collect() -> Iterator[dict[str, float]]:
    stages: dict[str, float] = {}
    token = _current.set(stages)
    try:
        yield stages
    finally:
        _current.reset(token)


@contextmanager
def stage(name: str) -> Iterator[None]:
    stages = _current.get()
    if stages is None:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        stages[name] = stages.get(name, 0.0) + time.perf_counter() - start


def add(name: str, seconds: float) -> None:
    """Count ``seconds`` towards ``name`` (for time measured elsewhere, e.g. inside a generator)."""
    stages = _current.get()
    if stages is not None:
        stages[name] = stages.get(name, 0.0) + seconds


def timed_iter(items, name: str):  # noqa: ANN001, ANN201 - any iterable, a generator of its items
    """Yield from ``items``, counting the time spent getting each item towards ``name`` (e.g.
    the decoding behind a lazy stream of frames), not the time the consumer spends on it."""
    iterator = iter(items)
    while True:
        start = time.perf_counter()
        try:
            item = next(iterator)
        except StopIteration:
            add(name, time.perf_counter() - start)
            return
        add(name, time.perf_counter() - start)
        yield item
