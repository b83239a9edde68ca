"""The ingest manifest reader and the failures file (vecsim.bulk): each format, folder expansion,
every bad-row code, Unicode, streaming a large manifest in bounded memory, and appending failures."""

from __future__ import annotations

import csv
import json
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from PIL import Image

from vecsim.errors import MissingDependencyError
from vecsim.bulk import (
    BAD_ROW_CODES,
    BadRow,
    FailuresFile,
    Manifest,
    ManifestError,
    ManifestRow,
    detect_format,
    read_failures,
    read_manifest,
)
from vecsim.validate import MAX_TASK_ID_LENGTH


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """A folder of real media: two photos (one in a subfolder, one with a Unicode name), a GIF, a
    file that is not media, and an empty subfolder tree."""
    root = tmp_path_factory.mktemp("manifest")
    shots = root / "shots"
    (shots / "sub").mkdir(parents=True)
    Image.new("RGB", (16, 12), (200, 10, 10)).save(shots / "b.png")
    Image.new("RGB", (16, 12), (10, 200, 10)).save(shots / "sub" / "a.JPG")
    Image.new("RGB", (16, 12), (10, 10, 200)).save(shots / "猫 café.png")
    Image.new("P", (8, 8)).save(shots / "sub" / "z.gif")
    (shots / "notes.txt").write_text("not media")
    (root / "nothing" / "deeper").mkdir(parents=True)
    (root / "nothing" / "deeper" / "readme.md").write_text("no media here")
    return root


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_jsonl(path: Path, objects: list) -> Path:
    path.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects), encoding="utf-8")
    return path


def by_code(items) -> dict[str, list[BadRow]]:
    out: dict[str, list[BadRow]] = {}
    for item in items:
        if isinstance(item, BadRow):
            out.setdefault(item.code, []).append(item)
    return out


def good(items) -> list[ManifestRow]:
    return [i for i in items if isinstance(i, ManifestRow)]


# --- formats ---------------------------------------------------------------------------------------


def test_csv_rows_resolve_against_the_manifest_folder(media):
    photo = media / "shots" / "b.png"
    path = write_csv(media / "m.csv", ["source", "task_id", "metadata"], [
        ["shots/b.png", "t-1", json.dumps({"listing": 42, "tags": ["a", "b"], "nested": {"x": None}})],
        [str(photo), "", ""],  # absolute path; empty task_id and metadata: none, {}
        ["https://example.com/a.jpg?x=1", "t-2", ""],  # a URL passes through untouched
    ])
    rows = list(read_manifest(path))
    assert rows == [
        ManifestRow(2, str(photo), "t-1", {"listing": 42, "tags": ["a", "b"], "nested": {"x": None}}),
        ManifestRow(3, str(photo), None, {}),
        ManifestRow(4, "https://example.com/a.jpg?x=1", "t-2", {}),
    ]


def test_csv_line_numbers_header_order_bom_blank_lines_and_multiline_cells(media):
    photo = media / "shots" / "b.png"
    # a BOM, spaces around the header names, columns in another order, a blank line, a metadata
    # cell spanning three lines, and only the source column filled on the last row
    text = ("\ufeffmetadata , source,task_id\n"
            '"{""a"": 1}",shots/b.png,x1\n'
            "\n"
            '"{\n""b"":\n 2}",shots/b.png,x2\n'
            ",shots/b.png\n")
    path = media / "order.csv"
    path.write_text(text, encoding="utf-8")
    assert Manifest(path).columns == ("metadata", "source", "task_id")
    assert list(read_manifest(path)) == [
        ManifestRow(2, str(photo), "x1", {"a": 1}),
        ManifestRow(4, str(photo), "x2", {"b": 2}),
        ManifestRow(7, str(photo), None, {}),  # fewer cells than columns: the rest are empty
    ]
    assert Manifest(path).count_records() == 3  # the blank line is no record, the three-line cell one


def test_csv_with_only_a_source_column(media):
    path = write_csv(media / "only.csv", ["source"], [["shots/b.png"], ["shots"]])
    rows = list(read_manifest(path))
    assert [r.line for r in rows] == [2, 3, 3, 3, 3]
    assert Manifest(path).count_records() == 2
    assert all(r.task_id is None and r.metadata == {} for r in rows)


def test_jsonl_rows(media):
    photo = media / "shots" / "b.png"
    path = media / "m.jsonl"
    path.write_text(
        "\ufeff" + json.dumps({"source": "shots/b.png", "task_id": "j-1", "metadata": {"k": [1, 2.5, True]}}) + "\n"
        "\n"  # blank: skipped, but counted
        + json.dumps({"source": "shots/b.png", "task_id": None, "metadata": None}) + "\n"
        + json.dumps({"source": "http://example.com/v.mp4"}) + "\n",
        encoding="utf-8",
    )
    assert list(read_manifest(path)) == [
        ManifestRow(1, str(photo), "j-1", {"k": [1, 2.5, True]}),
        ManifestRow(3, str(photo), None, {}),
        ManifestRow(4, "http://example.com/v.mp4", None, {}),
    ]
    assert Manifest(path).count_records() == 3
    assert detect_format(media / "x.NDJSON") == "jsonl"


def test_parquet_rows(media):
    pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed")
    import pyarrow.parquet as pq

    photo = media / "shots" / "b.png"
    table = pa.table({
        "source": ["shots/b.png", None, "shots", "https://example.com/c.png"],
        "task_id": ["p-1", "p-2", None, "p-1"],
        "metadata": ['{"k": "v"}', None, '{"from": "folder"}', None],
    })
    path = media / "m.parquet"
    pq.write_table(table, path, row_group_size=2)  # two row groups: rows are read across them
    items = list(read_manifest(path))
    assert items[0] == ManifestRow(1, str(photo), "p-1", {"k": "v"})
    assert items[1] == BadRow(2, "", "missing_source", "the row has no source")
    folder = [r for r in items if isinstance(r, ManifestRow) and r.line == 3]
    assert [Path(r.source).name for r in folder] == ["b.png", "a.JPG", "z.gif", "猫 café.png"]
    assert all(r.metadata == {"from": "folder"} for r in folder)
    assert items[-1].code == "duplicate_task_id" and items[-1].line == 4
    assert Manifest(path).count_records() == 4  # from the footer: records, before the folder expands


def test_parquet_columns_must_be_strings(media):
    pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed")
    import pyarrow.parquet as pq

    path = media / "typed.parquet"
    pq.write_table(pa.table({"source": ["a.png"], "metadata": [{"k": 1}]}), path)
    with pytest.raises(ManifestError, match="'metadata' is struct"):
        Manifest(path)
    (media / "fake.parquet").write_text("source\na.png\n")
    with pytest.raises(ManifestError, match="not a Parquet file"):
        Manifest(media / "fake.parquet")


def test_parquet_without_pyarrow_names_what_to_install(media, monkeypatch):
    path = media / "no-arrow.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(MissingDependencyError, match="pip install pyarrow"):
        Manifest(path)


def test_format_override_and_whole_manifest_errors(media):
    path = media / "rows.txt"
    path.write_text(json.dumps({"source": "shots/b.png"}) + "\n")
    with pytest.raises(ManifestError, match="cannot tell the manifest format"):
        Manifest(path)
    assert [r.source for r in read_manifest(path, format="jsonl")] == [str(media / "shots" / "b.png")]
    with pytest.raises(ManifestError, match="unknown manifest format"):
        Manifest(path, format="xml")
    with pytest.raises(ManifestError, match="no such manifest file"):
        Manifest(media / "missing.csv")
    (media / "empty.csv").write_text("")
    with pytest.raises(ManifestError, match="empty CSV file"):
        Manifest(media / "empty.csv")
    with pytest.raises(ManifestError, match="no source column"):
        Manifest(write_csv(media / "nosrc.csv", ["path", "task_id"], []))
    # a misspelt column would otherwise be dropped and every asset get a new id on each rerun
    with pytest.raises(ManifestError, match=r"unknown column\(s\) 'taskid'"):
        Manifest(write_csv(media / "typo.csv", ["source", "taskid"], []))
    with pytest.raises(ManifestError, match=r"'source' given twice"):
        Manifest(write_csv(media / "twice.csv", ["source", "source"], []))


def test_a_manifest_can_be_read_twice(media):
    """Each iteration reads the file anew (a caller may count the rows first), and the duplicate
    check starts afresh."""
    manifest = Manifest(write_csv(media / "twice-read.csv", ["source", "task_id"], [["shots/b.png", "d"]]))
    assert list(manifest) == list(manifest) == [ManifestRow(2, str(media / "shots" / "b.png"), "d", {})]


# --- folders ---------------------------------------------------------------------------------------


def test_a_folder_expands_recursively_sorted_to_media_files(media):
    path = write_jsonl(media / "folder.jsonl", [{"source": "shots", "metadata": {"batch": 7, "tags": ["x"]}}])
    rows = list(read_manifest(path))
    shots = media / "shots"
    rows[0].metadata["tags"].append("changed by a caller")  # each row's metadata is its own
    assert rows[1].metadata == {"batch": 7, "tags": ["x"]}
    rows = list(read_manifest(path))
    # files_under: paths sorted part by part ("sub" < "猫"); the extension test ignores case;
    # notes.txt is not media
    assert rows == [ManifestRow(1, str(p), None, {"batch": 7, "tags": ["x"]}) for p in
                    [shots / "b.png", shots / "sub" / "a.JPG", shots / "sub" / "z.gif", shots / "猫 café.png"]]


def test_folder_rows_with_a_task_id_or_without_media_are_bad(media):
    path = write_csv(media / "folders.csv", ["source", "task_id"], [
        ["shots", "one-id-for-many"], ["nothing", ""], ["shots/sub", ""],
    ])
    items = list(read_manifest(path))
    assert [(i.line, i.code) for i in items if isinstance(i, BadRow)] == [(2, "task_id_on_folder"),
                                                                          (3, "empty_folder")]
    assert [Path(r.source).name for r in good(items)] == ["a.JPG", "z.gif"]


# --- bad rows --------------------------------------------------------------------------------------


def test_every_bad_row_code(media):
    """One manifest per format with every kind of bad row; reading goes on after each, and the
    good rows between them come through."""
    long_cell = "x" * (csv.field_size_limit() + 10)
    csv_path = media / "bad.csv"
    with open(csv_path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["source", "task_id", "metadata"])
        w.writerows([
            ["", "t0", ""],                                     # 2 missing_source
            ["shots/b.png", "dup", ""],                         # 3 good
            ["https://example.com/x.png", "dup", ""],           # 4 duplicate_task_id
            ["shots/b.png", 'say "hi"', ""],                    # 5 invalid_task_id (quotes)
            ["shots/b.png", "x" * (MAX_TASK_ID_LENGTH + 1), ""],  # 6 invalid_task_id (length)
            ["shots/b.png", " padded", ""],                     # 7 invalid_task_id (white space)
            ["shots/b.png", "", "{not json"],                   # 8 invalid_metadata (not JSON)
            ["shots/b.png", "", "[1, 2]"],                      # 9 invalid_metadata (not an object)
            ["shots/b.png", "", '{"n": NaN}'],                  # 10 invalid_metadata (check_metadata)
            ["shots/b.png", "", json.dumps({"big": 2**64})],    # 11 invalid_metadata (beyond 64 bits)
            ["missing/photo.jpg", "", ""],                      # 12 not_found
            ["s3://bucket/key.jpg", "", ""],                    # 13 unsupported_source
            ["shots", "folder-id", ""],                         # 14 task_id_on_folder
            ["nothing", "", ""],                                # 15 empty_folder
            ["x" * 300 + "/a.jpg", "", ""],                     # 16 not_readable (name too long)
            ["shots/b.png", "ok", "", "extra"],                 # 17 invalid_row (too many cells)
            [long_cell, "", ""],                                # 18 invalid_row (over the csv field limit)
            ["shots/b\x00.png", "", ""],                        # 19 invalid_source (NUL)
            ["shots/b.png", "last", ""],                        # 20 good
        ])
    with open(csv_path, "ab") as f:
        f.write(b"shots/\xff.png,,\n")                         # 21 invalid_encoding
        f.write(b"shots/b.png,after-bytes,\n")                 # 22 good
    items = list(read_manifest(csv_path))
    found = {(i.line, i.code) for i in items if isinstance(i, BadRow)}
    assert found == {
        (2, "missing_source"), (4, "duplicate_task_id"), (5, "invalid_task_id"), (6, "invalid_task_id"),
        (7, "invalid_task_id"), (8, "invalid_metadata"), (9, "invalid_metadata"), (10, "invalid_metadata"),
        (11, "invalid_metadata"), (12, "not_found"), (13, "unsupported_source"), (14, "task_id_on_folder"),
        (15, "empty_folder"), (16, "not_readable"), (17, "invalid_row"), (18, "invalid_row"),
        (19, "invalid_source"), (21, "invalid_encoding"),
    }
    assert [(r.line, r.task_id) for r in good(items)] == [(3, "dup"), (20, "last"), (22, "after-bytes")]
    bad = {i.line: i for i in items if isinstance(i, BadRow)}
    assert "line 3" in bad[4].message and bad[4].source == "https://example.com/x.png"
    assert bad[21].source == "shots/\\xff.png"  # the undecodable byte, shown
    assert bad[12].source == "missing/photo.jpg" and str(media / "missing" / "photo.jpg") in bad[12].message

    jsonl_path = media / "bad.jsonl"
    with open(jsonl_path, "wb") as f:
        f.write(b'{"source": "shots/b.png", "task_id": "j"\n')              # 1 invalid_json
        f.write(b'["shots/b.png"]\n')                                         # 2 invalid_row (not an object)
        f.write(b'{"source": "shots/b.png", "taskid": "j"}\n')               # 3 invalid_row (unknown key)
        f.write(b'{"source": 42}\n')                                          # 4 invalid_source
        f.write(b'{"source": "shots/b.png", "task_id": 7}\n')                # 5 invalid_task_id (not a str)
        f.write(b'{"source": "shots/b.png", "metadata": "{\\"a\\": 1}"}\n')  # 6 invalid_metadata (text)
        f.write(b'{"source": "shots/\xff.png"}\n')                           # 7 invalid_encoding
        f.write(b'{"task_id": "no-source"}\n')                               # 8 missing_source
        f.write(b'{"source": "shots/b.png", "task_id": "j"}\n')              # 9 good: line 1 never took "j"
    items = list(read_manifest(jsonl_path))
    assert [(i.line, i.code) for i in items if isinstance(i, BadRow)] == [
        (1, "invalid_json"), (2, "invalid_row"), (3, "invalid_row"), (4, "invalid_source"), (5, "invalid_task_id"),
        (6, "invalid_metadata"), (7, "invalid_encoding"), (8, "missing_source"),
    ]
    assert good(items) == [ManifestRow(9, str(media / "shots" / "b.png"), "j", {})]
    assert found_codes(csv_path, jsonl_path) == set(BAD_ROW_CODES)  # every documented code is exercised


def found_codes(*paths: Path) -> set[str]:
    return {i.code for p in paths for i in read_manifest(p) if isinstance(i, BadRow)}


def test_the_later_duplicate_fails_and_a_bad_first_row_takes_no_id(media):
    path = write_csv(media / "dups.csv", ["source", "task_id"], [
        ["missing.jpg", "a"],        # 2: not_found; "a" stays free
        ["shots/b.png", "a"],        # 3: good, takes "a"
        ["shots/b.png", "a"],        # 4: duplicate of line 3
        ["https://e.com/1", "b"],    # 5: good
        ["https://e.com/2", "a"],    # 6: duplicate of line 3
    ])
    items = list(read_manifest(path))
    assert [(i.line, getattr(i, "code", "ok")) for i in items] == [
        (2, "not_found"), (3, "ok"), (4, "duplicate_task_id"), (5, "ok"), (6, "duplicate_task_id"),
    ]
    assert all("line 3" in i.message for i in items if getattr(i, "code", "") == "duplicate_task_id")


def test_unicode_sources_task_ids_and_metadata(media):
    photo = media / "shots" / "猫 café.png"
    meta = {"título": "ñandú 🦤", "标签": ["猫", "ü"], "emoji": "👍🏽"}
    csv_path = write_csv(media / "ユニコード.csv", ["source", "task_id", "metadata"], [
        ["shots/猫 café.png", "タスク-1 ✓", json.dumps(meta, ensure_ascii=False)],
    ])
    jsonl_path = write_jsonl(media / "ユニコード.jsonl", [
        {"source": "shots/猫 café.png", "task_id": "タスク-1 ✓", "metadata": meta},
    ])
    expected = [ManifestRow(2, str(photo), "タスク-1 ✓", meta)]
    assert list(read_manifest(csv_path)) == expected
    assert list(read_manifest(jsonl_path)) == [expected[0]._replace(line=1)]


# --- streaming -------------------------------------------------------------------------------------


def test_a_100k_row_csv_streams_in_bounded_memory_and_time(media):
    """100 000 rows (about 9 MB): half URLs, half one real photo, metadata on each. Reading holds
    a few tens of KB however far it gets (a whole-file read would hold the file's 9 MB and more in
    Python objects at the first row; keeping rows would grow by about 500 bytes a row)."""
    n = 100_000
    photo = media / "shots" / "b.png"
    path = media / "big.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["source", "task_id", "metadata"])
        for i in range(n):
            source = f"https://example.com/media/{i:06d}.jpg" if i % 2 else "shots/b.png"
            w.writerow([source, "", json.dumps({"i": i, "shard": i % 97, "title": f"asset number {i}"})])
    size = path.stat().st_size
    assert size > 8_000_000

    # memory: traced over the first quarter of the rows (tracemalloc slows Python about 4x)
    traced = n // 4
    tracemalloc.start()
    try:
        rows = read_manifest(path)
        first = next(rows)
        for _ in range(traced - 1):
            next(rows)
        _, peak = tracemalloc.get_traced_memory()
        rows.close()
    finally:
        tracemalloc.stop()
    assert first == ManifestRow(2, str(photo), None, {"i": 0, "shard": 0, "title": "asset number 0"})
    assert peak < 1_000_000, f"reading {traced:,} rows held {peak:,} bytes at its peak ({size:,}-byte manifest)"

    # time: every row, untraced (about 5 s here; a generous bound for a shared machine)
    start = time.perf_counter()
    count, last = 0, None
    for row in read_manifest(path):
        count += 1
        last = row
    elapsed = time.perf_counter() - start
    assert count == n and last == ManifestRow(n + 1, f"https://example.com/media/{n - 1:06d}.jpg", None,
                                              {"i": n - 1, "shard": (n - 1) % 97, "title": f"asset number {n - 1}"})
    assert elapsed < 45, f"{n:,} rows took {elapsed:.1f} s"


# --- failures file ---------------------------------------------------------------------------------


def test_failures_file_appends_flushes_and_survives_a_cut_line(media, tmp_path):
    path = tmp_path / "run" / "failures.jsonl"  # the folder is made
    bad = BadRow(3, "shots/猫.png", "not_found", "no such file or folder: /x/猫.png")
    with FailuresFile(path) as failures:
        failures.write_bad_row(bad)
        # on disk before close: each record is one write, nothing buffered in the process
        first = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        assert [{k: r[k] for k in ("line", "source", "code", "message")} for r in first] == [bad._asdict()]
        assert "猫" in path.read_text(encoding="utf-8")  # written as UTF-8, not \\u escapes
        failures.write(9, "https://e.com/v.mp4", "CorruptMediaError", "https://e.com/v.mp4: truncated")
        assert failures.written == 2
    failures.close()  # twice is fine
    with pytest.raises(ValueError, match="closed"):
        failures.write(1, "a", "b", "c")

    with open(path, "ab") as f:  # a run that died in the middle of a record
        f.write(b'{"line": 12, "source": "cut')
    with FailuresFile(path) as failures:  # a rerun: appends, on a fresh line
        failures.write(4, "shots/\udcff.png", "invalid_encoding", "the row is not valid UTF-8")
    records = list(read_failures(path))
    assert [(r["line"], r["code"]) for r in records] == [(3, "not_found"), (9, "CorruptMediaError"),
                                                         (4, "invalid_encoding")]
    assert records[2]["source"] == "shots/\udcff.png"  # a non-UTF-8 path comes back as it went in
    assert all(list(r) == ["line", "source", "code", "message", "time"] for r in records)
    assert all(r["time"].endswith("+00:00") for r in records)
    lines = path.read_bytes().split(b"\n")
    assert lines[2] == b'{"line": 12, "source": "cut' and lines[-1] == b""


def test_failures_of_a_whole_manifest(media, tmp_path):
    """The bad rows of a manifest, written as they stream by, read back the same."""
    path = write_csv(media / "to-fail.csv", ["source", "task_id"], [
        ["missing.png", ""], ["shots/b.png", "k"], ["shots", "k2"], ["shots/b.png", "k"],
    ])
    out = tmp_path / "failures.jsonl"
    with FailuresFile(out) as failures:
        bad = [failures.write_bad_row(i) for i in read_manifest(path) if isinstance(i, BadRow)]
    assert [(r["line"], r["code"]) for r in read_failures(out)] == [(2, "not_found"), (4, "task_id_on_folder"),
                                                                     (5, "duplicate_task_id")]
    assert list(read_failures(out)) == bad


def test_the_progress_total_grows_to_every_row_of_an_expanded_folder(media, tmp_path):
    """The bar starts from the records (counted without checking them) and each folder adds its
    other files when it is read, so it ends at exactly the rows the job handles."""
    from types import SimpleNamespace

    from vecsim.bulk.job import IngestResult, Tally, chunks

    path = write_csv(media / "progress.csv", ["source"], [["shots/b.png"], ["shots"], ["missing.png"], ["shots"]])
    manifest = Manifest(path)
    with FailuresFile(tmp_path / "f.jsonl") as failures:
        tally = Tally(failures, manifest.count_records(), True, IngestResult(failures=str(failures.path)))
        assert tally.bar.total == 4
        holds_nothing = SimpleNamespace(_store=SimpleNamespace(assets=lambda ids: {}))  # no task_id indexed yet
        tasks = [t for chunk in chunks(manifest, holds_nothing, tally, size=2) for t in chunk]
        tally.close()
    rows = list(manifest)
    assert len(rows) == 1 + 4 + 1 + 4 and tally.bar.total == len(rows)
    # b.png is named by the first row and again by each folder row: derived ids twice are bad rows
    assert len(tasks) == 4 and tally.result.by_code == {"not_found": 1, "duplicate_task_id": 5}
