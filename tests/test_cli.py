"""The ``vecsim`` command line, end to end in subprocesses (real model, real Milvus Lite)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vecsim import edits


def run(args, cwd, env_index=None, check_rc=0):
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("VECSIM_INDEX", None)
    if env_index:
        env["VECSIM_INDEX"] = env_index
    p = subprocess.run([sys.executable, "-m", "vecsim.cli", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert p.returncode == check_rc, f"rc={p.returncode}\nstdout={p.stdout}\nstderr={p.stderr}"
    return p


def lines(text):
    return [json.loads(x) for x in text.splitlines() if x.strip()]


@pytest.fixture(scope="module")
def media(tmp_path_factory, photos):
    d = tmp_path_factory.mktemp("media")
    (d / "refs" / "more").mkdir(parents=True)
    photos["coffee"].save(d / "refs" / "coffee.jpg")
    photos["rocket"].save(d / "refs" / "more" / "rocket.png")
    photos["chelsea"].save(d / "chelsea.webp")
    edits.chain(edits.center_crop(0.5), edits.jpeg(50))(photos["rocket"]).save(d / "rocket_copy.jpg")
    edits.text_overlay()(photos["chelsea"]).save(d / "chelsea_copy.png")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    return d


def test_add_query_remove_info(media, tmp_path):
    idx = str(tmp_path / "cli.db")
    out = lines(run(["--index", idx, "add", str(media / "refs"), "--metadata", '{"shop": "é1"}'], tmp_path).stdout)
    assert sorted(os.path.basename(x["source"]) for x in out) == ["coffee.jpg", "rocket.png"]
    single = lines(run(["--index", idx, "add", str(media / "chelsea.webp"), "--task-id", "cat-1"], tmp_path).stdout)
    assert single == [{"task_id": "cat-1", "source": str(media / "chelsea.webp")}]

    res = lines(run(["--index", idx, "query", str(media / "rocket_copy.jpg"), str(media / "chelsea_copy.png")],
                    tmp_path).stdout)
    assert [r["source"] for r in res] == [str(media / "rocket_copy.jpg"), str(media / "chelsea_copy.png")]
    rocket = res[0]["output"][0]
    assert rocket["metadata"] == {"shop": "é1"} and rocket["matches"][0]["similarity_score"] > 0.75
    assert res[1]["output"][0]["task_id"] == "cat-1"

    info = lines(run(["--index", idx, "info"], tmp_path).stdout)[0]
    assert info["assets"] == 3 and info["engine"] == "qdrant-edge" and info["index"]["type"] == "HNSW"  # the default
    ids = sorted([x["task_id"] for x in out] + ["cat-1"])
    page = lines(run(["--index", idx, "list", "--limit", "2", "--json"], tmp_path).stdout)
    assert [[a["task_id"] for a in p["assets"]] for p in page] == [ids[:2]] and page[0]["next"] == ids[1]
    last = run(["--index", idx, "list", "--after", ids[1]], tmp_path)  # a line per asset, tab-separated
    assert [x.split("\t")[:4] for x in last.stdout.splitlines()] == [[ids[2], "image", "0", "1"]] and not last.stderr
    assert "--after" in run(["--index", idx, "list", "--limit", "1"], tmp_path).stderr  # more follow

    removed = lines(run(["--index", idx, "remove", "cat-1"], tmp_path).stdout)
    assert removed == [{"task_id": "cat-1", "removed_frames": 1}]
    res = lines(run(["--index", idx, "query", str(media / "chelsea_copy.png")], tmp_path).stdout)
    assert res[0]["output"] == []


def test_default_index_is_vecsim_db_in_cwd_and_env_overrides(media, tmp_path):
    run(["add", str(media / "chelsea.webp")], tmp_path)
    assert (tmp_path / "vecsim.db").exists()
    other = tmp_path / "other.db"
    run(["add", str(media / "chelsea.webp")], tmp_path, env_index=str(other))
    assert other.exists()


def test_errors_are_one_line_with_nonzero_exit(media, tmp_path):
    idx = str(tmp_path / "e.db")
    p = run(["--index", idx, "add", str(media / "broken.jpg")], tmp_path, check_rc=1)
    assert "broken.jpg" in p.stderr and "Traceback" not in p.stderr and p.stdout == ""
    p = run(["--index", idx, "remove", "nope"], tmp_path, check_rc=1)
    assert p.stderr.strip() == "vecsim: error: task_id 'nope' is not in the index"
    p = run(["--index", idx, "query", str(media / "missing.jpg")], tmp_path, check_rc=1)
    assert "no such file" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = run(["--index", idx, "add", str(media / "refs"), "--metadata", "[1]"], tmp_path, check_rc=1)
    assert "JSON object" in p.stderr
    p = run(["--index", idx, "add", str(media / "refs"), "--task-id", "x"], tmp_path, check_rc=1)
    assert "one file" in p.stderr
    p = run(["--index", idx, "query", str(media / "chelsea.webp"), "--top-k", "0"], tmp_path, check_rc=2)
    assert "Traceback" not in p.stderr


def test_index_type_options(media, tmp_path):
    pq = str(tmp_path / "pq.db")
    p = run(["--index", pq, "add", str(media / "chelsea.webp"), "--index-type", "IVF_PQ"], tmp_path, check_rc=1)
    assert "Milvus index" in p.stderr and "HNSW_PQ" in p.stderr and "Traceback" not in p.stderr  # the default: Qdrant
    p = run(["--index", f"milvus-lite:{pq}", "add", str(media / "chelsea.webp"), "--index-type", "IVF_PQ"], tmp_path,
            check_rc=1)
    assert "Milvus server" in p.stderr and "Traceback" not in p.stderr
    p = run(["--index", pq, "add", str(media / "chelsea.webp"), "--index-type", "HNSW", "--index-param", "M"],
            tmp_path, check_rc=1)
    assert "KEY=VALUE" in p.stderr
    hnsw = str(tmp_path / "hnsw.db")
    run(["--index", hnsw, "add", str(media / "chelsea.webp"), "--index-type", "HNSW", "--index-param", "M=8",
         "--index-param", "ef=32"], tmp_path)
    info = lines(run(["--index", hnsw, "info"], tmp_path).stdout)[0]
    assert info["index"]["type"] == "HNSW" and info["index"]["M"] == 8 and info["index"]["ef"] == 32


def test_debug_shows_traceback(tmp_path):
    p = run(["--debug", "--index", str(tmp_path / "d.db"), "get", "nope"], tmp_path, check_rc=1)
    assert "Traceback" in p.stderr


def test_demo_runs_offline_and_finds_copies(tmp_path):
    p = run(["demo"], tmp_path)
    assert "queries answered correctly" in p.stdout
    right, total = p.stdout.split("queries answered correctly")[0].split()[-1].split("/")
    assert int(right) >= int(total) - 2 and int(total) >= 20


def test_video_add_query_with_plot(tmp_path):
    from vecsim.sample_media import sample_photo
    from vecsim.video_edits import VideoEdit, apply_edit, slideshow, write_video

    photos = [sample_photo(n) for n in ("astronaut", "coffee", "rocket", "camera")]
    ref = write_video(tmp_path / "ref.mp4", slideshow(photos, 5, 10, (320, 240), seed=2), 10)
    clip = apply_edit(ref, tmp_path / "clip.mkv", VideoEdit("x", 6, 14))
    idx = str(tmp_path / "v.db")
    added = lines(run(["--index", idx, "add", str(ref), "--task-id", "ref"], tmp_path).stdout)
    assert added == [{"task_id": "ref", "source": str(ref)}]
    png = tmp_path / "timeline.png"
    res = lines(run(["--index", idx, "query", str(clip), "--plot", str(png)], tmp_path).stdout)[0]
    assert res["media_type"] == "video" and res["query_frames"] == 8
    top = res["output"][0]
    assert top["task_id"] == "ref" and top["segments"] and abs(top["segments"][0]["match_start"] - 6) <= 2
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_folder_mixing_good_and_bad_files(media, tmp_path):
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    (folder / "good.jpg").write_bytes((media / "refs" / "coffee.jpg").read_bytes())
    (folder / "sub" / "empty.png").write_bytes(b"")
    (folder / "sub" / "text.jpg").write_text("not an image at all")
    (folder / "truncated.jpg").write_bytes((media / "refs" / "coffee.jpg").read_bytes()[:300])
    (folder / "sub" / "good.webp").write_bytes((media / "chelsea.webp").read_bytes())
    idx = str(tmp_path / "mixed.db")
    p = run(["--index", idx, "add", str(folder)], tmp_path, check_rc=1)
    added = sorted(os.path.basename(x["source"]) for x in lines(p.stdout))
    assert added == ["good.jpg", "good.webp"]
    errors = [line for line in p.stderr.splitlines() if line.startswith("vecsim: error:")]
    assert len(errors) == 3 and "Traceback" not in p.stderr
    for bad in ("empty.png", "text.jpg", "truncated.jpg"):
        assert sum(bad in e for e in errors) == 1, (bad, errors)
    assert lines(run(["--index", idx, "info"], tmp_path).stdout)[0]["assets"] == 2


def test_bad_metadata_json_names_the_option(media, tmp_path):
    p = run(["--index", str(tmp_path / "m.db"), "add", str(media / "chelsea.webp"), "--metadata", "{bad"], tmp_path,
            check_rc=1)
    assert p.stderr.startswith("vecsim: error: --metadata is not valid JSON") and "Traceback" not in p.stderr


def test_plot_without_matplotlib_fails_before_querying(media, tmp_path):
    blocker = tmp_path / "blocker" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('matplotlib is blocked for this test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker.parent), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-m", "vecsim.cli", "--index", str(tmp_path / "never.db"), "query",
                        str(media / "chelsea.webp"), "--plot", str(tmp_path / "t.png")],
                       cwd=tmp_path, env=env, capture_output=True, text=True)
    assert p.returncode == 1 and p.stdout == "", p.stderr
    assert p.stderr.strip() == "vecsim: error: --plot needs matplotlib: pip install 'vecsim[plot]'"
    assert not (tmp_path / "never.db").exists()  # failed before the index was even opened


HOLD = """
import sys
from vecsim import CustomIndex
with CustomIndex(sys.argv[1]):
    print("open", flush=True)
    sys.stdin.read()
"""


def test_index_held_by_another_process_is_one_line(tmp_path):
    db = str(tmp_path / "held.db")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, db], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        p = run(["--index", db, "info"], tmp_path, check_rc=1)
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert "another process" in p.stderr and "Traceback" not in p.stderr
    finally:
        holder.stdin.close()
        holder.wait(60)
