"""The SDK over a vecsim service: ``RemoteIndex`` / ``AsyncRemoteIndex`` have the methods,
arguments, results and errors of ``CustomIndex`` / ``AsyncCustomIndex`` (docs/remote.md).

    protocol  the SDK's calls as HTTP requests, the answers as results and typed errors (no I/O)
    client    RemoteIndex, RemoteTask (httpx.Client)
    aio       AsyncRemoteIndex, AsyncRemoteTask (httpx.AsyncClient)
"""

from .aio import AsyncRemoteIndex, AsyncRemoteTask
from .client import RemoteIndex, RemoteTask
from .protocol import RemoteOptions, is_service_uri

__all__ = ["AsyncRemoteIndex", "AsyncRemoteTask", "RemoteIndex", "RemoteOptions", "RemoteTask", "is_service_uri"]
