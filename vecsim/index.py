"""``CustomIndex``: the facade. add / query / remove media in a copy-detection index.

Data flows one way: media -> frames (:mod:`vecsim.media`) -> descriptors
(:mod:`vecsim.descriptors`, :mod:`vecsim.embedding`) -> store (:mod:`vecsim.adapters`) -> hits ->
per-asset matches (:mod:`vecsim.search`, :mod:`vecsim.aggregate`) -> pydantic results
(:mod:`vecsim.schema`).
"""

from __future__ import annotations

import copy
import logging
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from . import timing
from .descriptors import Descriptor, load_descriptor
from .descriptors import local as local_desc
from .descriptors.local import FORMAT as LOCAL_FORMAT
from .descriptors.pdq import hamming, pdq_dihedral_hashes
from .embedding import QUARTER_TURNS, FrameData, batched, embed_stream, embed_variants  # noqa: F401  (QUARTER_TURNS: re-exported)
from .env import DEFAULT_URI, default_uri, env_store_options  # noqa: F401 (DEFAULT_URI: re-export)
from .errors import (
    DescriptorMismatchError,
    IndexConfigError,
    InvalidRequestError,
    MediaError,
    StoreError,
    TaskExistsError,
    TaskNotFoundError,
)
from .index_config import IndexConfig, parse_index_config
from .media import MediaInput, MediaOptions, MediaStream, describe, expand_sources, open_media
from .schema import (
    AddFailure,
    AddManyResult,
    AddResult,
    AssetInfo,
    AssetPage,
    AssetSummary,
    DescriptorInfo,
    FrameInfo,
    IndexInfo,
    QueryResult,
    RemoveResult,
    VacuumResult,
)
from .search import CANDIDATES_PER_FRAME, FRAMES_PER_ASSET, QueryBatch, match_assets, search_frames  # noqa: F401
from .store import AssetRecord, CollectionSpec, FrameRow, ReadOnlyStore, VectorStore
from .task_locks import lock_scope, task_lock
from .validate import (  # noqa: F401 (re-export)
    DEFAULT_PROJECT,
    MAX_METADATA_BYTES,
    check_list_args,
    check_metadata,
    check_project,
    check_query_args,
    check_task_id,
    new_task_id,
    repeated,
)

if TYPE_CHECKING:
    from .adapters import StoreOptions
DEFAULT_COLLECTION = "vecsim"
log = logging.getLogger(__name__)

#: Default ``threshold`` on ``similarity_score``: a calibrated P(copy) of one half (see docs/calibration.md).
DEFAULT_THRESHOLD = 0.5
DEFAULT_TOP_K = 5
#: Frame rows per write.
WRITE_BATCH = 256


class CustomIndex:
    """A custom copy-detection index on a vector store.

    >>> index = CustomIndex("photos.db")   # embedded (a folder; Qdrant Edge); http://host:19530 for a Milvus server
    >>> added = index.add("cat.jpg", metadata={"listing": 42})
    >>> index.query("cat_cropped.jpg").output[0].task_id == added.task_id
    True

    ``index`` (type name or config) and ``index_params`` apply when the collection is created;
    an existing collection keeps what it was built with. ``descriptor`` must match the one the
    collection was built with. How media is read comes from ``media`` (a
    :class:`~vecsim.media.MediaOptions`; the keywords ``fps``, ``max_duration``, ``max_pixels`` and
    ``dedupe_distance`` override its fields): videos are sampled at ``fps`` frames per second (by
    presentation time) up to ``max_duration`` seconds; with ``dedupe_distance`` set, a frame within
    that many PDQ bits of the previous kept frame is not stored, and the kept frame covers its time.

    ``local_features`` (applies when the collection is created): keep each frame's keypoints
    (:mod:`vecsim.descriptors.local`, about 5 KB a frame) so that queries verify their candidates
    geometrically, and a different photo of the same kind of thing does not score as a copy
    (docs/calibration.md). ``False`` makes a collection without them, scored by the cosine alone.

    A new local path is created on the embedded default engine, Qdrant Edge, with an HNSW index
    (``vecsim.adapters.default_index``); a path holding a Milvus Lite index of an earlier version
    keeps opening as Milvus Lite (``milvus-lite:PATH`` creates a new one).

    ``store_options`` is the engine's typed options object (:class:`~vecsim.MilvusOptions` for
    Milvus Lite or a Milvus server: ``token``, ``db_name``, ``consistency``;
    :class:`~vecsim.QdrantOptions`: ``api_key``, ``prefer_grpc``, ``timeout``;
    :class:`~vecsim.QdrantEdgeOptions`: ``auto_optimize``, ...). Its fields may instead be given as
    extra keyword arguments (``CustomIndex("x.db", token=...)``); an option the URI's engine does
    not take is an :class:`~vecsim.IndexConfigError` (see ``vecsim.adapters.open_store``). A Qdrant
    server's key defaults to ``$QDRANT_API_KEY`` (:mod:`vecsim.env`).

    ``store``: a store already opened with ``vecsim.adapters.open_store`` (e.g. one a benchmark
    bulk-loaded) to use instead of opening ``uri`` / ``collection``; the index then owns it and
    closes it. Its spec is checked like that of an opened one, and it must be scoped to
    ``project``.

    ``project``: the project (tenant) the index works in: ``add``, ``query``, ``remove``, ``get``,
    ``count``, ``info`` and ``vacuum`` see and touch only that project's assets, so many projects
    can share one collection and even the same task_ids (``docs/tenancy.md``). ``""`` (the
    default) is the default project; other names are 1-64 characters of ``A-Z a-z 0-9 _ . -``,
    starting with a letter or digit (:func:`~vecsim.validate.check_project`; anything else is an
    :class:`~vecsim.InvalidRequestError`). Every collection this version creates isolates
    projects; one made by vecsim < 0.4 holds only the default project, and opening it with another
    is an :class:`~vecsim.IndexConfigError`. To serve many projects from one process, open the
    index once and call :meth:`for_project` per request.
    """

    def __init__(
        self,
        uri: str | None = None,
        *,
        collection: str = DEFAULT_COLLECTION,
        descriptor: str | Descriptor | None = None,
        index: str | IndexConfig | None = None,
        index_params: dict[str, Any] | None = None,
        media: MediaOptions | None = None,
        max_pixels: int | None = None,
        fps: float | None = None,
        max_duration: float | None = None,
        dedupe_distance: int | None = None,
        batch_size: int = 16,
        progress: bool | None = None,
        store_options: StoreOptions | None = None,
        store: VectorStore | None = None,
        local_features: bool = True,
        project: str = DEFAULT_PROJECT,
        **legacy_store_options: Any,
    ):
        from vecsim.adapters import default_index, open_store

        project = check_project(project)  # before anything is opened or created

        if store is not None and (store_options or legacy_store_options or (uri is not None and uri != store.uri)):
            raise InvalidRequestError(
                f"store is an open store of {store.uri}; uri {uri!r} and store options {sorted(legacy_store_options)} "
                "apply only when the index opens its own"
            )
        self.uri = store.uri if store is not None else uri or default_uri()
        self.descriptor: Descriptor = load_descriptor(descriptor)
        overrides = {"fps": fps, "max_duration": max_duration, "max_pixels": max_pixels}
        if dedupe_distance is not None:
            overrides["dedupe_distance"] = dedupe_distance
        self.media_options: MediaOptions = (media or MediaOptions()).replace(**overrides)
        self.batch_size = max(1, batch_size)
        self.progress = progress
        wanted = _index_config(index, index_params)
        spec = CollectionSpec(
            descriptor_name=self.descriptor.name,
            descriptor_version=self.descriptor.version,
            dim=self.descriptor.dim,
            index=wanted or (store.spec.index if store is not None else default_index(self.uri)),
            local_features=LOCAL_FORMAT if local_features else "",
            projects=True,  # every collection this version creates isolates projects
        )
        if store is None:
            store_options, legacy_store_options = env_store_options(self.uri, store_options, legacy_store_options)
            store = open_store(self.uri, collection, spec, store_options, project=project, **legacy_store_options)
        elif getattr(store, "project", DEFAULT_PROJECT) != project:
            store.close()  # the index owns the store it was given, as when its spec is refused
            raise InvalidRequestError(
                f"store is scoped to project {getattr(store, 'project', DEFAULT_PROJECT)!r}, the index to {project!r}: "
                "pass a store of the index's project (open_store(..., project=...) or store.for_project(...))"
            )
        self._store: VectorStore = store
        #: The project this index object works in ("" = the default project).
        self.project: str = project
        #: Whether :meth:`close` closes the store (False for a :meth:`for_project` view).
        self._owns_store = True
        self._lock_scope = lock_scope(self.uri, self._store.collection, project)
        self._check_spec(self._store.spec, wanted)
        #: Whether frames carry local features (``CollectionSpec.local_features``, fixed when the
        #: collection was made), and whether queries verify candidates with them.
        self._stores_local = self._store.spec.local_features == LOCAL_FORMAT
        self._verifies = self._stores_local and self.descriptor.calibration.geometric

    # The media options, one by one (readable and, validated, settable: older callers do both).

    @property
    def fps(self) -> float:
        return self.media_options.fps

    @fps.setter
    def fps(self, value: float) -> None:
        self.media_options = self.media_options.replace(fps=value)

    @property
    def max_duration(self) -> float:
        return self.media_options.max_duration

    @max_duration.setter
    def max_duration(self, value: float) -> None:
        self.media_options = self.media_options.replace(max_duration=value)

    @property
    def max_pixels(self) -> int:
        return self.media_options.max_pixels

    @max_pixels.setter
    def max_pixels(self, value: int) -> None:
        self.media_options = self.media_options.replace(max_pixels=value)

    @property
    def dedupe_distance(self) -> int | None:
        return self.media_options.dedupe_distance

    @dedupe_distance.setter
    def dedupe_distance(self, value: int | None) -> None:
        self.media_options = self.media_options.replace(dedupe_distance=value)

    # --- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the store (the engine connection). An index from :meth:`for_project` shares its
        parent's store: closing it does nothing to the store, the parent's close does."""
        if self._owns_store:
            self._store.close()

    def for_project(self, project: str) -> CustomIndex:
        """This index in another project: a new index object sharing this one's descriptor (the
        model is not loaded again), media options, settings and open store (a view of it scoped to
        ``project``: no new connection). Cheap (no I/O) and safe to call from many threads at
        once: what a service calls once per request. Closing it does not close the shared store;
        closing this index does, and the views then raise :class:`~vecsim.StoreError`.

        ``project`` is checked like the constructor's (:class:`~vecsim.InvalidRequestError`), and a
        collection made by vecsim < 0.4 refuses any but ``""`` (:class:`~vecsim.IndexConfigError`).
        Two projects' adds of the same task_id run side by side; adds of one task_id in one
        project still wait for each other (:mod:`vecsim.task_locks`)."""
        project = check_project(project)
        store = self._store.for_project(project)
        view = copy.copy(self)
        view._store = store
        view.project = project
        view._owns_store = False
        view._lock_scope = (*self._lock_scope[:-1], project)  # same store and collection, this project
        return view

    def __enter__(self) -> CustomIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_spec(self, stored: CollectionSpec, wanted: IndexConfig | None) -> None:
        d = self.descriptor
        if (stored.descriptor_name, stored.descriptor_version, stored.dim) != (d.name, d.version, d.dim):
            self._store.close()
            raise DescriptorMismatchError(
                f"collection {self._store.collection!r} at {self.uri} holds vectors of descriptor "
                f"{stored.descriptor_name} {stored.descriptor_version} ({stored.dim}-d), not "
                f"{d.name} {d.version} ({d.dim}-d); open it with that descriptor or use a new collection"
            )
        if stored.local_features not in ("", LOCAL_FORMAT):
            self._store.close()
            raise IndexConfigError(
                f"collection {self._store.collection!r} at {self.uri} stores local features of format "
                f"{stored.local_features!r}; this vecsim reads {LOCAL_FORMAT!r} (upgrade vecsim)"
            )
        if wanted is not None and wanted != stored.index:
            self._store.close()
            raise IndexConfigError(
                f"collection {self._store.collection!r} already exists with index "
                f"{stored.index.model_dump(mode='json')}; index options only apply when a collection is created"
            )

    @property
    def verifies(self) -> bool:
        """Whether queries verify their candidates geometrically: the collection keeps local
        features and the descriptor's calibration scores verified matches."""
        return self._verifies

    @property
    def store(self) -> ReadOnlyStore:
        """A read-only view of the index's store (search, asset records, frames, counts, spec):
        for reports and benchmarks; writes go through ``add`` / ``remove`` / ``vacuum``."""
        return ReadOnlyStore(self._store)

    # --- media and embedding -------------------------------------------------------------------

    def _open(self, media: MediaInput) -> MediaStream:
        return open_media(media, self.media_options)

    # --- add -----------------------------------------------------------------------------------

    def add(
        self,
        media: MediaInput,
        metadata: dict[str, Any] | None = None,
        task_id: str | None = None,
        *,
        replace: bool = False,
    ) -> AddResult:
        """Add one image or video. Returns its ``task_id`` (generated when not given).

        All or nothing: frames are written under a new generation and become visible only when
        the asset record is committed after the last one; on any failure they are deleted.
        """
        given = task_id is not None
        task_id = check_task_id(task_id) if given else new_task_id()
        metadata = check_metadata(metadata)
        if not given:  # a fresh uuid: nobody else can be adding it
            return self._ingest(task_id, self._open(media), metadata, None, sweep=False)
        with task_lock(self._lock_scope, task_id):  # the existence check and the commit are one step
            existing = self._store.assets([task_id]).get(task_id)
            if existing is not None and not replace:
                raise TaskExistsError(f"task_id {task_id!r} is already in {self._where} (pass replace=True to overwrite)")
            return self._ingest(task_id, self._open(media), metadata, existing, sweep=True)

    def _ingest(self, task_id: str, stream: MediaStream, metadata: dict[str, Any],
                existing: AssetRecord | None, *, sweep: bool) -> AddResult:
        staged = self._stage(task_id, stream, metadata, existing, sweep=sweep)
        try:
            with timing.stage("write"):
                self._store.commit_asset(staged.record)
        except BaseException:
            self._abandon(staged.record.task_id, staged.existing)
            raise
        return self._committed(staged)

    def _stage(self, task_id: str, stream: MediaStream, metadata: dict[str, Any],
               existing: AssetRecord | None, *, sweep: bool) -> _Staged:
        """Decode, embed and write the frame rows of one asset under a new generation: all of it
        or (on any failure) none of it. Nothing is visible until its record is committed."""
        frames = embed_stream(self.descriptor, stream.frames, self.batch_size, self._stores_local)
        return self._stage_frames(task_id, frames, lambda: _media_facts(stream), metadata, existing, sweep=sweep)

    def _stage_frames(self, task_id: str, frames: Iterable[FrameData], facts: Callable[[], MediaFacts],
                      metadata: dict[str, Any], existing: AssetRecord | None, *, sweep: bool, digest: str = "",
                      rows_to: VectorStore | None = None) -> _Staged:
        """Write the frame rows of one asset, embedded already (``frames`` in timestamp order), under
        a new generation; ``facts()`` is asked after the last frame (a video's duration is known
        then). ``rows_to`` (default the store) takes the rows: a bulk writer passes a buffer and
        writes many assets' rows in one request. On any failure, nothing of it stays."""
        keep = existing.generation if existing else None
        generation = uuid.uuid4().hex[:16]
        if sweep:  # a caller's id may have leftovers of a killed add; a fresh uuid cannot
            self._store.delete_frames(task_id, keep_generation=keep)
        rows = _RowWriter(rows_to or self._store, task_id, generation, self.dedupe_distance)
        sampled = 0
        try:
            for frame in frames:
                sampled += 1
                rows.add(*frame)
            media = facts()
            stored = rows.finish(media.duration)
        except BaseException:
            self._abandon(task_id, existing)
            raise
        record = AssetRecord(task_id=task_id, generation=generation, media_type=media.media_type,
                             source=media.source, duration=media.duration, frames=stored, metadata=metadata,
                             digest=digest)
        return _Staged(record, existing, sampled, media.warnings)

    def _abandon(self, task_id: str, existing: AssetRecord | None) -> None:
        """Delete the frame rows of an asset that will not be committed (keeping those of
        ``existing``, the record a replace would have replaced). If the store itself is down, they
        stay invisible until :meth:`vacuum`."""
        try:
            self._store.delete_frames(task_id, keep_generation=existing.generation if existing else None)
        except Exception:
            pass

    def _commit_staged(self, staged: Sequence[_Staged], rows: Sequence[list[FrameRow]] | None = None
                       ) -> tuple[list[tuple[int, AddResult]], list[tuple[int, Exception]]]:
        """Commit staged assets in one store write: their records in one commit (after their frame
        rows in one insert, where ``rows`` holds each asset's rows, not written yet). Where that
        fails, each asset on its own (its rows from the failed insert swept first), so that one bad
        asset fails only itself (its rows deleted).
        Returns the committed ones and the failed ones, by position in ``staged``."""
        store = self._store
        try:
            if rows is not None:
                store.insert_frames([r for asset_rows in rows for r in asset_rows])
            store.commit_assets([st.record for st in staged])
            done, failed = list(range(len(staged))), []
        except Exception:  # noqa: BLE001 - retried one by one below
            done, failed = [], []
            for i, st in enumerate(staged):
                try:
                    if rows is not None:
                        # the group insert may have stored part of these rows: a server such as
                        # Milvus keeps both copies of a key inserted twice, so sweep them first
                        self._abandon(st.record.task_id, st.existing)
                        store.insert_frames(rows[i])
                    store.commit_asset(st.record)
                    done.append(i)
                except Exception as exc:  # noqa: BLE001 - reported per asset
                    self._abandon(st.record.task_id, st.existing)
                    failed.append((i, exc))
        return [(i, self._committed(staged[i])) for i in done], failed

    def _committed(self, staged: _Staged) -> AddResult:
        """After the commit: a replace deletes the old generation's rows; the result."""
        record = staged.record
        if staged.existing is not None:
            self._store.delete_frames(record.task_id, keep_generation=record.generation)
        return AddResult(
            task_id=record.task_id, source=record.source, media_type=record.media_type, duration=record.duration,
            frames=staged.sampled, stored_frames=record.frames, replaced=staged.existing is not None,
            warnings=staged.warnings,
        )

    def add_many(
        self,
        media: Iterable[MediaInput] | MediaInput,
        metadata: dict[str, Any] | Sequence[dict[str, Any] | None] | None = None,
        task_ids: Sequence[str] | None = None,
        *,
        replace: bool = False,
    ) -> AddManyResult:
        """Add many inputs (directories are expanded recursively), one after the other, each
        embedded in batches. ``metadata`` is one dict for all, or one per input. A bad input does
        not stop the others: whatever it raises (a media error, bad metadata or task_id, a store
        error), it is reported in ``failed`` with the error's class name, and nothing of it is
        written; only ``KeyboardInterrupt`` and the like stop the loop.

        A bulk load: inputs without a ``task_id`` are committed in groups (every
        ``COMMIT_GROUP_ASSETS`` assets or ``COMMIT_GROUP_SECONDS`` seconds, one store write per
        group; each asset still all or nothing), inputs with one are committed one by one (their
        check-then-commit holds the task_id's lock). Queries meanwhile see every committed asset.
        At the end the store finishes its vector index once (``build_index``), not per asset.
        Results come in input order."""
        sources = expand_sources(media)
        metas = per_item(metadata, len(sources), "metadata")
        ids = list(task_ids) if task_ids is not None else [None] * len(sources)
        if len(ids) != len(sources):
            raise InvalidRequestError(f"{len(ids)} task_ids for {len(sources)} inputs")
        dupes = repeated(ids)
        added: list[tuple[int, AddResult]] = []
        failed: list[AddFailure] = []
        group = _CommitGroup(self)
        bar = self._progress_bar(len(sources), "adding")
        try:
            for n, (item, meta, tid) in enumerate(zip(sources, metas, ids)):
                try:
                    if tid in dupes:
                        raise TaskExistsError(f"task_id {tid!r} is given more than once in this batch")
                    if tid is None:  # a fresh id: nobody else can be adding it, so no lock to hold
                        meta = check_metadata(meta)
                        staged = self._stage(new_task_id(), self._open(item), meta, None, sweep=False)
                        added += group.add(n, item, staged, failed)
                    else:
                        added.append((n, self.add(item, meta, tid, replace=replace)))
                except Exception as exc:  # noqa: BLE001 - every bad input is reported, none stops the rest
                    failed.append(failure_of(item, exc))
                bar.update(1)
        finally:
            added += group.commit(failed)  # also on KeyboardInterrupt: these assets are whole
            bar.close()
        if added:
            try:  # the assets are committed and searchable already; the index only makes it faster
                self._store.build_index()
            except StoreError as exc:
                log.warning("add_many: every asset is committed, but finishing the vector index failed (searches "
                            "stay right, slower until the next build): %s", exc)
        return AddManyResult(added=[r for _, r in sorted(added, key=lambda x: x[0])], failed=failed)

    # --- query ---------------------------------------------------------------------------------

    def query(self, media: MediaInput, top_k: int = DEFAULT_TOP_K, threshold: float | None = None,
              rotations: bool | None = None) -> QueryResult:
        """Which indexed assets does ``media`` (image or video) copy? Up to ``top_k`` assets, best
        first, each with its matches at or above ``threshold`` (default :data:`DEFAULT_THRESHOLD`),
        its matched ratio and its matched segments.

        ``rotations``: also search each query frame turned a quarter left and right, keeping the
        best score per indexed frame, so a copy turned by 90 degrees is found. It triples the
        embedding work, so the default (``None``) does it for image queries only.

        Where the collection keeps keypoints (:attr:`verifies`), the best candidates of each query
        frame are verified geometrically before they are scored."""
        check_query_args(top_k, threshold)
        threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        stream = self._open(media)
        turn = stream.media_type == "image" if rotations is None else bool(rotations)
        floor = self.descriptor.calibration.verify_floor(threshold) if self._verifies else None
        frames = search_frames(self._store, self._query_batches(stream, turn), top_k=top_k, verify_floor=floor)
        # the duration of a video is known only now, once its frames were read
        output = match_assets(self._store, frames, self.descriptor.calibration, threshold=threshold, top_k=top_k,
                              interval=1.0 / self.fps, query_duration=stream.duration or 0.0)
        return QueryResult(
            source=stream.source, media_type=stream.media_type, duration=stream.duration or 0.0,
            query_frames=len(frames), output=output, warnings=stream.warnings,
        )

    def _query_batches(self, stream: MediaStream, rotations: bool) -> Iterator[QueryBatch]:
        """(timestamps, [vectors of each variant], dihedral PDQ hashes) per batch of query frames;
        the variants are the frames as they are, then (with ``rotations``) turned left and right."""
        for batch in timing.timed_iter(batched(stream.frames, self.batch_size), "decode"):
            images = [f.image for f in batch]
            with timing.stage("embed"):
                query = QueryBatch([f.timestamp for f in batch], embed_variants(self.descriptor, images, rotations),
                                   pdq_dihedral_hashes(images),
                                   [local_desc.query_features(im) for im in images] if self._verifies else None)
            yield query

    # --- remove / get / count / info -------------------------------------------------------------

    def remove(self, task_id: str) -> RemoveResult:
        """Delete the asset: its record first (no later query returns it), then all its frames."""
        task_id = check_task_id(task_id)
        with task_lock(self._lock_scope, task_id):  # not in the middle of an add of the same id
            record = self._store.delete_asset(task_id)
            if record is None:
                raise TaskNotFoundError(f"task_id {task_id!r} is not in {self._where}")
            removed = self._store.delete_frames(task_id)
        return RemoveResult(task_id=task_id, removed_frames=removed)

    def get(self, task_id: str) -> AssetInfo:
        task_id = check_task_id(task_id)
        record = self._store.assets([task_id]).get(task_id)
        if record is None:
            raise TaskNotFoundError(f"task_id {task_id!r} is not in {self._where}")
        return AssetInfo(
            task_id=task_id,
            media_type=record.media_type,
            source=record.source,
            duration=record.duration,
            metadata=record.metadata,
            frames=[FrameInfo(timestamp=f.timestamp, span_end=f.span_end, pdq=f.pdq)
                    for f in self._store.frames(task_id, record.generation)],
        )

    def list_assets(self, limit: int = 100, after: str | None = None) -> AssetPage:
        """One page of the project's assets, by task_id ascending (Unicode code point order): up to
        ``limit`` (1 to 1000) whose task_id comes after ``after`` (``None``: from the first).
        ``next`` is the ``after`` of the next page, ``None`` on the last. A page reads asset
        records, never frames (on a Milvus server it is read in task_id order through the key;
        Milvus Lite and Qdrant go through the keys of all the project's assets per page:
        docs/cli.md has the costs); an asset added or removed while paging shows or not on a
        later page, but none repeats or is skipped. An add in progress is not listed until it
        commits."""
        check_list_args(limit, after)
        records = self._store.list_assets(limit + 1, after)  # one more: whether a next page exists
        page = records[:limit]
        return AssetPage(
            assets=[AssetSummary(task_id=r.task_id, media_type=r.media_type, source=r.source, duration=r.duration,
                                 metadata=r.metadata, frames=r.frames) for r in page],
            next=page[-1].task_id if len(records) > limit else None,
        )

    def vacuum(self) -> VacuumResult:
        """Delete frame rows that no asset commits: what an add killed half-way left behind
        (invisible to queries, but taking space). A full scan of this index's project (other
        projects' rows are neither read nor touched): run it as maintenance, not while adds are in
        flight, since an add in progress looks the same as a killed one."""
        committed, present = self._store.generations()
        orphans = [(t, g) for (t, g) in present if committed.get(t) != g]
        removed = 0
        for task_id in {t for t, _ in orphans}:
            removed += self._store.delete_frames(task_id, keep_generation=committed.get(task_id))
        return VacuumResult(removed_frames=removed, orphaned_generations=len(orphans))

    def count(self) -> int:
        """Number of assets in the index's project."""
        return self._store.count()[0]

    def info(self) -> IndexInfo:
        """The collection (engine, descriptor, index config) and the project's assets and frame rows."""
        assets, frames = self._store.count()
        spec = self._store.spec
        return IndexInfo(
            uri=self.uri,
            engine=self._store.engine,
            engine_version=self._store.engine_version,
            collection=self._store.collection,
            descriptor=DescriptorInfo(name=spec.descriptor_name, version=spec.descriptor_version, dim=spec.dim),
            index=spec.index.model_dump(mode="json"),
            assets=assets,
            frames=frames,
            local_features=spec.local_features,
            verification=self._verifies,
            project=self.project,
        )

    @property
    def _where(self) -> str:
        """Where an asset is, or is not, for error messages: the index, or a project of it."""
        return f"project {self.project!r} of the index" if self.project else "the index"

    # --- helpers -------------------------------------------------------------------------------

    def _progress_bar(self, total: int, desc: str):
        from tqdm import tqdm

        show = self.progress if self.progress is not None else sys.stderr.isatty()
        return tqdm(total=total, desc=desc, unit="file", disable=not show or total <= 1, file=sys.stderr)


#: A bulk load commits its assets in groups of this many (or older than ``COMMIT_GROUP_SECONDS``).
COMMIT_GROUP_ASSETS = 64
COMMIT_GROUP_SECONDS = 5.0


class MediaFacts(NamedTuple):
    """What an asset record says of its media, known once its frames are read."""

    media_type: str
    source: str
    duration: float
    warnings: list[str]


def _media_facts(stream: MediaStream) -> MediaFacts:
    return MediaFacts(stream.media_type, stream.source, stream.duration or 0.0, stream.warnings)


class _Staged(NamedTuple):
    """An asset whose frame rows are written, waiting for its record to be committed."""

    record: AssetRecord
    existing: AssetRecord | None  # the record it replaces
    sampled: int
    warnings: list[str]


class _CommitGroup:
    """The assets of a bulk load staged since the last commit, committed in one store write."""

    def __init__(self, index: CustomIndex):
        self.index = index
        self.pending: list[tuple[int, MediaInput, _Staged]] = []
        self.since = 0.0

    def add(self, n: int, item: MediaInput, staged: _Staged, failed: list[AddFailure]) -> list[tuple[int, AddResult]]:
        if not self.pending:
            self.since = time.monotonic()
        self.pending.append((n, item, staged))
        if len(self.pending) >= COMMIT_GROUP_ASSETS or time.monotonic() - self.since >= COMMIT_GROUP_SECONDS:
            return self.commit(failed)
        return []

    def commit(self, failed: list[AddFailure]) -> list[tuple[int, AddResult]]:
        """Commit every pending asset (:meth:`CustomIndex._commit_staged`); an asset that fails is
        reported in ``failed``."""
        pending, self.pending = self.pending, []
        if not pending:
            return []
        done, bad = self.index._commit_staged([staged for _, _, staged in pending])
        failed += [failure_of(pending[i][1], exc) for i, exc in bad]
        return [(pending[i][0], result) for i, result in done]


class _RowWriter:
    """Turns a stream of (timestamp, vector, PDQ) into frame rows, written in batches.

    Each row covers the time until the next kept frame; with a dedupe distance, a frame whose PDQ
    hash is that close to the last kept one only extends the last row's span. A row is written
    once the next frame has fixed its span, so memory holds at most one write batch.
    """

    def __init__(self, store: VectorStore, task_id: str, generation: str, dedupe: int | None):
        self.store, self.task_id, self.generation, self.dedupe = store, task_id, generation, dedupe
        self.pending: list[FrameRow] = []
        self.last: FrameRow | None = None
        self.written = 0

    def add(self, timestamp: float, vector: np.ndarray, pdq: str, local: bytes = b"") -> None:
        if self.last is not None:
            if self.dedupe is not None and hamming(self.last.pdq, pdq) <= self.dedupe:
                return  # same picture: the last row's span grows to cover it
            self.last.span_end = timestamp
            self.pending.append(self.last)
        self.last = FrameRow(self.task_id, self.generation, self.written + len(self.pending), timestamp,
                             timestamp, vector, pdq, local)
        if len(self.pending) >= WRITE_BATCH:
            self._flush()

    def finish(self, duration: float) -> int:
        if self.last is not None:
            self.last.span_end = max(self.last.timestamp, duration)
            self.pending.append(self.last)
            self.last = None
        self._flush()
        return self.written

    def _flush(self) -> None:
        if self.pending:
            with timing.stage("write"):
                self.store.insert_frames(self.pending)
            self.written += len(self.pending)
            self.pending = []


def _index_config(index: str | IndexConfig | None, params: dict[str, Any] | None) -> IndexConfig | None:
    if index is None:
        if params:
            raise IndexConfigError("index_params given without an index type")
        return None
    if isinstance(index, str):
        return parse_index_config(index, params)
    if params:
        raise IndexConfigError("pass index_params only with an index type name, not with a config object")
    return index


def failure_of(item: MediaInput, exc: Exception) -> AddFailure:
    """How ``add_many`` reports an input that failed: its name, the error class, the message."""
    message = str(exc) or type(exc).__name__
    if not isinstance(exc, MediaError):  # a media error's message already starts with the source
        message = f"{describe(item)}: {message}"
    return AddFailure(source=describe(item), error=type(exc).__name__, message=message)


def per_item(value: Any, n: int, what: str) -> list[Any]:
    if value is None or isinstance(value, dict):
        return [value] * n
    items = list(value)
    if len(items) != n:
        raise InvalidRequestError(f"{len(items)} {what} entries for {n} inputs")
    return items
