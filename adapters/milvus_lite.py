"""What is special about Milvus Lite (a local ``*.db`` path), in one place.

**One server and one client per file, in this process.** Milvus Lite (3.x) is a gRPC server in
threads of this process over the ``.db`` folder, holding the folder's lock (one process at a time).
pymilvus starts it through ``milvus_lite.server_manager`` and every ``MilvusClient`` then talks to
it. Here every :class:`~adapters.milvus.MilvusStore` on the same file shares one server and one
``MilvusClient`` per database, reference-counted: two stores (two ``CustomIndex`` objects) on one
file see each other's writes, opening them from two threads at once cannot race two servers onto
one folder, and the last store to close stops the server and releases the lock, so another process
can open the file afterwards.

**Not on a TCP port.** pymilvus's server manager binds Milvus Lite to ``127.0.0.1:<free port>``
without authentication: while the index is open, any local process, another user's included, could
read and delete its rows. Here the server listens on a unix domain socket instead, in a fresh
directory made by :func:`tempfile.mkdtemp` (mode 0700: only this user can reach the socket; the
socket itself is created 0755, which also refuses others a connect). Where the installed milvus-lite
lacks the server builder used for that, the store falls back to pymilvus's TCP server and logs a
warning saying so (docs/concepts.md, "Security").

**Writes to one file, one at a time.** Milvus Lite serves each request on a thread of its gRPC
pool, but a collection's writes are not safe from each other: ``Collection._trigger_flush``
swaps the memtable out before taking its maintenance lock, and sequence numbers are handed out
without a lock, so two flushes at once (two writers committing) can commit their sequence numbers
out of order, which Lite refuses ("current_seq is monotonic; tried to set 3 < 4") after the rows
were written. The shared client therefore sends the requests that write (:data:`LITE_WRITES`)
one at a time per file, under a lock of the file's entry; reads still run side by side.

**Index files.** Milvus Lite writes its index sidecars in a background thread, in place, so a
process killed while one was being written leaves it truncated and the next load fails on it:
:func:`drop_lite_index_files` deletes them (they are derived data) so the load rebuilds them.
"""

from __future__ import annotations

import atexit
import glob
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any

from vecsim.errors import StoreError, StoreUnavailableError

log = logging.getLogger(__name__)

#: Index types Milvus Lite builds.
LITE_INDEX_TYPES = ("FLAT", "IVF_FLAT", "IVF_SQ8", "HNSW")
#: gRPC worker threads of a Lite server.
LITE_SERVER_WORKERS = 10
SOCKET_NAME = "milvus.sock"
#: The client methods that change a Lite file: sent one at a time per file (module docstring).
LITE_WRITES = frozenset({
    "create_collection", "drop_collection", "insert", "upsert", "delete", "flush", "create_index",
    "drop_index", "load_collection", "release_collection", "compact",
})


@dataclass
class _LiteServer:
    path: str
    address: str  # "unix:/tmp/vecsim-lite-XXXX/milvus.sock", or pymilvus's http://127.0.0.1:port
    server: Any = None  # grpc.Server we started, or None: pymilvus's server manager owns it
    db: Any = None
    socket_dir: str | None = None
    clients: dict[str, list] = field(default_factory=dict)  # db_name -> [_SerialWrites, users]
    writes: threading.Lock = field(default_factory=threading.Lock)  # held by each write request


class _SerialWrites:
    """A ``MilvusClient`` whose write requests (:data:`LITE_WRITES`) hold ``lock`` while they run."""

    def __init__(self, client: Any, lock: threading.Lock):
        self._inner, self._lock = client, lock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in LITE_WRITES:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return call


_lock = threading.Lock()
_servers: dict[str, _LiteServer] = {}


def _start(path: str) -> _LiteServer:
    try:
        from milvus_lite.adapter.grpc.server import _build_server
        from milvus_lite.db import MilvusLite
    except ImportError:  # another milvus-lite: the TCP server of pymilvus's server manager
        from milvus_lite.server_manager import server_manager_instance

        log.warning("this milvus-lite cannot serve on a unix socket: %s is served on a 127.0.0.1 TCP port "
                    "without authentication while it is open (docs/concepts.md, Security)", path)
        address = server_manager_instance.start_and_get_uri(path)
        if address is None:
            raise StoreError(f"cannot open Milvus Lite at {path} (is another process using it?)")
        return _LiteServer(path, address)
    db = MilvusLite(path)  # takes the folder's lock: refused while another process holds it
    socket_dir = tempfile.mkdtemp(prefix="vecsim-lite-")  # mode 0700
    try:
        server = _build_server(db, LITE_SERVER_WORKERS)
        socket_path = os.path.join(socket_dir, SOCKET_NAME)
        if not server.add_insecure_port(f"unix:{socket_path}"):
            raise StoreError(f"Milvus Lite could not listen on {socket_path}")
        server.start()
    except BaseException:
        db.close()
        shutil.rmtree(socket_dir, ignore_errors=True)
        raise
    return _LiteServer(path, f"unix:{socket_path}", server=server, db=db, socket_dir=socket_dir)


def _stop(entry: _LiteServer) -> None:
    if entry.server is None:
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(entry.path)
        return
    try:
        entry.server.stop(grace=2).wait()
    finally:
        try:
            entry.db.close()  # releases the folder's lock
        finally:
            shutil.rmtree(entry.socket_dir, ignore_errors=True)


def open_lite_client(uri: str, db_name: str | None):
    """The ``MilvusClient`` shared by the stores on Milvus Lite file ``uri`` (and database
    ``db_name``); starts the file's server for the first. Pair with :func:`release_lite_client`."""
    from pymilvus import MilvusClient

    path = os.path.abspath(uri)
    with _lock:
        entry = _servers.get(path)
        if entry is None:
            try:
                entry = _servers[path] = _start(path)
            except StoreError:
                raise
            except Exception as exc:
                raise StoreUnavailableError(
                    f"cannot open Milvus Lite at {uri}: {type(exc).__name__}: {exc} (Milvus Lite lets one "
                    "process at a time open a .db; is another process using it?)") from exc
        key = db_name or ""
        shared = entry.clients.get(key)
        if shared is None:
            try:
                client = MilvusClient(uri=entry.address, **({"db_name": db_name} if db_name else {}))
            except Exception as exc:
                if not entry.clients:
                    del _servers[path]
                    _stop(entry)
                raise StoreUnavailableError(f"cannot open Milvus Lite at {uri}: {exc}") from exc
            shared = entry.clients[key] = [_SerialWrites(client, entry.writes), 0]
        shared[1] += 1
        return shared[0]


def release_lite_client(uri: str, db_name: str | None) -> None:
    """One store on ``uri`` is done: the last one closes the client, and the server with its lock."""
    path = os.path.abspath(uri)
    with _lock:
        entry = _servers.get(path)
        shared = entry.clients.get(db_name or "") if entry else None
        if shared is None:
            return
        shared[1] -= 1
        if shared[1] > 0:
            return
        del entry.clients[db_name or ""]
        try:
            shared[0].close()
        finally:
            if not entry.clients:
                del _servers[path]
                _stop(entry)


def lite_address(uri: str) -> str | None:
    """Where the Lite server of ``uri`` listens while a store has it open (for tests and docs)."""
    entry = _servers.get(os.path.abspath(uri))
    return entry.address if entry else None


@atexit.register
def _stop_all() -> None:
    with _lock:
        entries = list(_servers.values())
        _servers.clear()
    for entry in entries:
        for client, _ in entry.clients.values():
            try:
                client.close()
            except Exception:
                pass
        try:
            _stop(entry)
        except Exception:
            pass


def finish_lite_index(uri: str, db_name: str | None, names: list[str]) -> bool:
    """Wait until Milvus Lite has indexed every flushed segment of the collections ``names``.

    A flush only writes a segment; a background thread of the collection then compacts segments
    and builds their vector indexes (engine/collection.py ``_trigger_flush``,
    ``_bg_compact_and_index``). Until it has, a search scans such a segment by brute force. Here:
    drain that thread, then build whatever it left unbuilt (a segment a compaction produced
    meanwhile), in this thread. Reaches into Lite's engine (private methods of 3.2): returns False,
    doing nothing, where this milvus-lite does not have them or the server is not ours."""
    entry = _servers.get(os.path.abspath(uri))
    if entry is None or entry.db is None:
        return False
    for name in names:
        col = entry.db.get_collection(name, database_name=db_name or "default")
        wait = getattr(col, "_wait_for_bg", None)
        ensure = getattr(col, "_ensure_loaded_segments_indexed", None)
        if wait is None or ensure is None:
            return False
        wait()
        ensure()
    return True


def drop_lite_index_files(uri: str, db_name: str | None, collection: str) -> int:
    """Delete the index files Milvus Lite keeps beside a collection's segments; return how many.

    They are derived data: Milvus Lite rebuilds a missing one from the segment's stored vectors
    when the collection loads. It writes them in a background thread, in place, so a process killed
    while one was being written leaves it truncated, and the next load fails on it.
    """
    root = os.path.join(uri, "databases", db_name) if db_name and db_name != "default" else uri
    pattern = os.path.join(root, "collections", collection, "partitions", "*", "indexes", "*.idx")
    paths = glob.glob(pattern)
    for path in paths:
        os.remove(path)
    return len(paths)
