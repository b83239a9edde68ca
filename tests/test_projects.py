"""Project (tenant) isolation through the SDK, on every backend of the conformance table: two
projects on one collection hold the same task_ids and the same photos and never see each other's
assets (queries, get, count, info, remove, vacuum, add's existence check), one project's many
near-identical rows do not crowd another's search, reopening keeps everything, an old collection
(made without projects) holds only the default project, and project names are checked.

The photos are embedded once per backend (module-scoped indexes); the store-level contract of
projects (keys, filters, views) is in ``test_store_contract.py``."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from vecsim import (
    DEFAULT_PROJECT,
    AssetPage,
    AsyncCustomIndex,
    CustomIndex,
    IndexConfigError,
    InvalidRequestError,
    StoreError,
    TaskExistsError,
    TaskNotFoundError,
    check_project,
)
from vecsim import edits
from vecsim.store import CollectionSpec, FrameRow
from vecsim.task_locks import lock_scope, task_lock

from .backends import BACKENDS, backend_uri

NAMES = ["astronaut", "chelsea", "coffee", "rocket", "camera", "coins"]
A, B = "alpha", "beta.2-x_Y"  # every character class a name may hold


@dataclass(frozen=True)
class Where:
    """One backend for the whole module; each test uses its own collections."""

    name: str
    uri: str
    options: dict
    folder: Path

    def uri_of(self, collection: str) -> str:
        """The URI to open ``collection`` at: the server's, or (embedded) a folder of its own, since
        the qdrant-client local mode lets one client at a time open a folder."""
        backend = BACKENDS[self.name]
        return self.uri if backend.make_uri is None else backend.make_uri(self.folder / collection)


@pytest.fixture(scope="module", params=list(BACKENDS))
def backend_module(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    uri, options, cleanup = backend_uri(request, request.param, folder)
    if uri.startswith("http"):  # these tests read their own writes at once, also through reopened indexes
        options = {**options, "consistency": "Strong"}
    yield Where(request.param, uri, options, folder)
    cleanup()


def _place(where: Where, collection: str) -> str:
    """The URI of a new collection (its folder made, where embedded)."""
    if BACKENDS[where.name].make_uri is not None:
        (where.folder / collection).mkdir(exist_ok=True)
    return where.uri_of(collection)


def _open(where: Where, collection: str, **kw) -> CustomIndex:
    return CustomIndex(_place(where, collection), collection=collection, progress=False, **where.options, **kw)


@pytest.fixture(scope="module")
def shared(backend_module, photos):
    """One collection, opened once (project A), with B as a ``for_project`` view: both hold the
    same photos under the same task_ids, with metadata naming their project."""
    a = _open(backend_module, "shared", project=A)
    b = a.for_project(B)
    for idx in (a, b):
        res = idx.add_many([photos[n] for n in NAMES], metadata=[{"name": n, "project": idx.project} for n in NAMES],
                           task_ids=NAMES)
        assert not res.failed
    b.add(photos["clock"], task_id="only-b", metadata={"project": B})
    yield a, b
    a.close()


def test_each_project_finds_only_its_own_assets(shared, photos):
    a, b = shared
    for idx in (a, b):
        for name in NAMES[::2]:  # the others are the same photos: count and get check them
            out = idx.query(edits.jpeg(40)(photos[name]), threshold=0.0, top_k=10).output
            assert out[0].task_id == name and out[0].metadata == {"name": name, "project": idx.project}
            assert {m.metadata["project"] for m in out} == {idx.project}  # nothing of the other project
            assert len({m.task_id for m in out}) == len(out)
    assert [m.task_id for m in b.query(photos["clock"]).output] == ["only-b"]
    assert a.query(photos["clock"]).output == []  # only B holds it
    default = a.for_project(DEFAULT_PROJECT)  # the default project of this collection: empty
    assert default.count() == 0 and default.query(photos["coffee"], threshold=0.0).output == []


def test_count_info_and_get_are_per_project(shared):
    a, b = shared
    assert (a.count(), b.count()) == (len(NAMES), len(NAMES) + 1)
    ia, ib = a.info(), b.info()
    assert (ia.project, ia.assets, ia.frames) == (A, len(NAMES), len(NAMES))
    assert (ib.project, ib.assets, ib.frames) == (B, len(NAMES) + 1, len(NAMES) + 1)
    assert ia.collection == ib.collection == "shared" and ia.engine == ib.engine
    assert a.get("coffee").metadata == {"name": "coffee", "project": A}
    assert b.get("coffee").metadata == {"name": "coffee", "project": B}
    with pytest.raises(TaskNotFoundError, match=f"project {A!r}"):
        a.get("only-b")
    with pytest.raises(TaskNotFoundError):
        a.remove("only-b")
    assert b.get("only-b").metadata == {"project": B}
    assert a.store.project == A and b.store.project == B
    assert set(a.store.assets(NAMES + ["only-b"])) == set(NAMES)  # the read-only store is scoped too


def test_list_assets_pages_through_one_projects_assets(shared):
    a, b = shared
    names = sorted(NAMES)
    first = a.list_assets(limit=4)
    assert [x.task_id for x in first.assets] == names[:4] and first.next == names[3]
    rest = a.list_assets(limit=4, after=first.next)
    assert [x.task_id for x in rest.assets] == names[4:] and rest.next is None  # a short page is the last
    assert all(x.metadata == {"name": x.task_id, "project": A} and (x.media_type, x.frames, x.duration) == ("image", 1, 0)
               for x in first.assets + rest.assets)
    assert a.list_assets(limit=len(NAMES)).next is None  # a full page with nothing after it
    assert [x.task_id for x in b.list_assets(limit=1000).assets] == sorted(NAMES + ["only-b"])
    after_coins = b.list_assets(limit=1, after="coins")  # B's own asset, between two shared ones
    assert [x.task_id for x in after_coins.assets] == ["only-b"] and after_coins.next == "only-b"
    assert a.for_project(DEFAULT_PROJECT).list_assets() == AssetPage(assets=[], next=None)
    for bad in (0, 1001, -1, 2.0, True, "3", None):
        with pytest.raises(InvalidRequestError, match="limit must be an integer from 1 to 1000"):
            a.list_assets(limit=bad)
    for bad in ('x"', "", " x", 5):
        with pytest.raises(InvalidRequestError, match="invalid task_id"):
            a.list_assets(after=bad)


def test_remove_add_and_vacuum_touch_one_project(backend_module, photos):
    a = _open(backend_module, f"rm_{uuid.uuid4().hex[:8]}", project=A)
    b = a.for_project(B)
    try:
        for idx in (a, b):
            idx.add(photos["coffee"], task_id="x", metadata={"p": idx.project})
        b.add(photos["rocket"], task_id="only-b")
        a.add(photos["rocket"], task_id="only-b")  # exists only in B: not a TaskExistsError in A
        with pytest.raises(TaskExistsError):
            a.add(photos["rocket"], task_id="only-b")
        assert a.remove("x").removed_frames == 1
        assert a.count() == 1 and b.count() == 2
        assert b.get("x").metadata == {"p": B}
        assert b.query(photos["coffee"]).output[0].task_id == "x"
        assert a.query(photos["coffee"], threshold=0.0).output[0].task_id == "only-b"  # the other asset of A

        # frame rows no record commits (what a killed add leaves), one set in each project
        for idx, task_id in ((a, "killed-a"), (b, "killed-b")):
            vec = idx.descriptor.embed([photos["camera"]])[0]
            idx._store.insert_frames([FrameRow(task_id, "dead", i, float(i), i + 1.0, vec, "0" * 64) for i in range(3)])
        assert a.info().frames == 4 and b.info().frames == 5
        res = a.vacuum()
        assert (res.removed_frames, res.orphaned_generations) == (3, 1)
        assert a.info().frames == 1 and b.info().frames == 5  # B's rows, orphans included, untouched
        assert b.get("x").frames and b.get("only-b").frames
        assert b.vacuum().removed_frames == 3 and b.info().frames == 2
        assert a.remove("only-b") and b.get("only-b")
    finally:
        a.close()


def test_another_projects_many_near_copies_do_not_crowd_the_search(backend_module, photos):
    a = _open(backend_module, f"crowd_{uuid.uuid4().hex[:8]}", project=A)
    b = a.for_project(B)
    try:
        photo = photos["chelsea"]
        res = b.add_many([photo] * 30, task_ids=[f"b{i:02d}" for i in range(30)])  # exact copies of the query
        assert not res.failed and b.count() == 30
        a.add(edits.jpeg(40)(photo), task_id="mine")  # A's own copy scores below every one of B's
        assert [m.task_id for m in a.query(photo, top_k=1).output] == ["mine"]
        vec = a.descriptor.embed([photo])
        assert [h.task_id for h in a.store.search(vec, limit=1)[0]] == ["mine"]  # in the engine, not after
        assert len(b.query(photo, top_k=30, threshold=0.0).output) == 30
    finally:
        a.close()


def test_reopening_keeps_every_project(backend_module, photos):
    name = f"re_{uuid.uuid4().hex[:8]}"
    with _open(backend_module, name, project=A) as a:
        a.add(photos["coins"], task_id="same", metadata={"p": A})
        a.for_project(B).add(photos["camera"], task_id="same", metadata={"p": B})
    for project, photo in ((A, "coins"), (B, "camera")):
        with _open(backend_module, name, project=project) as idx:
            assert idx.project == project and idx.count() == 1 and idx.info().project == project
            top = idx.query(photos[photo]).output[0]
            assert (top.task_id, top.metadata) == ("same", {"p": project})
    with _open(backend_module, name) as default:
        assert default.project == "" and default.count() == 0


def test_an_old_collection_holds_only_the_default_project(backend_module, shared, photos):
    """A collection made by vecsim < 0.4 has no project field: its spec says ``projects`` false."""
    from vecsim.adapters import open_store

    name = f"old_{uuid.uuid4().hex[:8]}"
    uri, options = _place(backend_module, name), backend_module.options
    spec = shared[0].store.spec  # the spec this vecsim creates ...
    old = CollectionSpec(spec.descriptor_name, spec.descriptor_version, spec.dim, spec.index,
                         local_features=spec.local_features)  # ... without projects
    assert spec.projects and not old.projects
    open_store(uri, name, old, **options).close()
    with CustomIndex(uri, collection=name, **options) as idx:
        assert not idx.store.spec.projects and idx.project == ""
        idx.add(photos["coffee"], task_id="c", metadata={"old": True})
        assert idx.query(photos["coffee"]).output[0].task_id == "c" and idx.info().project == ""
        assert idx.for_project("").get("c").metadata == {"old": True}
        with pytest.raises(IndexConfigError, match=r"vecsim < 0\.4.*use a new collection"):
            idx.for_project(A)
        with pytest.raises(IndexConfigError, match="without project isolation"):
            idx.store.for_project(A)
    with pytest.raises(IndexConfigError, match="holds only the default project"):
        CustomIndex(uri, collection=name, project=A, **options)
    with CustomIndex(uri, collection=name, **options) as idx:  # the refusal changed nothing
        assert idx.count() == 1 and not idx.store.spec.projects


@pytest.mark.parametrize("bad", ["/x", "a/b", "-a", ".a", "_a", " a", "a ", "a" * 65, "é", "a\n", "a:b", "a*",
                                 None, 5, b"a"])
def test_bad_project_names_are_refused(bad, tmp_path):
    with pytest.raises(InvalidRequestError, match="invalid project"):
        check_project(bad)
    with pytest.raises(InvalidRequestError, match="invalid project"):
        CustomIndex(f"qdrant-edge:{tmp_path / 'e'}", project=bad)
    assert not (tmp_path / "e").exists()  # refused before anything was opened or created


def test_good_project_names():
    for good in ("", "a", "A", "7", "a" * 64, "acme-corp.eu_1", "0.1"):
        assert check_project(good) == good


def test_bad_names_in_for_project_and_open_store(shared, tmp_path):
    from vecsim.adapters import open_store

    a, _ = shared
    for bad in ("a/b", "", "x" * 65):
        if bad == "":
            assert a.for_project(bad).project == ""
            continue
        with pytest.raises(InvalidRequestError, match=r"invalid project"):
            a.for_project(bad)
        with pytest.raises(InvalidRequestError, match=r"invalid project"):
            a.store.for_project(bad)
        with pytest.raises(InvalidRequestError, match=r"invalid project"):
            open_store(f"qdrant-edge:{tmp_path / 'e'}", "c", a.store.spec, project=bad)
    assert not (tmp_path / "e").exists()


def test_for_project_shares_the_model_and_the_store(shared, photos):
    a, b = shared
    assert b.descriptor is a.descriptor and b.media_options is a.media_options
    t = time.perf_counter()
    views = [a.for_project(f"p{i}") for i in range(2000)]
    assert time.perf_counter() - t < 2.0  # no I/O, no model: well under a millisecond each
    assert {v.project for v in views} == {f"p{i}" for i in range(2000)}
    view = a.for_project(B)
    view.close()  # does not close the shared store
    view.close()
    assert a.count() == len(NAMES) and view.count() == len(NAMES) + 1
    view.max_pixels = 10  # a view's settings are its own
    assert a.max_pixels != 10


def test_closing_the_parent_closes_the_views(backend_module, photos):
    a = _open(backend_module, f"cl_{uuid.uuid4().hex[:8]}", project=A)
    b = a.for_project(B)
    b.add(photos["coins"], task_id="c")
    a.close()
    with pytest.raises(StoreError, match="closed"):
        b.count()


def test_for_project_from_many_threads_with_the_same_task_ids(backend_module, photos):
    """What a service does: one index, a view per request, requests of several projects at once."""
    root = _open(backend_module, f"th_{uuid.uuid4().hex[:8]}")
    projects = [f"t{i}" for i in range(4)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(projects))

    def request(project: str) -> None:
        try:
            barrier.wait()
            idx = root.for_project(project)
            idx.add(photos["rocket"], task_id="same", metadata={"p": project})
            assert idx.get("same").metadata == {"p": project}
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=request, args=(p,)) for p in projects]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        for p in projects:
            idx = root.for_project(p)
            assert idx.count() == 1 and idx.query(photos["rocket"]).output[0].metadata == {"p": p}
        assert root.count() == 0
    finally:
        root.close()


def test_task_locks_are_per_project(tmp_path):
    uri = f"qdrant-edge:{tmp_path / 'e'}"
    scope_a, scope_b = lock_scope(uri, "c", A), lock_scope(uri, "c", B)
    assert scope_a != scope_b and lock_scope(uri, "c", A) == scope_a
    assert lock_scope(f"qdrant-edge:{tmp_path}/./e", "c", A) == scope_a  # paths are resolved
    entered: list[str] = []

    def hold(scope, name: str) -> None:
        with task_lock(scope, "x"):
            entered.append(name)

    with task_lock(scope_a, "x"):
        other = threading.Thread(target=hold, args=(scope_b, "b"))
        same = threading.Thread(target=hold, args=(lock_scope(uri, "c", A), "a"))  # another index, same project
        other.start()
        other.join(timeout=5)
        same.start()
        same.join(timeout=0.3)
        assert entered == ["b"]  # another project's same task_id does not wait; the same project's does
    same.join(timeout=5)
    assert entered == ["b", "a"]


def test_async_index_takes_a_project(backend_module, photos):
    name = f"as_{uuid.uuid4().hex[:8]}"
    uri, options = _place(backend_module, name), backend_module.options

    async def run():
        async with await AsyncCustomIndex.open(uri, collection=name, project=A, **options) as a:
            b = await a.for_project(B)
            await asyncio.gather(a.add(photos["coffee"], task_id="x", metadata={"p": A}),
                                 b.add(photos["rocket"], task_id="x", metadata={"p": B}))
            got = (a.project, b.project, await a.count(), await b.count(),
                   (await a.query(photos["coffee"])).output[0].metadata, (await b.get("x")).metadata,
                   (await a.info()).project, [x.metadata for x in (await b.list_assets(limit=5)).assets])
            await b.close()  # its own worker; the shared store stays open
            return got + (await a.count(),)

    assert asyncio.run(run()) == (A, B, 1, 1, {"p": A}, {"p": B}, A, [{"p": B}], 1)


def test_a_given_store_must_be_scoped_to_the_index_project(tmp_path):
    from vecsim.adapters import default_index, open_store
    from vecsim.descriptors import load_descriptor
    from vecsim.descriptors.local import FORMAT

    uri = f"qdrant-edge:{tmp_path / 'e'}"
    d = load_descriptor(None)
    spec = CollectionSpec(d.name, d.version, d.dim, default_index(uri), local_features=FORMAT, projects=True)
    store = open_store(uri, "c", spec, project=A)
    with pytest.raises(InvalidRequestError, match=f"store is scoped to project {A!r}, the index to ''"):
        CustomIndex(store=store, descriptor=d)
    with pytest.raises(StoreError, match="closed"):  # the index owned it, and closed it
        store.count()
    with CustomIndex(store=open_store(uri, "c", spec, project=A), descriptor=d, project=A) as idx:
        assert idx.project == A and idx.store.project == A and idx.count() == 0
