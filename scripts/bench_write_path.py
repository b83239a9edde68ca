"""Measure the bulk write path of ``vecsim ingest`` alone (no decoding, no embedding): how fast
:class:`vecsim.bulk.writer.Committer` stores already embedded assets, by group size, on the Milvus
2.3.5 server and on Qdrant Edge; then the final ``build_index``.

    python scripts/bench_write_path.py --assets 4096 --groups 1,16,128,2048

Real rows: ``--photos`` photos of ``../shared/data/photos/photo`` are embedded once (vector, PDQ
and the keypoints the default stores), then reused under new task_ids (one frame per asset, as
for an image). For each group size, a fresh collection is written in groups of that many assets
(one insert and one commit per group: what ``GROUP_FRAMES`` sets), timed to the end of the last
commit; then ``build_index`` is timed once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def embedded_assets(n: int, photos: int, index) -> list:
    from vecsim.bulk.work import Embedder, Fetched, Task, file_digest

    files = sorted((SHARED / "photos" / "photo").glob("*.jpg"))[:photos]
    embedder = Embedder(index.descriptor, index.media_options, index._stores_local, index.batch_size)
    base = [embedder.embed(Fetched(Task(i, str(f), f"b{i}", {}), file_digest(f), str(f))) for i, f in enumerate(files)]
    out = []
    for i in range(n):
        e = base[i % len(base)]
        task = Task(i, e.task.source, f"asset-{i:07d}", {"n": i})
        out.append(dataclasses.replace(e, task=task, digest=f"{i:064x}"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--assets", type=int, default=4096)
    ap.add_argument("--photos", type=int, default=64)
    ap.add_argument("--groups", default="1,16,128,2048")
    ap.add_argument("--engines", default="milvus,qdrant-edge")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from vecsim import CustomIndex
    from vecsim.bulk.writer import Committer
    from vecsim.testing.milvus_server import milvus_server

    results = []
    with tempfile.TemporaryDirectory() as tmp, milvus_server(Path(tmp) / "milvus") as milvus_uri:
        uris = {"milvus": milvus_uri, "qdrant-edge": f"qdrant-edge:{tmp}/edge"}
        items = None
        for engine in args.engines.split(","):
            for g in (int(x) for x in args.groups.split(",")):
                with CustomIndex(uris[engine], collection=f"w{g}", progress=False) as index:
                    if items is None:
                        items = embedded_assets(args.assets, args.photos, index)
                    committer = Committer(index)
                    t = time.perf_counter()
                    for start in range(0, len(items), g):
                        outcomes = committer.write(items[start:start + g])
                        assert all(o.status == "added" for o in outcomes), outcomes[:3]
                    write_s = time.perf_counter() - t
                    t = time.perf_counter()
                    index._store.build_index()
                    build_s = time.perf_counter() - t
                    assert index._store.count() == (len(items), len(items))
                r = {"engine": engine, "group_assets": g, "rows": len(items), "write_s": round(write_s, 2),
                     "rows_per_s": round(len(items) / write_s, 1), "build_index_s": round(build_s, 2)}
                results.append(r)
                print(json.dumps(r), file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
