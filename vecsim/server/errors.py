"""Every error the service answers with: a JSON :class:`~vecsim.server.models.ErrorResponse`
with a stable ``code`` and an HTTP status, mapped here from vecsim's typed errors (and the
service's own). Nothing else reaches a client: an unexpected exception is a 500
``internal_error`` naming the request id, its traceback only in the service's log."""

from __future__ import annotations

from .. import errors as E


class ServiceError(Exception):
    """An error the service raises itself: HTTP ``status``, a stable ``code``, a message and
    optional headers (``Retry-After``)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


#: (vecsim error class, HTTP status, code), most specific first: the SDK's table.
ERROR_MAP = E.ERROR_CODES

#: Every code the service may answer with, and its HTTP status (docs/service.md lists them).
CODES: dict[str, int] = {code: status for _, status, code in ERROR_MAP} | {
    "unsupported_media_type": 415, "unauthorized": 401, "not_found": 404, "method_not_allowed": 405, "request_too_large": 413,
    "rate_limited": 429, "queue_full": 429, "timeout": 504, "not_ready": 503, "task_in_progress": 409,
    "internal_error": 500,
}


def classify(exc: BaseException) -> tuple[int, str, dict[str, str]]:
    """(HTTP status, code, headers) of an exception."""
    if isinstance(exc, ServiceError):
        return exc.status, exc.code, exc.headers
    status, code = E.error_code(exc)
    return status, code, ({"Retry-After": "5"} if status == 503 else {})


def public_message(exc: BaseException) -> str:
    """The message a client sees: vecsim's own messages name the input and are safe to show;
    anything else is not shown (it may hold internals)."""
    if isinstance(exc, E.StoreUnavailableError):  # its message names the store's address: not for clients
        return "the vector store cannot be reached; retry later"
    if isinstance(exc, E.StoreError):
        return "the vector store failed; the request id finds the details in the service's log"
    if isinstance(exc, (ServiceError, E.VecsimError)) and type(exc) is not E.VecsimError:
        return str(exc) or type(exc).__name__
    return "the service failed unexpectedly; the request id finds the details in its log"
