"""The CustomIndex facade on Milvus Lite, with the real model: add / query / remove / get / count."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from vecsim import (
    AsyncCustomIndex,
    CustomIndex,
    DescriptorMismatchError,
    IndexConfigError,
    InvalidRequestError,
    TaskExistsError,
    TaskNotFoundError,
)
from vecsim import edits
from vecsim.descriptors import DEFAULT_DESCRIPTOR, EfficientNetGeM
from vecsim.errors import CorruptMediaError, EmptyMediaError, MediaTooLargeError, UnsupportedMediaError
from vecsim.adapters import default_index
from vecsim.index_config import INDEX_TYPES

from .conftest import encode

EDITS = {
    "crop": edits.center_crop(0.5),
    "text": edits.text_overlay(),
    "rotate": edits.rotate(25),
    "hue": edits.hue(0.2),
    "jpeg": edits.jpeg(40),
    "mirror": edits.hflip,
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_edited_copy_finds_its_original_first(filled_index, photos, edit):
    for name, photo in photos.items():
        result = filled_index.query(EDITS[edit](photo))
        assert result.output, f"{name} {edit}: nothing found"
        top = result.output[0]
        assert top.task_id == name, f"{name} {edit}: got {top.task_id}"
        (match,) = top.matches
        assert match.query_timestamp == 0 and match.matching_timestamp == 0
        assert 0.5 <= match.similarity_score <= 1.0 and 0.0 <= match.exact_score <= 1.0


def test_scores_identity_vs_crop(filled_index, photos):
    same = filled_index.query(photos["coffee"]).output[0].matches[0]
    assert same.similarity_score == 1.0 and same.exact_score == 1.0
    cropped = filled_index.query(edits.center_crop(0.5)(photos["coffee"])).output[0].matches[0]
    assert cropped.exact_score < 0.6  # PDQ: a crop is not an exact copy ...
    assert cropped.similarity_score > 0.9  # ... but the robust descriptor knows it is a copy


def test_metadata_comes_back_intact(filled_index, photos):
    top = filled_index.query(photos["rocket"]).output[0]
    assert top.metadata == {"name": "rocket", "tags": ["ünïcödé", "写真"], "nested": {"n": 3, "ok": True}}
    assert filled_index.get("rocket").metadata == top.metadata


def test_unrelated_image_matches_nothing(filled_index):
    from vecsim.sample_media import generated_distractor, sample_photo

    assert filled_index.query(sample_photo("brick")).output == []
    assert filled_index.query(generated_distractor(7)).output == []


def test_top_k_and_threshold(filled_index, photos):
    res = filled_index.query(photos["astronaut"], top_k=3, threshold=0.0)
    assert len(res.output) == 3 and res.output[0].task_id == "astronaut"
    scores = [a.score for a in res.output]
    assert scores == sorted(scores, reverse=True)
    with pytest.raises(InvalidRequestError):
        filled_index.query(photos["astronaut"], top_k=0)
    with pytest.raises(InvalidRequestError):
        filled_index.query(photos["astronaut"], threshold=1.5)


def test_remove(filled_index, photos):
    n = filled_index.count()
    res = filled_index.remove("coffee")
    assert res.removed_frames == 1 and filled_index.count() == n - 1
    out = filled_index.query(photos["coffee"], threshold=0.0, top_k=5).output
    assert "coffee" not in [a.task_id for a in out]
    with pytest.raises(TaskNotFoundError):
        filled_index.remove("coffee")
    with pytest.raises(TaskNotFoundError):
        filled_index.get("coffee")


def test_task_id_generated_duplicate_and_replace(index, photos):
    a = index.add(photos["coffee"])
    assert len(a.task_id) == 32
    index.add(photos["coffee"], task_id="x", metadata={"v": 1})
    with pytest.raises(TaskExistsError):
        index.add(photos["rocket"], task_id="x")
    r = index.add(photos["rocket"], task_id="x", metadata={"v": 2}, replace=True)
    assert r.replaced and index.count() == 2
    assert index.get("x").metadata == {"v": 2}
    assert index.query(photos["rocket"]).output[0].task_id == "x"


@pytest.mark.parametrize("bad_id", ["", "a\"b", "x\\y", " pad", "a" * 300, "new\nline"])
def test_invalid_task_ids(index, photos, bad_id):
    with pytest.raises(InvalidRequestError):
        index.add(photos["coffee"], task_id=bad_id)
    assert index.count() == 0


def test_invalid_metadata(index, photos):
    with pytest.raises(InvalidRequestError):
        index.add(photos["coffee"], metadata=["not", "a", "dict"])
    with pytest.raises(InvalidRequestError):
        index.add(photos["coffee"], metadata={"f": object()})
    assert index.count() == 0


def test_bad_inputs_write_nothing(filled_index, photos, tmp_path):
    n = filled_index.count()
    jpeg = encode(photos["coffee"], "JPEG")
    text = tmp_path / "fake.png"
    text.write_text("hello")
    cases = [
        (b"", EmptyMediaError),
        (text, UnsupportedMediaError),
        (jpeg[: len(jpeg) // 2], CorruptMediaError),
    ]
    for media, error in cases:
        with pytest.raises(error):
            filled_index.add(media)
        assert filled_index.count() == n
    if isinstance(filled_index, CustomIndex):  # a service's max_pixels is its operator's setting
        filled_index.max_pixels = 10_000
        with pytest.raises(MediaTooLargeError):
            filled_index.add(photos["coffee"])
        assert filled_index.count() == n


def test_add_many_folder_with_a_bad_file(index, photos, tmp_path):
    (tmp_path / "sub").mkdir()
    photos["coffee"].save(tmp_path / "a.jpg")
    photos["rocket"].save(tmp_path / "sub" / "b.png")
    (tmp_path / "sub" / "c.jpg").write_bytes(b"")
    res = index.add_many(tmp_path, metadata={"batch": 1})
    assert sorted(a.source.rsplit("/", 1)[-1] for a in res.added) == ["a.jpg", "b.png"]
    assert [f.error for f in res.failed] == ["EmptyMediaError"]
    assert index.count() == 2
    assert index.get(res.added[0].task_id).metadata == {"batch": 1}


def test_results_serialise_to_documented_json(filled_index, photos):
    data = json.loads(filled_index.query(photos["clock"]).model_dump_json())
    assert set(data) == {"source", "media_type", "duration", "query_frames", "output", "warnings"}
    assert data["media_type"] == "image" and data["query_frames"] == 1 and data["duration"] == 0
    asset = data["output"][0]
    assert set(asset) == {"task_id", "metadata", "media_type", "score", "matched_ratio", "longest_segment_seconds",
                          "matches", "segments"}
    assert asset["matched_ratio"] == 1.0
    assert asset["segments"] == [{"query_start": 0.0, "query_end": 0.0, "match_start": 0.0, "match_end": 0.0,
                                  "score": asset["matches"][0]["similarity_score"]}]
    assert set(asset["matches"][0]) == {"query_timestamp", "matching_timestamp", "similarity_score", "exact_score"}


def test_info_and_get(filled_index, photos):
    info = filled_index.info()
    assert info.engine in ("milvus-lite", "milvus", "qdrant-local", "qdrant-edge", "qdrant") and info.assets == len(photos) == info.frames
    store_uri = filled_index.uri if isinstance(filled_index, CustomIndex) else "qdrant-edge:x"  # the service's store
    assert info.descriptor.name == DEFAULT_DESCRIPTOR and info.index["type"] == default_index(store_uri).type
    got = filled_index.get("camera")
    assert got.media_type == "image" and len(got.frames) == 1 and len(got.frames[0].pdq) == 64


def test_index_survives_a_new_process(backend, photos):
    uri, options = backend
    if uri.startswith("http"):  # another process must see the add at once: Strong (docs/milvus-server.md)
        options = {**options, "consistency": "Strong"}
    with CustomIndex(uri, **options) as idx:
        idx.add(photos["coins"], task_id="coins", metadata={"k": "v"})
    code = (
        "import sys, json; from vecsim import CustomIndex; from vecsim.sample_media import sample_photo\n"
        f"idx = CustomIndex({uri!r}, **{options!r}); r = idx.query(sample_photo('coins'))\n"
        "print(json.dumps([idx.count(), r.output[0].task_id, r.output[0].metadata]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [1, "coins", {"k": "v"}]


#: Index types each backend builds; the others must be refused before anything is written.
SUPPORTED = {
    "milvus-lite": {"FLAT", "IVF_FLAT", "IVF_SQ8", "HNSW"},
    "milvus-server": {"FLAT", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "HNSW"},  # 2.3.5: HNSW_SQ/PQ came in 2.6
    "milvus-docker": {"FLAT", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "HNSW"},  # 2.5
    "qdrant-local": {"FLAT"},
    "qdrant-edge": {"FLAT", "HNSW", "HNSW_SQ8", "HNSW_PQ"},
    "qdrant-docker": {"FLAT", "HNSW", "HNSW_SQ8", "HNSW_PQ"},
}
SMALL_PARAMS = {"IVF_FLAT": {"nlist": 4}, "IVF_SQ8": {"nlist": 4, "nprobe": 4, "rerank": True},
                "IVF_PQ": {"nlist": 4, "nprobe": 4, "m": 16}, "HNSW": {"M": 8, "efConstruction": 64},
                "HNSW_SQ8": {"M": 8}, "HNSW_PQ": {"M": 8, "m": 64}}


@pytest.mark.parametrize("index_type", INDEX_TYPES)
def test_index_types_built_or_refused(request, backend, photos, index_type):
    uri, options = backend
    params = SMALL_PARAMS.get(index_type, {})
    name = request.node.callspec.params["backend"]
    if index_type not in SUPPORTED[name]:
        with pytest.raises(IndexConfigError, match=index_type):
            CustomIndex(uri, collection="typed", index=index_type, index_params=params, **options)
        with CustomIndex(uri, collection="typed", **options) as idx:  # the refusal created nothing
            assert idx.count() == 0 and idx.info().index["type"] == default_index(uri).type
        return
    names = ["chelsea", "coffee", "rocket"]
    with CustomIndex(uri, collection="typed", index=index_type, index_params=params, **options) as idx:
        idx.add_many([photos[n] for n in names], task_ids=names)
        assert idx.query(edits.center_crop(0.5)(photos["chelsea"])).output[0].task_id == "chelsea"
    with CustomIndex(uri, collection="typed", **options) as idx:  # reopens with the stored config
        assert idx.info().index == {"type": index_type, "metric": "COSINE", **_defaults(index_type, params)}
        assert idx.query(photos["rocket"]).output[0].matches[0].similarity_score > 0.99


def _defaults(index_type, params):
    from vecsim.index_config import parse_index_config

    d = parse_index_config(index_type, params).model_dump(mode="json")
    d.pop("type"), d.pop("metric")
    return d


def test_ivf_pq_refused_on_lite_before_any_write(tmp_path, photos):
    index_path = f"milvus-lite:{tmp_path / 'lite.db'}"
    with CustomIndex(index_path) as idx:
        idx.add(photos["coffee"], task_id="c")
    with pytest.raises(IndexConfigError, match="Milvus server"):
        CustomIndex(index_path, collection="pq", index="IVF_PQ", index_params={"m": 16})
    with CustomIndex(index_path) as idx:  # the file still opens, data intact
        assert idx.count() == 1
    with pytest.raises(IndexConfigError, match="Milvus server"):  # and the refused collection was not created
        CustomIndex(index_path, collection="pq", index="IVF_PQ")
    with CustomIndex(index_path, collection="pq") as idx:  # the name is free: a FLAT one can be made
        assert idx.info().index["type"] == "FLAT"


@pytest.mark.parametrize("index_type", ["FLAT", "HNSW"])
def test_lite_index_file_cut_short_is_rebuilt(tmp_path, photos, caplog, index_type):
    """Milvus Lite writes its index files in a background thread, in place: a process killed
    meanwhile leaves one truncated (seen after a SIGKILL mid-add). The next open rebuilds it."""
    index_path = tmp_path / "lite.db"
    with CustomIndex(f"milvus-lite:{index_path}", index=index_type) as idx:
        idx.add_many([photos["coffee"], photos["rocket"]], task_ids=["c", "r"])
    index_files = sorted(index_path.glob("collections/vecsim/partitions/*/indexes/*.idx"))
    assert index_files
    for path in index_files:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with caplog.at_level("WARNING", logger="vecsim.adapters.milvus"):
        with CustomIndex(str(index_path)) as idx:
            assert idx.count() == 2
            assert idx.query(photos["coffee"]).output[0].task_id == "c"
            assert idx.query(photos["rocket"]).output[0].task_id == "r"
    assert "rebuilding" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="vecsim.adapters.milvus"):
        with CustomIndex(str(index_path)) as idx:  # the rebuilt files are whole: the next open is quiet
            assert idx.count() == 2
    assert "rebuilding" not in caplog.text


def test_index_options_on_existing_collection_refused(backend):
    uri, options = backend
    CustomIndex(uri, **options).close()
    with pytest.raises(IndexConfigError, match="already exists"):
        CustomIndex(uri, index="FLAT", index_params={"metric": "IP"}, **options)


def test_qdrant_refuses_what_it_cannot_do(tmp_path):
    with pytest.raises(IndexConfigError, match="Milvus index"):
        CustomIndex(f"qdrant-local:{tmp_path / 'q'}", index="IVF_PQ")
    with pytest.raises(IndexConfigError, match="brute force"):
        CustomIndex(f"qdrant-local:{tmp_path / 'q'}", index="HNSW")
    with CustomIndex(f"qdrant-local:{tmp_path / 'q'}") as idx:  # nothing was created by the refusals
        assert idx.count() == 0 and idx.info().index["type"] == "FLAT"


def test_unsupported_uri():
    with pytest.raises(IndexConfigError, match="unsupported index URI"):
        CustomIndex("redis://localhost:6379")


def test_bad_index_params():
    with pytest.raises(IndexConfigError, match="nlist"):
        CustomIndex("unused.db", index="IVF_FLAT", index_params={"nlist": 0})
    with pytest.raises(IndexConfigError, match="unknown index type"):
        CustomIndex("unused.db", index="ANNOY")


class _OtherDescriptor(EfficientNetGeM):
    version = "test-other"


def test_descriptor_mismatch_on_reopen(backend, photos):
    uri, options = backend
    with CustomIndex(uri, descriptor=_OtherDescriptor(calibration=EfficientNetGeM().calibration), **options) as idx:
        idx.add(photos["coffee"])
    with pytest.raises(DescriptorMismatchError, match="test-other"):
        CustomIndex(uri, **options)


def test_async_index(backend, photos):
    uri, options = backend

    async def run():
        async with await AsyncCustomIndex.open(uri, **options) as idx:
            added = await asyncio.gather(*(idx.add(photos[n], task_id=n) for n in ("coffee", "rocket", "clock")))
            res = await idx.query(edits.jpeg(30)(photos["rocket"]))
            count = await idx.count()
            removed = await idx.remove("rocket")
            return added, res, count, removed, await idx.count()

    added, res, count, removed, after = asyncio.run(run())
    assert [a.task_id for a in added] == ["coffee", "rocket", "clock"]
    assert res.output[0].task_id == "rocket" and count == 3 and removed.removed_frames == 1 and after == 2


def _exact_results(uri: str, options: dict, photos) -> list:
    queries = [edits.center_crop(0.5)(photos["coffee"]), edits.jpeg(30)(photos["clock"]), photos["camera"]]
    with CustomIndex(uri, **options) as idx:  # FLAT: exact search
        idx.add_many(list(photos.values()), task_ids=list(photos))
        return [
            [(a.task_id, round(a.matches[0].similarity_score, 4), a.matches[0].exact_score)
             for a in idx.query(q, threshold=0.0).output]
            for q in queries
        ]


@pytest.fixture(scope="session")
def reference_results(tmp_path_factory, photos):
    """The exact-index results on Milvus Lite, the reference every backend must reproduce."""
    return _exact_results(str(tmp_path_factory.mktemp("ref") / "ref.db"), {}, photos)


def test_exact_results_identical_across_backends(backend, photos, reference_results):
    uri, options = backend
    assert _exact_results(uri, options, photos) == reference_results


def test_add_many_fails_every_input_of_a_task_id_given_twice(index, photos):
    res = index.add_many([photos["coffee"], photos["rocket"], photos["camera"]], task_ids=["a", "b", "a"])
    assert [a.task_id for a in res.added] == ["b"]
    assert [f.error for f in res.failed] == ["TaskExistsError", "TaskExistsError"]
    assert all("more than once" in f.message for f in res.failed) and index.count() == 1
