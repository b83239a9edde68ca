"""The SDK's calls as requests to a vecsim service, and its answers as the SDK's results and
errors. No I/O here: :mod:`vecsim.remote.client` (httpx.Client) and :mod:`vecsim.remote.aio`
(httpx.AsyncClient) send what this module builds, so the two clients cannot differ in what they
ask or in how they read an answer.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx
from PIL import Image

from .. import errors as E
from ..index import failure_of, per_item
from ..media.inputs import MediaInput, describe, expand_sources, is_text_mode, is_url, open_target
from ..schema import (AddFailure, AddManyResult, AddResult, AssetInfo, AssetMatch, AssetPage, IndexInfo, QueryResult,
                      RemoveResult)
from ..validate import check_list_args, repeated, check_metadata, check_query_args, check_task_id

API = "/api/v2"
#: Schemes that always name a vecsim service (``http(s)://`` does too when an API key is given).
SERVICE_SCHEMES = ("vecsim+http://", "vecsim+https://")


@dataclass(frozen=True)
class RemoteOptions:
    """How a RemoteIndex talks to the service.

    ``timeout``: seconds to wait for an answer (connect, each read and write); a sync call that
    takes longer than the service's own ``request_timeout_s`` is a 504 whatever this is.
    ``max_retries``: how many times a 429 or 503 answer, or a refused connection, is retried
    (waiting the service's ``Retry-After``, else an exponential backoff from ``backoff`` seconds),
    as long as the total wait stays under ``max_retry_wait`` seconds. Only answers that say the
    call was not done are retried; a lost connection after an upload was sent is not.
    ``poll_interval``: the longest wait between two reads of an async task (``wait()``).
    ``verify``: TLS verification (True, False or a CA bundle path), as httpx takes it.
    ``headers``: extra headers sent with every request (e.g. a proxy's)."""

    timeout: float = 120.0
    max_retries: int = 4
    backoff: float = 0.5
    max_retry_wait: float = 60.0
    poll_interval: float = 1.0
    verify: bool | str = True
    headers: dict[str, str] = field(default_factory=dict)
    #: how many uploads ``add_many`` keeps in flight at once
    concurrency: int = 4


def is_service_uri(uri: str | None, api_key: str | None = None) -> bool:
    """Does ``uri`` name a vecsim service? ``vecsim+http(s)://`` always does; ``http(s)://`` does
    when an API key is given (without one it is a Milvus server, as it always was)."""
    if not uri:
        return False
    low = uri.lower()
    return low.startswith(SERVICE_SCHEMES) or (api_key is not None and low.startswith(("http://", "https://")))


def base_url(uri: str) -> str:
    """The service's root URL: the ``vecsim+`` prefix and any trailing slash dropped."""
    low = uri.lower()
    if low.startswith("vecsim+"):
        uri = uri[len("vecsim+"):]
    if not uri.lower().startswith(("http://", "https://")):
        raise E.IndexConfigError(f"a vecsim service URL starts with http://, https:// or vecsim+https://, got {uri!r}")
    return uri.rstrip("/")


def api_key_from_env(api_key: str | None) -> str | None:
    return api_key if api_key is not None else (os.environ.get("VECSIM_API_KEY") or None)


# --- media ----------------------------------------------------------------------------------------


class Upload:
    """An input sent as the multipart ``media`` file, opened afresh for each attempt: a path is
    streamed from disk, bytes and PIL images from memory (an image is sent as lossless PNG), a
    file object from where it stood (once, when it cannot seek back)."""

    def __init__(self, media: MediaInput, source: str):
        self.source = source
        self.name = os.path.basename(source) if isinstance(media, (str, os.PathLike)) else _upload_name(media)
        self._media = media
        self._start: int | None = None
        self._used = False
        if isinstance(media, (str, os.PathLike)):
            open_target(media, source)  # the SDK's checks of a path: missing, a folder, empty
        elif isinstance(media, Image.Image):
            buf = io.BytesIO()
            image = media if media.mode in ("RGB", "RGBA", "L", "LA", "I;16", "P") else media.convert("RGB")
            image.save(buf, format="PNG")
            self._media = buf.getvalue()
            self.name = (os.path.basename(getattr(media, "filename", "") or "") or "image") + ".png"
        elif isinstance(media, (bytes, bytearray, memoryview)):
            if not len(media):
                raise E.EmptyMediaError(source, "zero bytes")
        elif hasattr(media, "read"):
            if is_text_mode(media):
                raise E.UnsupportedMediaError(source, "file object is not opened in binary mode (open it with 'rb')")
            if getattr(media, "seekable", lambda: False)():
                self._start = media.tell()
        else:
            raise E.UnsupportedMediaError(source, f"cannot read media from a {type(media).__name__}")

    @property
    def resendable(self) -> bool:
        return not hasattr(self._media, "read") or self._start is not None

    def open(self) -> tuple[str, Any]:
        """(file name, a binary file object at the start of the media) for one attempt."""
        media = self._media
        if isinstance(media, (str, os.PathLike)):
            return self.name, open(media, "rb")
        if isinstance(media, (bytes, bytearray, memoryview)):
            return self.name, io.BytesIO(bytes(media))
        if self._used and self._start is None:
            raise E.InvalidRequestError(f"{self.source}: a file object that cannot seek is sent only once")
        if self._start is not None:
            media.seek(self._start)
        self._used = True
        return self.name, _Unclosed(media)


class _Unclosed:
    """A caller's file object lent to httpx: httpx does not close it, and neither does the client."""

    def __init__(self, f: Any):
        self._f = f

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)

    def __getattr__(self, name: str) -> Any:
        if name == "close":
            return lambda: None
        return getattr(self._f, name)


def _upload_name(media: Any) -> str:
    name = getattr(media, "name", None)
    return os.path.basename(name) if isinstance(name, str) and name else "upload"


@dataclass
class MediaArg:
    """A call's media: a URL (fetched by the service under its URL policy) or an :class:`Upload`."""

    source: str
    url: str | None = None
    upload: Upload | None = None

    @classmethod
    def of(cls, media: MediaInput) -> MediaArg:
        source = describe(media)
        if is_url(media):
            return cls(source=source, url=str(media))
        return cls(source=source, upload=Upload(media, source))


# --- calls ---------------------------------------------------------------------------------------


@dataclass
class Call:
    """One request: method, path, query params, form fields, the media (if any), and how to read
    a successful answer. ``retry_send_errors``: a connection lost after the request was sent may
    be retried (reads and removes; never an add, which may have been done)."""

    method: str
    path: str
    parse: Callable[[dict[str, Any]], Any]
    params: dict[str, Any] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)
    media: MediaArg | None = None
    retry_send_errors: bool = False
    source: str = ""

    def request_kwargs(self) -> tuple[dict[str, Any], Any]:
        """httpx request arguments for one attempt, and the file object to close after it."""
        kwargs: dict[str, Any] = {"params": {k: v for k, v in self.params.items() if v is not None}}
        handle = None
        data = dict(self.form)
        if self.media is not None and self.media.url is not None:
            data["url"] = self.media.url
        if self.media is not None and self.media.upload is not None:
            name, handle = self.media.upload.open()
            kwargs["files"] = {"media": (name, handle, "application/octet-stream")}
            kwargs["data"] = data
        elif data:
            kwargs["data"] = data
        return kwargs, handle

    @property
    def resendable(self) -> bool:
        return self.media is None or self.media.upload is None or self.media.upload.resendable

    @property
    def names(self) -> tuple[str, ...]:
        """How the service's messages may start naming the input: the caller's name for it and
        (an upload) the file name the service saw."""
        if self.media is not None and self.media.upload is not None:
            return (self.source, self.media.upload.name)
        return (self.source,)


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


def _add_form(metadata: dict[str, Any] | None, task_id: str | None, replace: bool,
              callback_url: str | None) -> dict[str, str]:
    form: dict[str, str] = {}
    if metadata is not None:
        form["metadata"] = json.dumps(check_metadata(metadata), ensure_ascii=False)
    if task_id is not None:
        form["task_id"] = check_task_id(task_id)
    if replace:
        form["replace"] = "true"
    if callback_url is not None:
        form["callback_url"] = callback_url
    return form


def add_call(media: MediaInput, metadata: dict[str, Any] | None, task_id: str | None, replace: bool,
             wait: bool, callback_url: str | None) -> Call:
    m = MediaArg.of(media)
    form = _add_form(metadata, task_id, replace, callback_url)
    if wait:
        if callback_url is not None:
            raise E.InvalidRequestError("callback_url is for wait=False (an async task)")
        return Call("POST", f"{API}/custom_index/add/sync", lambda b: add_result(b["output"], m),
                    form=form, media=m, source=m.source)
    return Call("POST", f"{API}/custom_index/add/async", lambda b: b, form=form, media=m, source=m.source)


def query_call(media: MediaInput, top_k: int | None, threshold: float | None, rotations: bool | None,
               wait: bool, callback_url: str | None) -> Call:
    check_query_args(top_k if top_k is not None else 1, threshold)
    m = MediaArg.of(media)
    form = {k: v for k, v in {"top_k": None if top_k is None else str(int(top_k)),
                              "threshold": None if threshold is None else repr(float(threshold)),
                              "rotations": _flag(rotations), "callback_url": callback_url}.items() if v is not None}
    if wait:
        if callback_url is not None:
            raise E.InvalidRequestError("callback_url is for wait=False (an async task)")
        return Call("POST", f"{API}/custom_index/query/sync", lambda b: query_result(b, m), form=form, media=m,
                    retry_send_errors=True, source=m.source)
    return Call("POST", f"{API}/custom_index/query/async", lambda b: b, form=form, media=m, source=m.source)


def remove_call(task_id: str, wait: bool, callback_url: str | None) -> Call:
    task_id = check_task_id(task_id)
    if wait:
        if callback_url is not None:
            raise E.InvalidRequestError("callback_url is for wait=False (an async task)")
        return Call("DELETE", f"{API}/custom_index/remove/sync", lambda b: RemoveResult(**b["output"]),
                    params={"task_id": task_id}, source=task_id)
    return Call("DELETE", f"{API}/custom_index/remove/async", lambda b: b,
                params={"task_id": task_id, "callback_url": callback_url}, source=task_id)


def get_call(task_id: str) -> Call:
    task_id = check_task_id(task_id)
    return Call("GET", f"{API}/custom_index/asset/{quote(task_id, safe='')}", lambda b: AssetInfo(**b["output"]),
                retry_send_errors=True, source=task_id)


def list_call(limit: int, after: str | None) -> Call:
    check_list_args(limit, after)
    return Call("GET", f"{API}/custom_index/assets", lambda b: AssetPage(**b["output"]),
                params={"limit": limit, "after": after}, retry_send_errors=True)


def info_call(uri: str) -> Call:
    return Call("GET", f"{API}/custom_index/info",
                lambda b: IndexInfo(**{**b["output"], "uri": uri}), retry_send_errors=True)


def task_call(task_id: str) -> Call:
    return Call("GET", f"{API}/task/{quote(task_id, safe='')}", lambda b: b, retry_send_errors=True, source=task_id)


# --- answers -------------------------------------------------------------------------------------


def add_result(output: dict[str, Any], media: MediaArg) -> AddResult:
    """The service's AddResult, its ``source`` the caller's own name for the input (a path, as
    an embedded index says it; the service knows only the uploaded file's name)."""
    result = AddResult(**output)
    return result.model_copy(update={"source": media.source}) if media.upload is not None else result


def query_result(body: dict[str, Any], media: MediaArg | None) -> QueryResult:
    q = body.get("query") or {}
    source = media.source if media is not None and media.upload is not None else q.get("source", "")
    return QueryResult(source=source, media_type=q.get("media_type", "image"), duration=q.get("duration", 0.0),
                       query_frames=q.get("query_frames", 1), output=[AssetMatch(**a) for a in body["output"]],
                       warnings=q.get("warnings", []))


def task_result(body: dict[str, Any], media: MediaArg | None) -> Any:
    """The result of a completed task envelope, as the sync call would have returned it."""
    kind = body.get("kind")
    if kind == "add":
        return add_result(body["output"], media) if media is not None else AddResult(**body["output"])
    if kind == "query":
        return query_result(body, media)
    if kind == "remove":
        return RemoveResult(**body["output"])
    raise E.RemoteError(f"task {body.get('task_id')!r} has an unknown kind {kind!r}")


def task_error(body: dict[str, Any], media: MediaArg | None, task_id: str) -> E.VecsimError:
    """The typed error of a failed task envelope."""
    err = body.get("error") or {}
    names = (task_id,) if media is None else ((media.source, media.upload.name) if media.upload else (media.source,))
    return error_for(0, err.get("code", ""), err.get("message", "the task failed"), names, "", None)


#: The service's error codes that are the SDK's own errors (a MediaError takes (source, reason)).
_MEDIA = {
    "url_not_allowed": E.UrlNotAllowedError, "empty_media": E.EmptyMediaError,
    "unsupported_media": E.UnsupportedMediaError, "corrupt_media": E.CorruptMediaError,
    "media_too_large": E.MediaTooLargeError, "request_too_large": E.MediaTooLargeError,
    "url_not_found": E.MediaNotFoundError, "url_fetch_failed": E.MediaFetchError, "bad_media": E.MediaError,
}
_PLAIN: dict[str, type[E.VecsimError]] = {
    "invalid_request": E.InvalidRequestError, "unsupported_media_type": E.InvalidRequestError,
    "task_exists": E.TaskExistsError, "task_not_found": E.TaskNotFoundError, "store_error": E.StoreError,
}
_REMOTE: dict[str, type[E.RemoteError]] = {
    "unauthorized": E.AuthenticationError, "task_in_progress": E.TaskInProgressError,
    "timeout": E.RemoteTimeoutError, "store_unavailable": E.ServiceUnavailableError,
    "not_ready": E.ServiceUnavailableError,
}


def error_for(status: int, code: str, message: str, names: tuple[str, ...], request_id: str,
              retry_after: float | None) -> E.VecsimError:
    """The typed error of an error answer (or of a failed task: status 0). ``names``: the
    caller's name of the input first, then others the service's message may start with. SDK
    errors get the ``status``, ``code`` and ``request_id`` attributes of a RemoteError too."""
    exc: E.VecsimError
    if code in _MEDIA:
        reason = message
        for name in names:
            if name and message.startswith(name + ": "):
                reason = message[len(name) + 2:]
                break
        exc = _MEDIA[code]((names[0] if names else "") or "media", reason)
    elif code in _PLAIN:
        exc = _PLAIN[code](message)
    elif code == "model_error":
        exc = E.DescriptorError("service", message)
    elif code in ("rate_limited", "queue_full"):
        exc = E.RateLimitedError(message, retry_after=retry_after, status=status, code=code, request_id=request_id)
    elif code in _REMOTE:
        exc = _REMOTE[code](message, status=status, code=code, request_id=request_id)
    elif status == 503:
        exc = E.ServiceUnavailableError(message, status=status, code=code, request_id=request_id)
    else:
        exc = E.RemoteError(message, status=status, code=code, request_id=request_id)
    exc.status, exc.code, exc.request_id = status, code, request_id  # type: ignore[attr-defined]
    return exc


def answer_error(status: int, headers: Any, content: bytes, names: tuple[str, ...]) -> E.VecsimError:
    """The typed error of an HTTP error answer (its body the service's ErrorResponse, or not:
    a proxy's page, a wrong URL)."""
    try:
        body = json.loads(content)
        code, message = body["error"]["code"], body["error"]["message"]
        request_id = body.get("request_id", "")
    except (ValueError, KeyError, TypeError):
        code = {401: "unauthorized", 429: "rate_limited", 504: "timeout"}.get(status, "")
        snippet = content[:200].decode("utf-8", "replace").strip()
        message = f"HTTP {status} from the service, not a vecsim answer: {snippet!r} (is the URL a vecsim service?)"
        request_id = headers.get("x-request-id", "")
    return error_for(status, code, message, names, request_id, retry_after(headers))


def retry_after(headers: Any) -> float | None:
    """The Retry-After header in seconds (a number or an HTTP date), or None."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            from datetime import datetime, timezone

            seconds = (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


class Polling:
    """The pauses of ``task.wait(timeout)`` between two reads of a task: from 50 ms, doubling up
    to ``longest``, never past the deadline; past it, a RemoteTimeoutError."""

    def __init__(self, task_id: str, timeout: float | None, longest: float):
        self.task_id, self.timeout, self.longest = task_id, timeout, longest
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.delay = 0.05

    def pause(self, status: str) -> float:
        """Seconds to wait before reading the task (still ``status``) again."""
        pause = self.delay
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise E.RemoteTimeoutError(f"task {self.task_id!r} is still {status} after {self.timeout:g} s")
            pause = min(pause, left)
        self.delay = min(self.delay * 2, self.longest)
        return pause


def retry_delay(options: RemoteOptions, attempt: int, suggested: float | None) -> float:
    """Seconds to wait before attempt ``attempt + 1``: the service's Retry-After where it gave
    one, else exponential backoff with jitter."""
    if suggested is not None:
        return suggested
    return options.backoff * (2 ** attempt) * (0.5 + random.random() / 2)


RETRY_STATUSES = (429, 503)


class Attempts:
    """The retry policy of one call, for either client: each attempt's outcome (an answer or a
    transport error) gives the parsed result, a wait before the next attempt, or an error raised."""

    def __init__(self, options: RemoteOptions, call: Call, url: str):
        self.options, self.call, self.url = options, call, url
        self.waited, self.attempt = 0.0, 0

    def answered(self, response: httpx.Response) -> tuple[bool, Any]:
        """(True, the parsed result), or (False, seconds to wait before sending again); raises
        an answer that is not to be retried."""
        if response.status_code < 400:
            return True, self.call.parse(response.json())
        error = answer_error(response.status_code, response.headers, response.content, self.call.names)
        if response.status_code not in RETRY_STATUSES:
            raise error
        return False, self._wait(error, retry_after(response.headers))

    def failed(self, exc: httpx.HTTPError) -> float:
        """Seconds to wait before sending again after a transport error; raises where the call
        is not to be sent again (a time-out; a lost connection after an add was sent)."""
        if isinstance(exc, httpx.TimeoutException):
            raise E.RemoteTimeoutError(f"{self.call.method} {self.call.path}: no answer within "
                                       f"{self.options.timeout:g} s ({type(exc).__name__})") from exc
        error = E.ServiceUnavailableError(f"{self.url}: {type(exc).__name__}: {exc}")
        if not (isinstance(exc, httpx.ConnectError) or self.call.retry_send_errors):
            raise error from exc
        return self._wait(error, None)

    def _wait(self, error: E.VecsimError, suggested: float | None) -> float:
        delay = retry_delay(self.options, self.attempt, suggested)
        if (self.attempt >= self.options.max_retries or self.waited + delay > self.options.max_retry_wait
                or not self.call.resendable):
            raise error
        self.waited += delay
        self.attempt += 1
        return delay


# --- add_many --------------------------------------------------------------------------------------


@dataclass
class ManyItem:
    """One input of ``add_many``: the input, its metadata and task_id, or why it fails at once."""

    media: MediaInput
    metadata: dict[str, Any] | None
    task_id: str | None
    refused: E.VecsimError | None = None


def add_many_items(media: Any, metadata: Any, task_ids: Any) -> list[ManyItem]:
    """The inputs of ``add_many`` (folders expanded), each with its metadata and task_id, as
    ``CustomIndex.add_many`` pairs them; a task_id given twice fails both of its inputs."""
    sources = expand_sources(media)
    metas = per_item(metadata, len(sources), "metadata")
    ids = list(task_ids) if task_ids is not None else [None] * len(sources)
    if len(ids) != len(sources):
        raise E.InvalidRequestError(f"{len(ids)} task_ids for {len(sources)} inputs")
    dupes = repeated(ids)
    return [ManyItem(m, meta, t, E.TaskExistsError(f"task_id {t!r} is given more than once in this batch")
                     if t in dupes else None) for m, meta, t in zip(sources, metas, ids)]


def add_many_failure(item: ManyItem, exc: Exception) -> AddFailure:
    """How ``add_many`` reports an input that failed; a bad API key is raised, not reported (no
    input would succeed)."""
    if isinstance(exc, E.AuthenticationError):
        raise exc
    return failure_of(item.media, exc)


def add_many_result(done: list[AddResult | AddFailure]) -> AddManyResult:
    return AddManyResult(added=[r for r in done if isinstance(r, AddResult)],
                         failed=[r for r in done if isinstance(r, AddFailure)])
