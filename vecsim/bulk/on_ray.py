"""An ingest on a Ray cluster (Ray Data; ``pip install 'vecsim[ray]'``).

Two stages over each window of manifest rows:

1. **read** (Ray tasks, CPU): digest each row's media (:func:`.work.fetch`); a row the index
   holds with the same digest is ``skipped`` here, before anything is decoded. A URL is
   downloaded here and its bytes travel on; a path travels as the path (the workers must see the
   files the driver sees: a shared filesystem).
2. **embed** (an actor pool of ``workers`` actors, one model each, ``gpus_per_worker`` GPUs and
   ``cpus_per_worker`` CPUs each): decode and embed (:class:`.work.Embedder`). With a server
   store each actor also writes and commits its assets (:class:`.writer.Committer`); with an
   embedded file the actors return the vectors and the driver writes them, alone.

Decoding runs in the actor, next to the model, not in the read tasks: a decoded 1 080p frame is
about 6 MB where a second of compressed video is a few hundred KB, so moving decoded frames
between processes would cost more than decoding where they are embedded.

Ray restarts an actor that dies and retries its batch; every step is safe to repeat (the writer
reads the records anew before it writes, and a task_id's uncommitted rows are swept), so a
retried or rerun row is committed once.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import MissingDependencyError
from ..index import CustomIndex
from ..media import MediaOptions
from .local import Groups
from .work import Embedded, Embedder, Fetched, Outcome, Task, fetch
from .writer import Committer

log = logging.getLogger(__name__)

#: Manifest rows per Ray Data execution: the actor pool starts once per window (a model load and
#: about 2 s of Ray Data's own start-up), so a window is many minutes of work.
WINDOW_ROWS = 20_000
#: Rows per batch of a read task and of an embedding actor, at most (:func:`_batch_rows`). An
#: actor commits a batch in one write: on a Milvus 2.3.5 server a write of one asset costs about
#: 210 ms (its record lookup, insert and upsert each wait for the server), of 16 assets 24 ms per
#: asset, of 256 assets 2 ms (scripts/bench_write_path.py), so batches are as large as the
#: spreading over actors allows.
EMBED_BATCH = 32
#: Read tasks at once. They reserve no CPU: they hash files and download URLs (I/O, a few ms of CPU
#: per asset), and a cluster whose CPUs the embedding actors hold all of (2 workers on 2 cores)
#: would otherwise never schedule one.
READ_TASKS = 2
#: Batches an embedding actor holds at once (each on a thread of its own): one embedding while
#: the one before it is written (:class:`_EmbedActor`).
CALLS_PER_ACTOR = 2


@dataclass(frozen=True)
class Recipe:
    """How an actor opens what it needs: the descriptor and media options always; the index
    itself only where it writes (a server store)."""

    uri: str
    collection: str
    project: str
    descriptor: str
    media: MediaOptions
    batch_size: int
    local: bool
    store_options: Any
    writes: bool
    replace: bool
    threads: int


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("an ingest on Ray needs ray[data]: pip install 'vecsim[ray]'") from exc
    return ray


def _blobs(batch: dict[str, Any]) -> list[Any]:
    return [pickle.loads(b) for b in batch["blob"]]


def _pack(items: list[Any]) -> dict[str, Any]:
    import numpy as np

    out = np.empty(len(items), dtype=object)
    out[:] = [pickle.dumps(i, protocol=pickle.HIGHEST_PROTOCOL) for i in items]
    return {"blob": out}


def _read(batch: dict[str, Any], media: MediaOptions) -> dict[str, Any]:
    return _pack([fetch(task, media) for task in _blobs(batch)])


def _limit_threads(threads: int) -> None:
    """Hold an actor to the CPUs it reserved: torch (now, and when the descriptor loads its model:
    ``VECSIM_THREADS``) and OpenCV's pool (the keypoints). Without this, each actor on a two-core
    node ran two torch threads; two actors then ran at half the speed of one (measured)."""
    import torch

    os.environ["VECSIM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    try:
        import cv2
    except ImportError:  # no keypoints without OpenCV: nothing to limit
        return
    cv2.setNumThreads(threads)


class _EmbedActor:
    """One model (and, writing, one index connection) per actor.

    Ray Data hands it :data:`CALLS_PER_ACTOR` batches at once, each on its own thread; a lock per
    stage keeps one batch embedding and one writing at a time, so a batch's write to the server
    (mostly waiting for it) overlaps the next batch's embedding instead of idling the CPU."""

    def __init__(self, recipe: Recipe):
        _limit_threads(recipe.threads)
        self.recipe = recipe
        self.embedding, self.writing = threading.Lock(), threading.Lock()
        self.index = None
        if recipe.writes:
            self.index = CustomIndex(recipe.uri, collection=recipe.collection, project=recipe.project,
                                     descriptor=recipe.descriptor, media=recipe.media, batch_size=recipe.batch_size,
                                     store_options=recipe.store_options, progress=False)
            self.committer = Committer(self.index, recipe.replace)
        descriptor = self.index.descriptor if self.index is not None else recipe.descriptor
        self.embedder = Embedder(descriptor, recipe.media, recipe.local, recipe.batch_size)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out: list[Any] = []
        embedded: list[Embedded] = []
        with self.embedding:
            for item in _blobs(batch):
                if isinstance(item, Fetched):
                    item = self.embedder.embed(item)
                (embedded if isinstance(item, Embedded) else out).append(item)
        if self.recipe.writes and embedded:
            with self.writing:
                out += self.committer.write(embedded)
        else:
            out += embedded
        return _pack(out)


def _batch_rows(rows: int, workers: int) -> int:
    """Rows per batch: up to :data:`EMBED_BATCH`, but at least four batches per actor, so that a
    window of a few long videos is spread over every actor rather than handed to one."""
    return max(1, min(EMBED_BATCH, rows // (4 * workers)))


def _windows(chunks: Iterable[list[Task]], size: int) -> Iterable[list[Task]]:
    window: list[Task] = []
    for tasks in chunks:
        window += tasks
        if len(window) >= size:
            yield window
            window = []
    if window:
        yield window


def run_on_ray(chunks: Iterable[list[Task]], index: CustomIndex, tally, replace: bool, *, address: str,
               workers: int, cpus_per_worker: float, gpus_per_worker: float, driver_writes: bool) -> None:
    ray = _ray()
    started_here = False
    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=int(max(1, round(workers * cpus_per_worker))) + 1, include_dashboard=False,
                     log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
        started_here = True
    ray.data.DataContext.get_current().enable_progress_bars = False  # ours is the driver's bar
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    recipe = Recipe(uri=index.uri, collection=index._store.collection, project=index.project,
                    descriptor=index.descriptor.name, media=index.media_options, batch_size=index.batch_size,
                    local=index._stores_local, store_options=getattr(index._store, "options", None),
                    writes=not driver_writes, replace=replace, threads=max(1, int(cpus_per_worker)))
    groups = Groups(Committer(index, replace), tally) if driver_writes else None
    try:
        for window in _windows(chunks, WINDOW_ROWS):
            per_batch = _batch_rows(len(window), workers)
            ds = ray.data.from_items([{"blob": pickle.dumps(t)} for t in window],
                                     override_num_blocks=max(1, len(window) // per_batch))
            ds = ds.map_batches(_read, fn_kwargs={"media": index.media_options}, batch_size=per_batch,
                                batch_format="numpy", num_cpus=0, concurrency=READ_TASKS)
            ds = ds.map_batches(_EmbedActor, fn_constructor_kwargs={"recipe": recipe}, batch_size=per_batch,
                                batch_format="numpy", compute=ray.data.ActorPoolStrategy(
                                    size=workers, max_concurrent_calls_per_actor=CALLS_PER_ACTOR,
                                    enable_true_multi_threading=True),
                                num_cpus=cpus_per_worker, num_gpus=gpus_per_worker or None)
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for item in _blobs(batch):
                    if isinstance(item, Outcome):
                        tally.outcome(item)
                    elif groups is not None:
                        groups.add(item)
            if groups is not None:
                groups.flush()
    finally:
        if groups is not None:
            groups.flush()
        if started_here:
            ray.shutdown()
