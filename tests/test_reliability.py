"""The reliability check, kept as tests: bad requests, concurrent writers and killed processes on
the embedded engines (Milvus Lite and Qdrant Edge), each checking the promise rather than the
absence of a crash: a typed error naming the input, the count unchanged, no stray rows after
vacuum, every asset fully there or fully absent, and no request reaching another asset."""

from __future__ import annotations

import datetime
import io
import subprocess
import sys
import threading

import pytest

from vecsim import CustomIndex, InvalidRequestError, TaskExistsError, VecsimError
from vecsim.sample_media import generated_distractor
from vecsim.validate import MAX_METADATA_DEPTH

from .backends import backend_uri

EMBEDDED = ["milvus-lite", "qdrant-edge"]


@pytest.fixture(params=EMBEDDED)
def embedded(request, tmp_path):
    uri, options, cleanup = backend_uri(request, request.param, tmp_path)
    yield request.param, uri, options
    cleanup()


@pytest.fixture
def idx(embedded, photos):
    """An embedded index already holding one asset ("keep"), which no bad request may touch."""
    _, uri, options = embedded
    with CustomIndex(uri, **options) as index:
        index.add(photos["astronaut"], metadata={"who": "keep"}, task_id="keep")
        yield index


def _untouched(index: CustomIndex, photos, assets: int = 1) -> None:
    """The promise after a refused request: nothing written, nothing left over, "keep" intact."""
    assert index.count() == assets
    assert index.vacuum().removed_frames == 0
    assert index.get("keep").metadata == {"who": "keep"}
    assert index.query(photos["astronaut"]).output[0].task_id == "keep"


def _nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def _nested_list(depth: int) -> list:
    value: list = [1]
    for _ in range(depth - 1):
        value = [value]
    return value


BAD_METADATA = {
    "nested 150 levels (1 kB)": (_nested(150), "nested deeper"),
    "nested 5000 levels": (_nested(5000), "nested deeper"),
    "a list nested too deep": ({"a": _nested_list(MAX_METADATA_DEPTH)}, "nested deeper"),
    "integer beyond 64 bits": ({"big": 2**64}, "beyond 64 bits"),
    "negative integer beyond 64 bits": ({"deep": {"small": -(2**63) - 1}}, r"metadata\['deep'\]\['small'\]"),
    "NaN": ({"x": float("nan")}, "nan"),
    "Infinity": ({"x": [1.0, float("inf")]}, r"metadata\['x'\]\[1\]"),
    "a set": ({"tags": {"a", "b"}}, "set"),
    "a datetime": ({"when": datetime.datetime(2026, 1, 1)}, "datetime"),
    "bytes": ({"raw": b"\x00"}, "bytes"),
    "a 1 MB string": ({"text": "x" * 1_000_000}, "limit is 60,000"),
    "a key that is not a string": ({1: "one"}, "keys must be strings"),
    "a lone surrogate": ({"name": "a\ud800b"}, "not JSON-serialisable"),
    "not a dict": (["a", "list"], "JSON object"),
}


def test_bad_metadata_is_refused_before_anything_is_written(idx, photos):
    """Every case of :data:`BAD_METADATA` on one index (one index per backend keeps this fast)."""
    for case, (metadata, message) in BAD_METADATA.items():
        with pytest.raises(InvalidRequestError, match=message):
            idx.add(photos["coffee"], metadata=metadata, task_id="bad")
            pytest.fail(f"metadata with {case} was accepted")
    _untouched(idx, photos)


def test_metadata_edge_values_come_back_exactly(embedded, photos):
    metadata = {
        "int64": [2**63 - 1, -(2**63), 0, -1], "float": [0.1, -2.5e300, 1e-300], "bool": [True, False, None],
        "a.b": 1, "$set": {"$inc": 2}, "$": "dollar", "a.b.c": {"d.e": [1, {"$x": "y"}]}, "": "empty key",
        "ünï": "写真 🙂", "quote\"key": "back\\slash", "deep": _nested(MAX_METADATA_DEPTH - 1),
    }
    _, uri, options = embedded
    with CustomIndex(uri, **options) as index:
        index.add(photos["astronaut"], metadata={"who": "keep"}, task_id="keep")
        index.add(photos["coffee"], metadata=metadata, task_id="edge")
        assert index.get("edge").metadata == metadata
        assert index.query(photos["coffee"]).output[0].metadata == metadata
    with CustomIndex(uri, **options) as again:  # what was stored, not a cached copy
        assert again.get("edge").metadata == metadata
        _untouched(again, photos, assets=2)


BAD_TASK_IDS = ["", "a" * 10_000, "c1\x85next-line", "csi\x9b", "nul\x00", "tab\tid", "del\x7f",
                "lone\ud800surrogate", "it's", 'say "x"', "back\\slash", " lead", "trail ", "a' or task_id != '"]


def test_bad_task_ids_are_refused_naming_the_input(idx, photos):
    for bad_id in BAD_TASK_IDS:
        with pytest.raises(InvalidRequestError, match="invalid task_id") as err:
            idx.add(photos["coffee"], task_id=bad_id)
            pytest.fail(f"task_id {bad_id!r} was accepted")
        assert len(str(err.value)) < 400  # a 10 kB id is named, not dumped
        for call in (idx.get, idx.remove):
            with pytest.raises(InvalidRequestError):
                call(bad_id)
    _untouched(idx, photos)


def test_task_ids_with_expression_syntax_reach_only_their_own_asset(idx, photos):
    ids = ["x || true", "a or 1 == 1", "task_id != keep", "(keep)", "%", "*", "#1#2", "KEEP", "名前",
           "a b", "$where", "keep#abc#0", "é" * 256]
    for i, tid in enumerate(ids):
        idx.add(photos["coffee"], metadata={"i": i}, task_id=tid)
    assert idx.count() == 1 + len(ids)
    for i, tid in enumerate(ids):
        assert idx.get(tid).metadata == {"i": i}
    for tid in ids:
        assert idx.remove(tid).removed_frames == 1
    _untouched(idx, photos)


class TextFile(io.StringIO):
    name = "notes.txt"


def test_add_many_reports_every_bad_input_and_adds_the_rest(idx, photos, tmp_path):
    good = tmp_path / "good.jpg"
    photos["rocket"].save(good)
    items = [photos["coffee"], TextFile("not an image"), tmp_path / "missing.jpg", photos["chelsea"],
             photos["camera"], b"", good]
    metadata = [{"n": 0}, {"n": 1}, {"n": 2}, {"bad": float("nan")}, {"n": 4}, {"n": 5}, {"n": 6}]
    task_ids = ["m0", "m1", "m2", "m3", "keep", "m5", "m6"]
    res = idx.add_many(items, metadata=metadata, task_ids=task_ids)
    assert [a.task_id for a in res.added] == ["m0", "m6"]
    assert [f.error for f in res.failed] == [
        "UnsupportedMediaError", "MediaNotFoundError", "InvalidRequestError", "TaskExistsError", "EmptyMediaError"]
    assert "notes.txt" in res.failed[0].message and "missing.jpg" in res.failed[1].message
    assert all(f.source and f.message for f in res.failed)
    _untouched(idx, photos, assets=3)


def test_same_new_task_id_from_two_threads_one_wins(idx, photos):
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def add(name: str) -> None:
        barrier.wait()
        try:
            outcomes[name] = idx.add(photos[name], metadata={"who": name}, task_id="race")
        except VecsimError as exc:
            outcomes[name] = exc

    threads = [threading.Thread(target=add, args=(n,)) for n in ("coffee", "rocket")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    errors = [o for o in outcomes.values() if isinstance(o, Exception)]
    assert len(outcomes) == 2 and len(errors) == 1 and isinstance(errors[0], TaskExistsError)
    winner = next(n for n, o in outcomes.items() if not isinstance(o, Exception))
    assert idx.get("race").metadata == {"who": winner}
    assert idx.query(photos[winner]).output[0].task_id == "race"
    _untouched(idx, photos, assets=2)


def _writers_and_readers(writers: list[CustomIndex], readers: list[CustomIndex], photos) -> dict[str, str]:
    """Four threads add two photos each while two threads query; returns task_id -> photo."""
    names = ["coffee", "rocket", "chelsea", "camera", "coins", "clock", "immunohistochemistry", "distractor"]
    plan = {f"w{i}-{j}": names[2 * i + j] for i in range(4) for j in range(2)}
    errors: list[BaseException] = []
    done = threading.Event()

    def write(i: int) -> None:
        try:
            for j in range(2):
                tid = f"w{i}-{j}"
                writers[i % len(writers)].add(photos[plan[tid]], metadata={"photo": plan[tid]}, task_id=tid)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    def read(k: int) -> None:
        try:
            for _ in range(20):  # bounded: at most 20 queries per reader
                if done.is_set():
                    return
                readers[k % len(readers)].query(photos["astronaut"])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=read, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads[:4]:
        t.join(300)
    done.set()
    for t in threads[4:]:
        t.join(300)
    assert not errors, errors
    return plan


def _check_written(index: CustomIndex, plan: dict[str, str], photos) -> None:
    assert index.count() == len(plan) + 1
    assert index.vacuum().removed_frames == 0
    for tid, name in plan.items():
        assert index.get(tid).metadata == {"photo": name}
        assert index.query(photos[name]).output[0].task_id == tid


@pytest.fixture
def eight_photos(photos):
    """Eight distinct pictures, none of them the astronaut that "keep" holds."""
    return {**photos, "distractor": generated_distractor(7)}


def test_four_writers_two_readers_on_one_instance(idx, eight_photos):
    plan = _writers_and_readers([idx], [idx], eight_photos)
    _check_written(idx, plan, eight_photos)


def test_four_writers_two_readers_on_two_instances_of_one_lite_file(tmp_path, eight_photos):
    photos = eight_photos
    db = str(tmp_path / "two.db")
    with CustomIndex(db) as a, CustomIndex(db) as b:
        a.add(photos["astronaut"], metadata={"who": "keep"}, task_id="keep")
        plan = _writers_and_readers([a, b], [b, a], photos)
        _check_written(a, plan, photos)
        _check_written(b, plan, photos)


KILL_DURING = """
import os, signal, sys
from PIL import Image
from vecsim import CustomIndex
uri, what = sys.argv[1], sys.argv[2]
idx = CustomIndex(uri)
store = idx._store
def die_after(name, n):
    real = getattr(store, name)
    calls = []
    def wrapped(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    setattr(store, name, wrapped)
images = [Image.effect_noise((96, 96), 40 + 10 * i).convert("RGB") for i in range(4)]
if what == "add_many":
    die_after("insert_frames", 3)  # the third asset's frames reached the store, its record not
    idx.add_many(images, task_ids=["k0", "k1", "k2", "k3"])
elif what == "remove":
    die_after("delete_asset", 1)  # the record is gone, its frames not yet
    idx.remove("keep")
"""


@pytest.mark.parametrize("what", ["add_many", "remove"])
def test_killed_during_add_many_or_remove_leaves_whole_assets(embedded, photos, what):
    name, uri, options = embedded
    with CustomIndex(uri, **options) as index:
        index.add(photos["astronaut"], metadata={"who": "keep"}, task_id="keep")
        index.add(photos["rocket"], task_id="other")
    p = subprocess.run([sys.executable, "-c", KILL_DURING, uri, what], capture_output=True, timeout=300)
    assert p.returncode == -9, p.stderr.decode()[-2000:]
    with CustomIndex(uri, **options) as index:
        if what == "add_many":
            assert index.count() == 4 and {index.get(t).task_id for t in ("k0", "k1")} == {"k0", "k1"}
            assert index.vacuum().orphaned_generations == 1  # k2's rows, never committed, now gone
            _untouched(index, photos, assets=4)
        else:
            assert index.count() == 1
            assert all(a.task_id != "keep" for a in index.query(photos["astronaut"], threshold=0).output)
            assert index.vacuum().removed_frames == 1  # keep's frame, whose record was deleted
            assert index.info().frames == 1 and index.query(photos["rocket"]).output[0].task_id == "other"
