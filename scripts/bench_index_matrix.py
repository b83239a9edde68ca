"""Run ``vecsim bench index`` over every backend and index config of docs/index-configs.md.

    python scripts/bench_index_matrix.py ../shared/data/photos [--videos ../shared/data/videos] \
        [--only milvus-server] [--out bench-out/idx]

Uses the cached descriptor corpus (built on first use, ~15 min on 2 cores). The Milvus server is
the PyPI ``milvus==2.3.5`` standalone started by ``vecsim/testing/milvus_server.py`` (Linux, root);
embedded backends run in a temporary folder. Each config gets a fresh collection. Writes one
report per config and ``index-matrix.md`` with one table row per config.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vecsim.bench.corpus import index_bench_corpus  # noqa: E402
from vecsim.bench.index import TABLE_HEADER, run_index_bench  # noqa: E402
from vecsim.bench.report import write_report  # noqa: E402
from vecsim.descriptors import load_descriptor  # noqa: E402
from vecsim.index_config import parse_index_config  # noqa: E402
from vecsim.testing.milvus_server import milvus_server  # noqa: E402

MATRIX = {
    "milvus-server": [
        ("FLAT", {}), ("IVF_FLAT", {"nlist": 256, "nprobe": 16}),
        ("IVF_PQ", {"nlist": 256, "nprobe": 16, "m": 64, "rerank": False}),
        ("IVF_PQ", {"nlist": 256, "nprobe": 16, "m": 64, "rerank": True, "oversampling": 4}),
        ("HNSW", {}),
    ],
    "qdrant-local": [("FLAT", {})],
    "qdrant-edge": [("FLAT", {}), ("HNSW", {}), ("HNSW_SQ8", {}), ("HNSW_PQ", {"m": 80, "oversampling": 4})],
    "milvus-lite": [("FLAT", {}), ("HNSW", {})],
}


@contextlib.contextmanager
def backend_uri(name: str, folder: Path, n: int):
    if name == "milvus-lite":
        yield str(folder / f"b{n}.db")
    elif name == "qdrant-local":
        yield f"qdrant-local:{folder / f'q{n}'}"
    elif name == "qdrant-edge":
        yield f"qdrant-edge:{folder / f'e{n}'}"
    else:
        raise ValueError(name)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("photos", type=Path, help="folder with photo/ and astro/")
    ap.add_argument("--videos", type=Path)
    ap.add_argument("--only", action="append", help="backend(s) to run")
    ap.add_argument("--type", action="append", help="index type(s) to run")
    ap.add_argument("--out", type=Path, default=Path("bench-out/idx"))
    ap.add_argument("--cache", type=Path, default=Path(".vecsim-bench-cache"))
    args = ap.parse_args()
    corpus = index_bench_corpus(load_descriptor(), args.photos / "photo", args.photos / "astro", args.videos,
                                  args.cache, progress=print)
    rows = []
    with tempfile.TemporaryDirectory(prefix="vecsim-matrix-") as tmp:
        for name, configs in MATRIX.items():
            if args.only and name not in args.only:
                continue
            server = milvus_server(Path(tmp) / "milvus") if name == "milvus-server" else contextlib.nullcontext()
            with server as server_uri:
                for n, (kind, params) in enumerate(configs):
                    if args.type and kind not in args.type:
                        continue
                    config = parse_index_config(kind, params)
                    ctx = contextlib.nullcontext(server_uri) if server_uri else backend_uri(name, Path(tmp), n)
                    with ctx as uri:
                        print(f"== {name} {config.model_dump(mode='json')}", flush=True)
                        report = run_index_bench(corpus, args.photos / "photo", uri=uri, index=config,
                                                 collection=f"matrix_{n}", e2e_queries=50, search_samples=300,
                                                 progress=print)
                    stem = f"index-bench-{name}-{n}-{kind}"
                    write_report(report, args.out, stem)
                    rows.append(report.row())
                    print(TABLE_HEADER + "\n" + rows[-1], flush=True)
    table = args.out / "index-matrix.md"
    with table.open("a") as f:
        f.write(TABLE_HEADER + "\n" + "\n".join(rows) + "\n\n")
    print(f"appended to {table}")


if __name__ == "__main__":
    main()
