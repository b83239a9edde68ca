"""What a request asks for, read from any of the forms the API takes: multipart (a ``media`` file
plus fields), a JSON object, a urlencoded form, or (GET query, DELETE remove) the query string.

Fields: ``media`` (an uploaded file) or ``url`` (http/https; fetched by the worker under the
service's URL policy), ``metadata`` (a JSON object; in multipart and forms, its JSON text),
``task_id`` and ``replace`` (add), ``callback_url`` (async), ``top_k``, ``threshold`` and
``rotations`` (query). An upload is written
to the service's spool folder (``<data_dir>/spool``) as it is read, so an async task's media is on
disk, durable, before the task is accepted.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

from ..errors import InvalidRequestError
from .errors import ServiceError

FIELDS = {"media", "url", "metadata", "task_id", "replace", "callback_url", "top_k", "threshold", "rotations"}
_COPY_CHUNK = 1 << 20


@dataclass
class MediaRequest:
    spool: Path | None = None  # the uploaded file, in the spool folder (async calls)
    upload: Any = None  # or the uploaded file as the request parsed it (sync calls: no copy)
    filename: str = ""  # its name as uploaded
    url: str | None = None
    metadata: dict[str, Any] | None = None
    task_id: str | None = None
    callback_url: str | None = None
    top_k: int | None = None
    threshold: float | None = None
    replace: bool = False
    rotations: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return self.url or self.filename or "upload"

    def media_params(self) -> dict[str, Any]:
        """How a task record names its media (JSON)."""
        if self.url is not None:
            return {"url": self.url}
        if self.upload is not None:  # a sync call's: not JSON, never recorded
            return {"file": self.upload, "filename": self.filename}
        return {"spool": str(self.spool), "filename": self.filename}

    def discard(self) -> None:
        if self.spool is not None:
            try:
                os.unlink(self.spool)
            except FileNotFoundError:
                pass


async def read_request(request: Request, spool_dir: Path, *, need_media: bool, spool: bool = False) -> MediaRequest:
    """The fields of ``request``; with ``spool``, an upload is copied to ``spool_dir`` and
    fsynced (an async task's media must outlive the request), else it is read where the request
    parser left it (in memory, or in a temporary file when large). A missing or doubled
    input, an unknown field or a malformed value is a 400 ``invalid_request`` naming it."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    values: dict[str, Any] = dict(request.query_params)
    upload: UploadFile | None = None
    if request.method in ("POST", "PUT", "DELETE"):
        if kind == "application/json":
            try:
                body = await request.json()
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidRequestError(f"the request body is not valid JSON: {exc}") from None
            if not isinstance(body, dict):
                raise InvalidRequestError("the JSON body must be an object")
            values.update(body)
        elif kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
            form = await request.form(max_files=1, max_fields=len(FIELDS) + 2)
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    if key != "media":
                        raise InvalidRequestError(f"the file field must be named 'media', not {key!r}")
                    upload = value
                else:
                    values[key] = value
        elif kind and request.headers.get("content-length", "0") not in ("", "0"):
            raise ServiceError(415, "unsupported_media_type",
                               f"send multipart/form-data, application/json or a urlencoded form, not {kind!r}")
    unknown = sorted(set(values) - FIELDS)
    if unknown:
        raise InvalidRequestError(f"unknown field(s): {', '.join(unknown)}; the fields are {', '.join(sorted(FIELDS))}")
    out = MediaRequest(
        url=_text(values, "url"), metadata=_metadata(values.get("metadata")), task_id=_text(values, "task_id"),
        callback_url=_text(values, "callback_url"), top_k=_number(values, "top_k", int),
        threshold=_number(values, "threshold", float), replace=bool(_flag(values, "replace")),
        rotations=_flag(values, "rotations"),
    )
    if "media" in values and upload is None:
        raise InvalidRequestError("'media' must be a file (multipart/form-data), not a text field")
    if need_media:
        if (upload is None) == (out.url is None):
            raise InvalidRequestError("give exactly one of 'media' (a file, multipart/form-data) and 'url'"
                                      if upload is None else "give either a 'media' file or a 'url', not both")
        if upload is not None:
            out.filename = os.path.basename(upload.filename or "") or "upload"
            if spool:
                out.spool = await _spool(upload, spool_dir)
            else:
                await upload.seek(0)
                out.upload = upload.file
    return out


async def _spool(upload: UploadFile, spool_dir: Path) -> Path:
    from starlette.concurrency import run_in_threadpool

    await upload.seek(0)
    path = spool_dir / uuid.uuid4().hex
    await run_in_threadpool(_copy_durably, upload.file, spool_dir, path)
    await upload.close()
    return path


def _copy_durably(src: Any, folder: Path, path: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        shutil.copyfileobj(src, out, _COPY_CHUNK)
        out.flush()
        os.fsync(out.fileno())  # an accepted async task's media survives a crash


def _text(values: dict[str, Any], name: str) -> str | None:
    value = values.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRequestError(f"{name} must be a string, got {type(value).__name__}")
    return value


def _metadata(value: Any) -> dict[str, Any] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InvalidRequestError(f"metadata is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidRequestError(f"metadata must be a JSON object, got {type(value).__name__}")
    return value


def _number(values: dict[str, Any], name: str, kind: type) -> Any:
    value = values.get(name)
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        number = kind(value)
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
    except (TypeError, ValueError):
        raise InvalidRequestError(f"{name} must be a{'n integer' if kind is int else ' number'}, got {value!r}") from None
    return number


_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def _flag(values: dict[str, Any], name: str) -> bool | None:
    """A boolean field: a JSON true/false, or (forms, query strings) true/false/1/0/yes/no/on/off."""
    value = values.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidRequestError(f"{name} must be true or false, got {value!r}")
