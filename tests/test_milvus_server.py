"""A real Milvus 2.3 standalone server, sandboxed in its own network namespace.

Skipped (with the reason) where it cannot run: no ``milvus`` package, no
``unshare``, not allowed to create namespaces, ...  See ``vecsim/testing/milvus_server.py``.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import time

import numpy as np
import pytest

from vecsim.testing.milvus_server import MILVUS_PORT, PID_FILE

pymilvus = pytest.importorskip("pymilvus")

DIM = 64


@pytest.fixture
def client(milvus_server_uri):
    client = pymilvus.MilvusClient(uri=milvus_server_uri[0])
    yield client
    client.close()


def test_server_version(client):
    assert client.get_server_version().startswith("v2.3")


@pytest.mark.parametrize(
    "index_type, params, search_params",
    [
        ("HNSW", {"M": 16, "efConstruction": 64}, {"ef": 64}),
        ("IVF_PQ", {"nlist": 32, "m": 8, "nbits": 8}, {"nprobe": 32}),
    ],
)
def test_round_trip(client, index_type, params, search_params):
    name = f"roundtrip_{index_type.lower()}"
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", pymilvus.DataType.INT64, is_primary=True)
    schema.add_field("vector", pymilvus.DataType.FLOAT_VECTOR, dim=DIM)
    index_params = client.prepare_index_params()
    index_params.add_index(
        "vector", index_type=index_type, metric_type="L2", params=params
    )
    client.create_collection(name, schema=schema, index_params=index_params)
    try:
        # Random 64-d rows lie far apart, so even after product quantization
        # (IVF_PQ is lossy) each stored row is its own nearest hit (top-1 recall
        # was 1.0 over all 2000 rows for several seeds).
        vectors = np.random.default_rng(0).normal(size=(2000, DIM)).astype(np.float32)
        rows = [{"id": i, "vector": v.tolist()} for i, v in enumerate(vectors)]
        assert client.insert(name, rows)["insert_count"] == 2000
        client.flush(name)  # seals the segment, which triggers the index build
        deadline = time.monotonic() + 60  # search must use the index, not brute force
        while client.describe_index(name, "vector")["indexed_rows"] < 2000:
            assert time.monotonic() < deadline, "index was not built in 60 s"
            time.sleep(0.2)
        client.load_collection(name)

        probes = [7, 1234, 1999]
        hits = client.search(
            name,
            data=[vectors[i].tolist() for i in probes],
            limit=3,
            search_params={"metric_type": "L2", "params": search_params},
        )
        assert [h[0]["id"] for h in hits] == probes

        assert client.query(
            name,
            filter="id in [7, 8]",
            output_fields=["id"],
            consistency_level="Strong",
        )
        client.delete(name, ids=[7])
        rows = client.query(
            name,
            filter="id in [7, 8]",
            output_fields=["id"],
            consistency_level="Strong",
        )
        assert [r["id"] for r in rows] == [8]
    finally:
        client.drop_collection(name)
    assert name not in client.list_collections()


def _listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state in the network namespace of ``pid``."""
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in (
            pathlib.Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        ):
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _host_addresses() -> list[str]:
    """The host's non-loopback IPv4 addresses (e.g. eth0's)."""
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.split()[3].split("/")[0] for line in out.splitlines()]


def test_server_is_confined_to_loopback(milvus_server_uri, milvus_server_dir):
    pid = int((milvus_server_dir / PID_FILE).read_text())
    # Its network namespace is not ours and has no interface but loopback, so
    # even its 0.0.0.0 listeners are reachable only from inside that namespace.
    assert (
        pathlib.Path(f"/proc/{pid}/ns/net").stat().st_ino
        != pathlib.Path("/proc/self/ns/net").stat().st_ino
    )
    interfaces = [
        line.split(":")[0].strip()
        for line in pathlib.Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    ]
    assert interfaces == ["lo"]
    ports = _listening_ports(pid)
    assert MILVUS_PORT in ports and 9091 in ports  # proxy (gRPC) and health/metrics

    addresses = _host_addresses()
    if not addresses:
        pytest.skip("the host has no non-loopback IPv4 address to probe")
    # Skip ports some host service listens on itself: it, not our server, would answer.
    probe_ports = sorted(ports - _listening_ports(os.getpid()))
    assert MILVUS_PORT in probe_ports, "a host service occupies the Milvus port"
    for address in addresses:
        for port in probe_ports:
            with pytest.raises(OSError):  # refused: nothing of ours listens there
                socket.create_connection((address, port), timeout=2).close()


def test_store_on_built_indexes_groups_by_asset(milvus_server_uri):
    """vecsim's store on real (built) HNSW and IVF_PQ indexes of Milvus 2.3: client-side grouping
    asks for more rows than HNSW's ef (the server refuses ef < k) and re-ranks IVF_PQ candidates."""
    from vecsim.index_config import parse_index_config
    from vecsim.store import AssetRecord, CollectionSpec, FrameRow
    from vecsim.adapters.milvus import MilvusStore

    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(3000, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for kind, params in [("HNSW", {"ef": 16}), ("IVF_PQ", {"nlist": 16, "m": 16, "rerank": True})]:
        spec = CollectionSpec("test", "1", DIM, parse_index_config(kind, params))
        store = MilvusStore(milvus_server_uri[0], f"built_{kind.lower()}", spec)
        try:
            store.insert_frames([FrameRow(f"a{i // 30}", "g", i % 30, float(i % 30), float(i % 30 + 1), v, "0" * 64)
                                 for i, v in enumerate(vectors)])
            for a in range(100):
                store.commit_asset(AssetRecord(f"a{a}", "g", "video", "x", 30.0, 30))
            store.build_index()
            probes = [5, 1234, 2999]
            hits = store.search(vectors[probes], limit=10, per_asset=5)
            for p, hs in zip(probes, hits):
                assert (hs[0].task_id, hs[0].frame) == (f"a{p // 30}", p % 30)
                assert hs[0].raw_score == pytest.approx(1.0, abs=1e-3)  # the exact score after re-ranking
                per_asset = [sum(h.task_id == t for h in hs) for t in {h.task_id for h in hs}]
                assert len(per_asset) == 10 and max(per_asset) <= 5  # random frames: "up to 5" each
        finally:
            store._client.drop_collection(store.collection)
            store._client.drop_collection(store.assets_collection)
            store.close()
