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
