"""The worker's half of an ingest: read one manifest row's media, digest it, and (unless the
index holds it already with the same content) decode and embed it with ``add``'s own steps.

Runs wherever the embedding runs: in the ingesting process (local mode), or in Ray tasks (read)
and actors (decode + embed). Everything here is picklable plain data, so a Ray block can carry it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..descriptors import Descriptor, load_descriptor
from ..embedding import FrameData, embed_stream
from ..errors import MediaError, error_code
from ..index import MediaFacts
from ..media import MediaOptions, download, is_url, open_media

#: Bytes read at a time while digesting a file.
DIGEST_CHUNK = 1 << 20


class Task(NamedTuple):
    """One asset to ingest: a manifest row with its final task_id, and what the index held for
    that id when the row was dispatched (``known``: the stored digest; None = not stored)."""

    line: int
    source: str
    task_id: str
    metadata: dict[str, Any]
    known: str | None = None


class Outcome(NamedTuple):
    """What became of one task: ``status`` is ``added``, ``replaced``, ``skipped`` (the index holds
    this content under this id already) or ``failed`` (``code`` and ``message`` say why)."""

    line: int
    source: str
    task_id: str
    status: str
    frames: int = 0  # stored frame rows
    sampled: int = 0  # frames decoded and embedded
    code: str = ""
    message: str = ""


@dataclass
class Fetched:
    """A task's media, read: ``media`` is a local path (read where it lies) or the bytes of a
    downloaded URL (they travel to the embedding worker)."""

    task: Task
    digest: str
    media: str | bytes


@dataclass
class Embedded:
    """A task's media decoded and embedded: every sampled frame as ``add`` writes it."""

    task: Task
    digest: str
    facts: MediaFacts
    frames: list[FrameData] = field(default_factory=list)


def skipped(task: Task, why: str = "") -> Outcome:
    return Outcome(task.line, task.source, task.task_id, "skipped", message=why)


def failed(task: Task, exc: BaseException) -> Outcome:
    """The failure outcome of ``task``: the stable code of the error (the service's codes)."""
    message = str(exc) or type(exc).__name__
    if not isinstance(exc, MediaError):  # a media error's message starts with its source already
        message = f"{task.source}: {message}"
    return Outcome(task.line, task.source, task.task_id, "failed", code=error_code(exc)[1], message=message)


def file_digest(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(DIGEST_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def fetch(task: Task, options: MediaOptions) -> Fetched | Outcome:
    """Read the task's media and digest it; ``skipped`` when the index holds this content under
    this id already (nothing is decoded then), a ``failed`` outcome when it cannot be read."""
    try:
        if is_url(task.source):
            tmp = download(task.source, policy=options.url_policy)
            try:
                with open(tmp, "rb") as f:
                    data = f.read()
            finally:
                os.unlink(tmp)
            digest, media = hashlib.sha256(data).hexdigest(), data
        else:
            digest, media = file_digest(task.source), task.source
    except Exception as exc:  # noqa: BLE001 - a row that cannot be read is reported, never stops the job
        return failed(task, _named(exc, task))
    if task.known and task.known == digest:
        return skipped(task, "unchanged")
    return Fetched(task, digest, media)


class Embedder:
    """Decodes and embeds fetched media as ``CustomIndex.add`` does: the same media options,
    descriptor, batches and local features (``local``: the collection keeps them)."""

    def __init__(self, descriptor: str | Descriptor, media: MediaOptions, local: bool, batch_size: int = 16):
        self.descriptor = load_descriptor(descriptor)
        self.media, self.local, self.batch_size = media, local, max(1, batch_size)

    def embed(self, item: Fetched) -> Embedded | Outcome:
        task = item.task
        try:
            stream = open_media(item.media, self.media)
            frames = list(embed_stream(self.descriptor, stream.frames, self.batch_size, self.local))
        except Exception as exc:  # noqa: BLE001 - reported per row
            return failed(task, _named(exc, task))
        facts = MediaFacts(stream.media_type, task.source, stream.duration or 0.0, list(stream.warnings))
        return Embedded(task, item.digest, facts, frames)


def _named(exc: BaseException, task: Task) -> BaseException:
    """A media error about downloaded bytes names the row's source instead."""
    if isinstance(exc, MediaError) and exc.source != task.source:
        return type(exc)(task.source, exc.reason)
    return exc
