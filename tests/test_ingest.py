"""``vecsim ingest`` / ``vecsim.ingest`` (issue 16): a manifest of real photos and generated clips,
locally and on a local Ray cluster (``ray.init(num_cpus=2)``), into the real Milvus 2.3.5 server
and into Qdrant Edge (written by the driver); bad rows to the failures file; a rerun skips what
is committed; a killed embedding actor and a rerun leave every asset exactly once."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vecsim import CustomIndex, edits, ingest
from vecsim.bulk import derived_task_id, read_failures
from vecsim.video_edits import VideoEdit, apply_edit, slideshow, write_video

from .conftest import encode

PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "camera", "coins"]
CLIP_SIZE, CLIP_FPS = (320, 240), 5


def crop_copy(im: Image.Image) -> bytes:
    """An edited copy: the middle 70 %, downscaled, re-encoded."""
    w, h = im.size
    c = im.crop((int(w * 0.15), int(h * 0.15), int(w * 0.85), int(h * 0.85)))
    return encode(c.resize((c.width * 3 // 4, c.height * 3 // 4)), "JPEG", quality=70)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, photos):
    """Photos as JPEG files, two clips, and a manifest with three bad rows (a missing file, a file
    that is not media, metadata that is not an object); ``expected`` maps each good task_id to its frames."""
    d = tmp_path_factory.mktemp("ingest")
    (d / "photos").mkdir()
    for name in PHOTOS:
        photos[name].convert("RGB").save(d / "photos" / f"{name}.jpg", quality=92)
    write_video(d / "clip_a.mp4", slideshow([photos["clock"], photos["coffee"]], 4, CLIP_FPS, CLIP_SIZE, seed=1), CLIP_FPS)
    write_video(d / "clip_b.mp4", slideshow([photos["immunohistochemistry"]], 6, CLIP_FPS, CLIP_SIZE, seed=2), CLIP_FPS)
    (d / "not_media.jpg").write_text("this is not a JPEG")
    rows = [{"source": "photos", "metadata": {"kind": "photo"}},  # a folder: one row per file
            {"source": "clip_a.mp4", "task_id": "clip-a", "metadata": {"kind": "clip"}},
            {"source": "clip_b.mp4", "task_id": "clip-b"},
            {"source": "missing.jpg"},
            {"source": "not_media.jpg"},
            {"source": "clip_a.mp4", "task_id": "bad-meta", "metadata": "{oops"}]
    manifest = d / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    expected = {derived_task_id(str(d / "photos" / f"{n}.jpg")): 1 for n in sorted(PHOTOS)}
    expected |= {"clip-a": 8, "clip-b": 6}
    return d, manifest, expected


def _bad_codes(path: Path) -> list[str]:
    return sorted(r["code"] for r in read_failures(path))


def _frames(index: CustomIndex) -> dict[str, list[tuple[float, float, str]]]:
    """Every visible asset's stored frames (timestamp, span end, PDQ), by task_id."""
    out = {}
    store = index._store
    for task_id, record in store.assets(_all_ids(index)).items():
        out[task_id] = [(f.timestamp, f.span_end, f.pdq) for f in store.frames(task_id, record.generation)]
    return out


def _all_ids(index: CustomIndex) -> list[str]:
    ids, after = [], None
    while True:
        page = index.list_assets(limit=100, after=after)
        ids += [a.task_id for a in page.assets]
        if not page.next:
            return ids
        after = page.next


# a re-upload of a clip: its centre (85 % of the surface), downscaled, re-encoded at a low bit rate
REUPLOAD = VideoEdit("reupload", frame_edit=edits.center_crop(0.85), size=(240, 180), bit_rate=150_000)


def _found_by_copies(index: CustomIndex, corpus_dir: Path, photos, expected: dict[str, int]) -> None:
    """Each photo is the top match of its cropped, rescaled, re-encoded copy; each clip of its
    re-upload, at the default threshold. (A single frame of a clip is no steady probe: the clips'
    encodes vary by a few grey levels from run to run, and a cropped frame of the smooth clock
    photo sits at a cut of the geometric verification, so it scores 0.15 or 0.9 by chance.)"""
    for name in PHOTOS:
        top = index.query(crop_copy(photos[name])).output[0]
        assert top.task_id == derived_task_id(str(corpus_dir / "photos" / f"{name}.jpg"))
    for task_id, clip in (("clip-a", "clip_a.mp4"), ("clip-b", "clip_b.mp4")):
        copy = apply_edit(corpus_dir / clip, corpus_dir / f"reupload_{clip}", REUPLOAD)
        top = index.query(copy).output[0]
        assert top.task_id == task_id and len(top.matches) >= expected[task_id] // 2


def test_local_ingest_then_rerun_skips_then_changed_content(tmp_path, corpus, photos):
    d, manifest, expected = corpus
    failures = tmp_path / "failures.jsonl"
    uri = f"qdrant-edge:{tmp_path / 'edge'}"
    with CustomIndex(uri) as index:
        first = ingest(manifest, index, failures=failures)
        assert (first.added, first.skipped, first.failed) == (len(expected), 0, 3)
        assert first.by_code == {"not_found": 1, "unsupported_media": 1, "invalid_metadata": 1}
        assert _bad_codes(failures) == ["invalid_metadata", "not_found", "unsupported_media"]
        assert {t: len(f) for t, f in _frames(index).items()} == expected
        assert index.get("clip-a").metadata == {"kind": "clip"}
        _found_by_copies(index, d, photos, expected)

        again = ingest(manifest, index, failures=failures)  # a rerun: nothing decoded, nothing written
        assert (again.added, again.skipped, again.failed, again.frames) == (0, len(expected), 3, 0)
        assert index.count() == len(expected)
        assert len(list(read_failures(failures))) == 6  # appended

        changed = tmp_path / "changed.jsonl"
        changed.write_text(json.dumps({"source": str(d / "clip_a.mp4"), "task_id": "clip-b"}) + "\n")
        refused = ingest(changed, index, failures=failures)
        assert (refused.failed, refused.by_code) == (1, {"task_exists": 1})
        replaced = ingest(changed, index, failures=failures, replace=True)
        assert (replaced.replaced, replaced.failed) == (1, 0)
        assert len(index.get("clip-b").frames) == 8 and index.count() == len(expected)


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'vecsim[ray]')")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _vectors(index: CustomIndex) -> dict[tuple[str, int], np.ndarray]:
    """Every stored frame vector of a Milvus collection, by (task_id, frame)."""
    store = index._store
    rows = store._client.query(store.collection, filter='task_id != ""', output_fields=["task_id", "frame", "vector"],
                               limit=1000)
    return {(r["task_id"], int(r["frame"])): np.asarray(r["vector"], dtype=np.float32) for r in rows}


def test_ray_into_the_milvus_server_stores_what_local_mode_stores(tmp_path, corpus, photos, ray_cluster,
                                                                   milvus_server_uri):
    d, manifest, expected = corpus
    uri, options = milvus_server_uri
    with CustomIndex(uri, collection="ingest_local", **options) as local, \
            CustomIndex(uri, collection="ingest_ray", **options) as on_ray:
        a = ingest(manifest, local, failures=tmp_path / "a.jsonl")
        b = ingest(manifest, on_ray, ray="auto", workers=2, failures=tmp_path / "b.jsonl")
        assert (a.added, a.failed) == (b.added, b.failed) == (len(expected), 3)
        assert _bad_codes(tmp_path / "b.jsonl") == ["invalid_metadata", "not_found", "unsupported_media"]
        assert _frames(on_ray) == _frames(local)
        va, vb = _vectors(local), _vectors(on_ray)
        assert va.keys() == vb.keys() and len(va) == sum(expected.values())
        assert max(float(np.abs(va[k] - vb[k]).max()) for k in va) < 1e-5
        for t in expected:
            assert on_ray.get(t).metadata == local.get(t).metadata
        _found_by_copies(on_ray, d, photos, expected)
        rerun = ingest(manifest, on_ray, ray="auto", workers=2, failures=tmp_path / "b.jsonl")
        assert (rerun.added, rerun.skipped) == (0, len(expected))


def test_ray_into_qdrant_edge_is_written_by_the_driver(tmp_path, corpus, photos, ray_cluster):
    d, manifest, expected = corpus
    with CustomIndex(f"qdrant-edge:{tmp_path / 'edge'}") as index:
        result = ingest(manifest, index, ray="auto", workers=2, failures=tmp_path / "f.jsonl")
        assert (result.added, result.failed) == (len(expected), 3)
        assert {t: len(f) for t, f in _frames(index).items()} == expected
        _found_by_copies(index, d, photos, expected)


def _actor_pids() -> list[int]:
    """The processes of Ray Data's embedding actors (their title names the class)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"_EmbedActor" in cmdline:
                pids.append(int(entry))
    return pids


def test_a_killed_actor_and_a_rerun_leave_every_asset_exactly_once(tmp_path, photos, ray_cluster, milvus_server_uri):
    uri, options = milvus_server_uri
    d = tmp_path / "clips"
    d.mkdir()
    names = ["astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "clock", "immunohistochemistry"]
    for i, name in enumerate(names):  # 8 clips of 10 s: 80 frames, a few seconds of embedding each
        write_video(d / f"c{i}.mp4", slideshow([photos[name], photos[names[i - 1]]], 5, CLIP_FPS, CLIP_SIZE, seed=i),
                    CLIP_FPS)
    manifest = tmp_path / "clips.csv"
    manifest.write_text("source,task_id\n" + "".join(f"clips/c{i}.mp4,clip-{i}\n" for i in range(len(names))))
    killed: list[int] = []
    results: list = []

    with CustomIndex(uri, collection="ingest_kill", **options) as index:
        def run() -> None:
            try:
                results.append(ingest(manifest, index, ray="auto", workers=1, failures=tmp_path / "f.jsonl"))
            except BaseException as exc:  # noqa: BLE001 - the test looks at what happened
                results.append(exc)

        job = threading.Thread(target=run)
        job.start()
        deadline = time.monotonic() + 180
        while not killed and job.is_alive() and time.monotonic() < deadline:
            pids = _actor_pids()
            if pids and index.count() >= 1:  # mid-job: some assets committed, others not yet
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.2)
        job.join(timeout=300)
        assert killed, "the embedding actor was never seen running"
        assert not job.is_alive()
        # Ray restarts the actor and retries its batch (what the killed attempt committed is then
        # skipped, same digest), or the job ends short: either way a rerun finishes exactly the rest.
        after_first = index.count()
        first = results[0]
        if not isinstance(first, BaseException):
            assert first.added + first.skipped + first.failed == len(names)
            assert first.added <= after_first
        rerun = ingest(manifest, index, ray="auto", workers=1, failures=tmp_path / "f.jsonl")
        assert (rerun.added, rerun.skipped, rerun.failed) == (len(names) - after_first, after_first, 0)
        assert sorted(_all_ids(index)) == sorted(f"clip-{i}" for i in range(len(names)))
        frames = _frames(index)
        assert all(len(f) == 10 for f in frames.values())
        index.vacuum()  # leftovers of the killed attempt (invisible) are deleted
        assert index._store.count() == (len(names), 10 * len(names))  # every frame row once


def test_the_cli_prints_a_summary_and_exits_3_when_rows_failed(tmp_path, corpus):
    import subprocess
    import sys

    d, _, _ = corpus
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"source,task_id,metadata\n{d / 'photos' / 'coffee.jpg'},coffee,\"{{\"\"shop\"\": 1}}\"\n"
                        f"{d / 'missing.jpg'},,\n")
    cli = [sys.executable, "-m", "vecsim.cli", "--index", f"qdrant-edge:{tmp_path / 'edge'}"]
    p = subprocess.run([*cli, "ingest", str(manifest)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 3, p.stderr
    summary = json.loads(p.stdout)
    assert (summary["added"], summary["failed"], summary["failed_by_code"]) == (1, 1, {"not_found": 1})
    assert _bad_codes(Path(summary["failures"])) == ["not_found"]
    again = subprocess.run([*cli, "ingest", str(manifest), "--failures", str(tmp_path / "f2.jsonl")],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 3 and json.loads(again.stdout)["skipped"] == 1
    refused = subprocess.run([sys.executable, "-m", "vecsim.cli", "--index", "vecsim+http://127.0.0.1:9", "--api-key",
                              "k", "ingest", str(manifest)], capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "not through a vecsim service" in refused.stderr
