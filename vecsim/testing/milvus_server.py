"""Run a real Milvus standalone server (PyPI ``milvus==2.3.5``) for tests.

The server listens on all interfaces and that must never reach the host's
network, so it is started in its own network namespace in which only ``lo``
is up (``unshare --net``).  It also gets a private mount namespace so that its
hard-coded lock file ``/run/milvus/standalone.pid`` lives in the per-run base
directory and concurrent servers / stale locks from dead runs do not clash.

The test process stays outside that namespace and reaches the server through
two byte relays joined by a UNIX socket (the file system is shared between the
namespaces, the network is not)::

    pymilvus -> 127.0.0.1:<free port> (relay thread, test process)
             -> <base_dir>/milvus.sock  (relay, ``serve`` child in the namespace)
             -> 127.0.0.1:19530          (milvus, in the namespace)

Usage::

    with milvus_server(tmp_dir) as uri:      # "http://127.0.0.1:PORT"
        MilvusClient(uri=uri).get_server_version()

    with MilvusServer(tmp_dir) as server:    # the same, with faults to inject
        server.pause(); server.resume()      # SIGSTOP / SIGCONT the milvus binary
        server.kill(); server.restart()      # SIGKILL; start again on the same data
        # server.uri stays the same throughout

Raises ``MilvusServerUnavailable`` (a reason to skip) when it cannot run here.
Linux only; needs root (CAP_SYS_ADMIN for ``unshare``), ``unshare``, ``ip`` and
``mount`` (util-linux / iproute2), and ``pip install milvus==2.3.5``.

The extracted server binaries (~250 MB) are cached in ``$MILVUS_TEST_BIN_CACHE``
(default ``~/.cache/milvus-test-server/<version>``) and shared between runs.

This file is also the script run inside the namespace:
``python vecsim/testing/milvus_server.py serve BASE_DIR BIN_CACHE``.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

MILVUS_PORT = 19530  # proxy (gRPC) port inside the namespace
SOCKET_NAME = "milvus.sock"  # UNIX socket in base_dir, created once healthy
PID_FILE = "milvus.pid"  # PID of the milvus binary, written by ``serve``
LOG_FILE = "serve.log"  # stdout/stderr of the ``serve`` child
# SIGTERM grace before SIGKILL.  Idle, milvus exits in ~1 s; after real use its
# shutdown stalls (components retry the already stopped root coordinator), and
# the data is throwaway, so do not wait long.
STOP_GRACE = 3.0


class MilvusServerUnavailable(Exception):
    """The server cannot be started here; the message says why (skip reason)."""


# --------------------------------------------------------------------------
# Byte relay, used on both sides of the namespace boundary.
# --------------------------------------------------------------------------
class _Relay:
    """Accept on ``listener`` and pipe each connection to ``connect()``.

    One thread per direction of each connection; half-closes are passed on
    (``shutdown(SHUT_WR)``), so long-lived full-duplex HTTP/2 streams work.
    """

    def __init__(self, listener: socket.socket, connect: Callable[[], socket.socket]):
        self._listener = listener
        self._connect = connect
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        listener.settimeout(0.2)  # lets the accept loop notice close()
        self._thread = threading.Thread(
            target=self._accept_loop, name="relay-accept", daemon=True
        )

    def start(self) -> _Relay:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            socks, self._open = list(self._open), set()
        for sock in socks:  # wakes the pump threads blocked in recv()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)  # accepted sockets inherit the timeout
            try:
                upstream = self._connect()
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    # gRPC sends many small frames; Nagle would add 40 ms stalls.
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._stopped.is_set():
                    client.close()
                    upstream.close()
                    return
                self._open.update((client, upstream))
            threading.Thread(
                target=self._serve_pair,
                args=(client, upstream),
                name="relay-conn",
                daemon=True,
            ).start()

    def _serve_pair(self, client: socket.socket, upstream: socket.socket) -> None:
        back = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
        back.start()
        self._pump(client, upstream)
        back.join()
        with self._lock:
            self._open.discard(client)
            self._open.discard(upstream)
        client.close()
        upstream.close()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)  # pass EOF on to the other side


# --------------------------------------------------------------------------
# Inside the namespace: ``python milvus_server.py serve BASE_DIR BIN_CACHE``
# --------------------------------------------------------------------------
def _serve(base_dir: pathlib.Path, bin_cache: pathlib.Path) -> None:
    import milvus  # the PyPI "milvus" server package

    # Only loopback exists in the fresh network namespace; bring it up.
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    # Private lock-file dir (we are in our own mount namespace, propagation private).
    run_dir = base_dir / "run"
    run_dir.mkdir(exist_ok=True)
    os.makedirs("/run/milvus", exist_ok=True)
    subprocess.run(["mount", "--bind", str(run_dir), "/run/milvus"], check=True)

    # The package decompresses its binaries into <data_dir>/bin and skips files
    # whose .md5 stamp matches, so point <data_dir>/bin at a shared cache.
    bin_cache.mkdir(parents=True, exist_ok=True)
    with open(bin_cache / ".lock", "w") as lock:  # one extractor at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        milvus._initialize_data_files(str(bin_cache))  # pylint: disable=protected-access
    if not (base_dir / "bin").is_symlink():  # a restart on the same data finds it there
        (base_dir / "bin").symlink_to(bin_cache / "bin", target_is_directory=True)

    server = milvus.MilvusServer()  # its own config object, not the shared default
    server.set_base_dir(str(base_dir))
    server.listen_port = MILVUS_PORT
    relay = None

    def on_term(signum, frame):  # the test process asks us to stop
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: let cleanup finish
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)

    def watch_parent():  # stdin is a pipe from the test process: EOF = it died
        while os.read(0, 4096):  # raw fd: a buffered reader would abort shutdown
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch_parent, daemon=True).start()
    try:
        server.start()  # blocks until http://127.0.0.1:9091/healthz says OK
        (base_dir / PID_FILE).write_text(str(server.server_proc.pid))
        # Listen on a temporary name, then rename: the socket appearing means ready.
        final, tmp = base_dir / SOCKET_NAME, base_dir / (SOCKET_NAME + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # left by a server killed while it started
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(tmp))
        listener.listen(128)
        relay = _Relay(
            listener, lambda: socket.create_connection(("127.0.0.1", MILVUS_PORT))
        ).start()
        os.rename(tmp, final)
        print(f"ready: milvus pid {server.server_proc.pid}", flush=True)
        while server.server_proc.poll() is None:
            time.sleep(0.5)
        print(
            f"milvus exited by itself, rc={server.server_proc.returncode}", flush=True
        )
    finally:
        if relay:
            relay.close()
        proc = server.server_proc
        if proc and proc.poll() is None:  # graceful first, then hard
            proc.terminate()
            try:
                proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        server.stop()  # closes the package's log files


# --------------------------------------------------------------------------
# Outside: the test process.
# --------------------------------------------------------------------------
def _default_bin_cache(version: str) -> pathlib.Path:
    if os.environ.get("MILVUS_TEST_BIN_CACHE"):
        return pathlib.Path(os.environ["MILVUS_TEST_BIN_CACHE"])
    root = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return pathlib.Path(root) / "milvus-test-server" / version


def _unshare_cmd() -> list[str]:
    """``unshare`` prefix for a new net+mount namespace, or raise Unavailable."""
    if not sys.platform.startswith("linux"):
        raise MilvusServerUnavailable("a namespaced Milvus server needs Linux")
    for tool in ("unshare", "ip", "mount"):
        if not shutil.which(tool):
            raise MilvusServerUnavailable(f"`{tool}` not found on PATH")
    if os.geteuid() != 0:
        raise MilvusServerUnavailable("creating the server's namespaces needs root")
    cmd = ["unshare", "--net", "--mount"]
    probe = subprocess.run(cmd + ["true"], check=False, capture_output=True, text=True)
    if probe.returncode != 0:
        raise MilvusServerUnavailable(
            f"cannot create a network namespace ({' '.join(cmd)}): {probe.stderr.strip()}"
        )
    return cmd


def _kill_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False when no process is left in it."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


class MilvusServer:
    """A Milvus server in ``base_dir`` (fresh, short path), reached at :attr:`uri` for the whole
    life of this object: the test process's relay keeps its port while the server behind it is
    paused, killed and restarted on the same data (:meth:`pause`, :meth:`resume`, :meth:`kill`,
    :meth:`restart`), as a fault test needs. Use it as a context manager (stopped on exit, also on
    errors / KeyboardInterrupt, and as a last resort at interpreter exit)."""

    def __init__(self, base_dir: pathlib.Path, timeout: float = 90):
        try:
            import milvus
        except ImportError:
            raise MilvusServerUnavailable(
                "the `milvus` server package is not installed (pip install milvus==2.3.5)"
            ) from None
        self._cmd = _unshare_cmd()
        self._version = milvus.__version__
        self.base_dir = pathlib.Path(base_dir).resolve()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self._sock_path = self.base_dir / SOCKET_NAME
        if len(str(self._sock_path)) > 100:  # sun_path is limited to 108 bytes
            raise MilvusServerUnavailable(
                f"base_dir path too long for a UNIX socket: {self.base_dir}"
            )
        if any(self.base_dir.iterdir()):
            raise ValueError(f"base_dir must be empty (a fresh dir per run): {self.base_dir}")
        self._proc: subprocess.Popen | None = None
        self._relay: _Relay | None = None
        self.uri = ""

    def __enter__(self) -> MilvusServer:
        atexit.register(self.stop)
        try:
            self._spawn()
            listener = socket.create_server(("127.0.0.1", 0), backlog=128)
            self._relay = _Relay(listener, self._connect_unix).start()
            self.uri = f"http://127.0.0.1:{listener.getsockname()[1]}"
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        """The PID of the milvus binary (not of the ``serve`` wrapper around it)."""
        return int((self.base_dir / PID_FILE).read_text())

    def pause(self) -> None:
        """SIGSTOP the milvus binary: its port still accepts connections, nothing answers."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL milvus and its wrapper at once (a crash: no clean shutdown); :attr:`uri` then
        refuses (the relay closes every connection it cannot forward)."""
        proc = self._proc
        if proc is None:
            return
        _kill_group(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while _kill_group(proc.pid, 0) and time.monotonic() < deadline:
            time.sleep(0.05)  # wait until the kernel has removed them all
        if proc.stdin:
            proc.stdin.close()
        self._proc = None
        with contextlib.suppress(FileNotFoundError):
            self._sock_path.unlink()

    def restart(self) -> None:
        """Start milvus again on the same data directory (after :meth:`kill`; a running server is
        killed first), and wait until it is healthy; :attr:`uri` stays the same."""
        self.kill()
        self._spawn()

    def stop(self) -> None:
        atexit.unregister(self.stop)
        if self._relay:
            self._relay.close()
            self._relay = None
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):  # no PID file yet: not paused
                os.kill(self.pid, signal.SIGCONT)  # a paused server cannot stop gracefully
            proc.send_signal(signal.SIGTERM)  # ``serve`` stops milvus gracefully
            try:
                proc.wait(timeout=STOP_GRACE + 5)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left (timeout, or orphans of a crashed ``serve``): KILL.
        self.kill()

    def _spawn(self) -> None:
        # New session => its own process group (unshare execs python, which
        # becomes the group leader; milvus joins the group), so one killpg stops all.
        # stdin stays a pipe from us: its EOF tells ``serve`` that we have died.
        with contextlib.suppress(FileNotFoundError):
            (self.base_dir / PID_FILE).unlink()
        with open(self.base_dir / LOG_FILE, "ab") as log:  # the child keeps its own copy
            self._proc = proc = subprocess.Popen(
                self._cmd
                + [
                    sys.executable,
                    os.path.abspath(__file__),
                    "serve",
                    str(self.base_dir),
                    str(_default_bin_cache(self._version)),
                ],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.timeout
        while not self._sock_path.exists():
            if proc.poll() is not None:
                raise MilvusServerUnavailable(
                    f"Milvus server exited early (rc={proc.returncode}); "
                    f"see {self.base_dir / 'logs'}; log tail:\n{_tail(self.base_dir / LOG_FILE)}"
                )
            if time.monotonic() > deadline:
                raise MilvusServerUnavailable(
                    f"Milvus server did not become healthy in {self.timeout:.0f} s; "
                    f"see {self.base_dir / 'logs'}; log tail:\n{_tail(self.base_dir / LOG_FILE)}"
                )
            time.sleep(0.1)

    def _connect_unix(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self._sock_path))
        except OSError:
            sock.close()
            raise
        return sock


@contextlib.contextmanager
def milvus_server(base_dir: pathlib.Path, timeout: float = 90) -> Iterator[str]:
    """Start Milvus in ``base_dir`` (fresh, short path) and yield its URI.

    Stops it on exit (also on errors / KeyboardInterrupt) and, as a last
    resort, at interpreter exit.
    """
    with MilvusServer(base_dir, timeout) as server:
        yield server.uri


def _tail(path: pathlib.Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        _serve(pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3]))
    else:
        sys.exit(f"usage: {sys.argv[0]} serve BASE_DIR BIN_CACHE")
