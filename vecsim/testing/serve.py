"""Run ``vecsim serve`` as a real process for tests and benchmarks: on 127.0.0.1, on a free port,
in its own data folder, stopped by its PID (SIGTERM, then SIGKILL) however the caller ends."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class ServiceProcess:
    url: str
    data_dir: Path
    log: Path
    process: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.process.pid

    def create_key(self, project: str) -> str:
        """A new API key of ``project`` (through the CLI, as an operator would)."""
        out = subprocess.run([sys.executable, "-m", "vecsim.cli", "keys", "create", "--project", project,
                              "--data-dir", str(self.data_dir)], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)["key"]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
            self.process.wait(30)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""


def start_service(index: str, data_dir: Path, *, env: dict[str, Any] | None = None, port: int | None = None,
                  ready_timeout: float = 120.0, wait_ready: bool = True) -> ServiceProcess:
    """Start ``vecsim serve --index INDEX`` with ``VECSIM_*`` settings from ``env`` and wait until
    ``/readyz`` answers 200 (or raise with the end of its log)."""
    import httpx

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = data_dir / f"service-{port}.log"  # replicas may share a data folder
    environ = {**os.environ, **{f"VECSIM_{k.upper()}": (json.dumps(v) if isinstance(v, (list, dict)) else str(v))
                                for k, v in (env or {}).items()}}
    environ.pop("VECSIM_CONFIG", None)
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "vecsim.cli", "serve", "--index", index, "--host", "127.0.0.1", "--port", str(port),
             "--data-dir", str(data_dir)], stdout=out, stderr=subprocess.STDOUT, env=environ, start_new_session=True)
    service = ServiceProcess(f"http://127.0.0.1:{port}", data_dir, log, process)
    if not wait_ready:
        return service
    deadline = time.monotonic() + ready_timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"vecsim serve exited with {process.returncode}:\n{service.log_text()[-3000:]}")
        try:
            if httpx.get(f"{service.url}/readyz", timeout=2).status_code == 200:
                return service
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop_service(service)
            raise RuntimeError(f"vecsim serve not ready within {ready_timeout:g} s:\n{service.log_text()[-3000:]}")
        time.sleep(0.2)


def stop_service(service: ServiceProcess, timeout: float = 30.0) -> int | None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL. Returns the exit code."""
    if service.process.poll() is None:
        try:
            os.kill(service.pid, signal.SIGTERM)
            service.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(service.pid, signal.SIGKILL)
            service.process.wait(10)
        except ProcessLookupError:
            pass
    return service.process.returncode


@contextmanager
def running_service(index: str, data_dir: Path, **kwargs: Any) -> Iterator[ServiceProcess]:
    service = start_service(index, data_dir, **kwargs)
    try:
        yield service
    finally:
        stop_service(service)
