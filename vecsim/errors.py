"""Every error vecsim raises on purpose. Catch :class:`VecsimError` to catch them all."""

from __future__ import annotations


class VecsimError(Exception):
    """Base class of vecsim's own errors."""


# --- media -------------------------------------------------------------------------------------


class MediaError(VecsimError, ValueError):
    """The input could not be turned into frames. ``source`` names the input, ``reason`` says why."""

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class EmptyMediaError(MediaError):
    """The input has zero bytes."""


class UnsupportedMediaError(MediaError):
    """The input is not an image (or not a format vecsim reads)."""


class CorruptMediaError(MediaError):
    """The input is truncated or damaged."""


class MediaTooLargeError(MediaError):
    """The input is larger than the configured limit (pixels, or bytes)."""


class MediaNotFoundError(MediaError, FileNotFoundError):
    """A path that does not exist, or a URL that answers 404 / 410."""


class MediaFetchError(MediaError):
    """A URL that could not be fetched (network error, time-out, HTTP error)."""


class UrlNotAllowedError(MediaFetchError):
    """A URL refused by the URL policy (:class:`~vecsim.media.fetch.UrlPolicy`), before any
    request is sent to the refused place: a scheme other than http(s), credentials in the URL,
    or a host that resolves to an address the policy blocks (loopback, private, link-local, ...),
    at the first hop or at any redirect. ``code`` is ``"url_not_allowed"``, stable for a service
    to answer with (HTTP 400). The reason names the kind of address, never a resolved address."""

    code = "url_not_allowed"


# --- index -------------------------------------------------------------------------------------


class InvalidRequestError(VecsimError, ValueError):
    """A bad argument: a malformed ``task_id``, metadata that is not a JSON object, ``top_k < 1``."""


class IndexConfigError(VecsimError, ValueError):
    """An index type or parameter the connected engine cannot do, or an invalid URI."""


class DescriptorMismatchError(VecsimError):
    """The collection was built with another descriptor than the one asked for."""


# --- descriptors, calibration, optional extras ---------------------------------------------------


class DescriptorError(VecsimError, ValueError):
    """A descriptor that cannot be named, loaded or run. ``descriptor`` names it, ``reason`` says why."""

    def __init__(self, descriptor: str, reason: str):
        self.descriptor = descriptor
        self.reason = reason
        super().__init__(f"descriptor {descriptor}: {reason}")


class DescriptorFileNotFoundError(DescriptorError, FileNotFoundError):
    """A descriptor's model file (an SSCD TorchScript file, an OpenCLIP checkpoint) does not exist."""

    def __init__(self, descriptor: str, reason: str, path: str):
        self.filename = path
        DescriptorError.__init__(self, descriptor, reason)

    def __str__(self) -> str:  # OSError's own formatting would drop the message
        return self.args[0] if self.args else ""


class CalibrationError(VecsimError, ValueError):
    """A calibration that is malformed, or a fit that the given pairs cannot support."""


class MissingDependencyError(VecsimError, ImportError):
    """An optional extra is needed and not installed (or fails to import); the message says which
    ``pip install 'vecsim[EXTRA]'`` brings it."""


class TaskExistsError(VecsimError, KeyError):
    """``add`` with a ``task_id`` that is already in the index (pass ``replace=True`` to overwrite)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class TaskNotFoundError(VecsimError, KeyError):
    """``remove`` / ``get`` of a ``task_id`` the index does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class StoreError(VecsimError, RuntimeError):
    """The vector store failed (connection, write, schema). The message carries the engine's words."""


class StoreUnavailableError(StoreError):
    """The vector store could not be reached (connection refused or lost, time-out)."""


class UnsupportedOperationError(VecsimError):
    """An operation this kind of index does not offer (e.g. ``vacuum`` through a service, which is
    the operator's maintenance of the store); the message says where it can be done."""


# --- a vecsim service (RemoteIndex) --------------------------------------------------------------
# A RemoteIndex raises the SDK's own errors where the service answers with one (a 415
# unsupported_media is an UnsupportedMediaError), each carrying ``status``, ``code`` and
# ``request_id``; these are the answers that have no counterpart in an embedded index.


class RemoteError(VecsimError):
    """An answer of a vecsim service that is not one of the SDK's own errors. ``status`` is the
    HTTP status (0 when no answer came), ``code`` the service's stable error code, ``request_id``
    the request's id in the service's log."""

    def __init__(self, message: str, *, status: int = 0, code: str = "", request_id: str = ""):
        super().__init__(message)
        self.status, self.code, self.request_id = status, code, request_id


class AuthenticationError(RemoteError):
    """401: the API key is missing, malformed, unknown or revoked."""


class RateLimitedError(RemoteError):
    """429 after the client's retries: the project's rate limit (``rate_limited``) or the task
    queue (``queue_full``). ``retry_after`` is the service's Retry-After, in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object):
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class TaskInProgressError(RemoteError):
    """409: an async task with this id is already queued or running."""


class RemoteTimeoutError(RemoteError, TimeoutError):
    """The call took too long: the client's own time-out, a 504 from the service (a sync call
    over ``request_timeout_s``: use ``wait=False`` for long media), or ``RemoteTask.wait``."""


class ServiceUnavailableError(StoreUnavailableError, RemoteError):
    """The service could not be reached (connection refused or lost), or answered 503 (still
    loading, or its vector store is down) after the client's retries. A StoreUnavailableError,
    so code written for an embedded index retries it the same way."""

    def __init__(self, message: str, *, status: int = 0, code: str = "", request_id: str = ""):
        RemoteError.__init__(self, message, status=status, code=code, request_id=request_id)


#: (error class, HTTP status, stable code), most specific first: what the service answers with
#: (``vecsim.server.errors``) and what ``vecsim ingest`` writes in its failures file.
ERROR_CODES: list[tuple[type[BaseException], int, str]] = [
    (UrlNotAllowedError, 400, "url_not_allowed"),  # a MediaFetchError: before it
    (EmptyMediaError, 400, "empty_media"),
    (UnsupportedMediaError, 415, "unsupported_media"),
    (CorruptMediaError, 422, "corrupt_media"),
    (MediaTooLargeError, 413, "media_too_large"),
    (MediaNotFoundError, 422, "url_not_found"),
    (MediaFetchError, 422, "url_fetch_failed"),
    (MediaError, 422, "bad_media"),
    (InvalidRequestError, 400, "invalid_request"),
    (TaskExistsError, 409, "task_exists"),
    (TaskNotFoundError, 404, "task_not_found"),
    (StoreUnavailableError, 503, "store_unavailable"),
    (StoreError, 502, "store_error"),
    (DescriptorError, 500, "model_error"),
    (VecsimError, 500, "internal_error"),
]


def error_code(exc: BaseException) -> tuple[int, str]:
    """(HTTP status, stable code) of an exception: :data:`ERROR_CODES`, else 500 ``internal_error``."""
    for cls, status, code in ERROR_CODES:
        if isinstance(exc, cls):
            return status, code
    return 500, "internal_error"
