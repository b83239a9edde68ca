"""What a caller may pass as a ``task_id`` and as ``metadata``: checked before anything is written.

Every engine vecsim runs on stores these values, and each has its own limits and failure modes
(a recursion limit on nested JSON in Qdrant's engine, 64-bit integers, strings that a filter
expression or a gRPC message cannot carry). The rules below are the intersection, so that an
input one backend accepts is one every backend accepts, and a bad input is refused with an
:class:`~vecsim.errors.InvalidRequestError` naming it, never by an engine half-way through an add.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from .errors import InvalidRequestError

#: Longest ``task_id``, in characters (Unicode code points).
MAX_TASK_ID_LENGTH = 256
#: Characters a ``task_id`` may not hold: quotes and backslashes (besides every control character).
FORBIDDEN_TASK_ID_CHARACTERS = frozenset("\"'\\")
#: Largest metadata, as UTF-8 JSON.
MAX_METADATA_BYTES = 60_000
#: Deepest nesting of objects and arrays in metadata (the top-level object is depth 1). Qdrant's
#: engine fails on every later read of a collection holding a payload nested ~150 levels deep.
MAX_METADATA_DEPTH = 32
#: Integers in metadata must fit in a signed 64-bit integer: engines store JSON numbers as int64
#: or float64, and a larger integer would come back altered.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


#: The default project: what an index opened without ``project=`` reads and writes.
DEFAULT_PROJECT = ""
#: Longest project name, in characters.
MAX_PROJECT_LENGTH = 64
_PROJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,%d}" % (MAX_PROJECT_LENGTH - 1))


def check_project(project: Any) -> str:
    """``project`` if valid: ``""`` (:data:`DEFAULT_PROJECT`), or 1-64 ASCII letters, digits, ``_``,
    ``.`` and ``-``, starting with a letter or digit (so never ``/``, which separates the project
    from the task_id in stored keys, and nothing a filter expression must escape)."""
    if project == DEFAULT_PROJECT and isinstance(project, str):
        return project
    if not isinstance(project, str) or not _PROJECT_NAME.fullmatch(project):
        what = f"a {type(project).__name__}, not a str" if not isinstance(project, str) else "not a project name"
        raise InvalidRequestError(
            f"invalid project {short_repr(project)}: {what} (\"\" for the default project, or 1-{MAX_PROJECT_LENGTH} "
            "characters of A-Z a-z 0-9 _ . -, starting with a letter or digit)"
        )
    return project


def new_task_id() -> str:
    """A generated ``task_id``: 32 hex characters."""
    return uuid.uuid4().hex


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters, for error messages about huge inputs."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def check_task_id(task_id: Any) -> str:
    """``task_id`` if valid: a ``str`` of 1-256 characters, no quotes, backslashes, control
    characters (C0, DEL and C1) or lone surrogates, and no leading or trailing white space."""
    problem = _task_id_problem(task_id)
    if problem:
        raise InvalidRequestError(
            f"invalid task_id {short_repr(task_id)}: {problem} (1-{MAX_TASK_ID_LENGTH} characters, no quotes, "
            "backslashes, control characters or surrounding spaces)"
        )
    return task_id


def _task_id_problem(task_id: Any) -> str | None:
    if not isinstance(task_id, str):
        return f"a {type(task_id).__name__}, not a str"
    if not 1 <= len(task_id) <= MAX_TASK_ID_LENGTH:
        return f"{len(task_id):,} characters"
    if task_id != task_id.strip():
        return "leading or trailing white space"
    for i, c in enumerate(task_id):
        if c in FORBIDDEN_TASK_ID_CHARACTERS:
            return f"{c!r} at position {i}"
        category = unicodedata.category(c)
        if category == "Cc":
            return f"control character U+{ord(c):04X} at position {i}"
        if category == "Cs":
            return f"lone surrogate U+{ord(c):04X} at position {i} (not valid Unicode text)"
    return None


def check_query_args(top_k: Any, threshold: Any) -> None:
    """Refuse a ``top_k`` below 1 or a ``threshold`` outside [0, 1] (``None`` for either: the default)."""
    if top_k is not None and top_k < 1:
        raise InvalidRequestError(f"top_k must be at least 1, got {top_k}")
    if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
        raise InvalidRequestError(f"threshold must be in [0, 1], got {float(threshold)}")


#: Most assets on one page of ``CustomIndex.list_assets``.
MAX_LIST_LIMIT = 1000


def check_list_args(limit: Any, after: Any) -> None:
    """Refuse a page size that is not an integer from 1 to :data:`MAX_LIST_LIMIT`, and an ``after``
    that is neither ``None`` nor a valid task_id (:func:`check_task_id`)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidRequestError(f"limit must be an integer from 1 to {MAX_LIST_LIMIT}, got {short_repr(limit)}")
    if after is not None:
        check_task_id(after)


def check_metadata(metadata: Any) -> dict[str, Any]:
    """A plain JSON copy of ``metadata`` (``None`` -> ``{}``), so that what a later ``get`` or query
    returns is exactly what is stored. Refused: not a dict; keys that are not strings; values that
    are not JSON (sets, bytes, datetimes: convert them first); NaN and infinities; integers beyond
    64 bits; nesting deeper than :data:`MAX_METADATA_DEPTH`; text that is not valid Unicode (lone
    surrogates); more than :data:`MAX_METADATA_BYTES` of JSON."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidRequestError(f"metadata must be a JSON object (dict), got {type(metadata).__name__}")
    _check_json_tree(metadata)
    try:
        text = json.dumps(metadata, ensure_ascii=False, allow_nan=False)
        data = text.encode("utf-8")
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise InvalidRequestError(f"metadata is not JSON-serialisable: {exc}") from None
    if len(data) > MAX_METADATA_BYTES:
        raise InvalidRequestError(f"metadata is {len(data):,} bytes of JSON; the limit is {MAX_METADATA_BYTES:,}")
    return json.loads(text)


def _check_json_tree(metadata: dict[str, Any]) -> None:
    """Walk the value without recursion (a deep input must not hit Python's recursion limit)."""
    stack: list[tuple[Any, str, int]] = [(metadata, "metadata", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, dict):
            if depth > MAX_METADATA_DEPTH:
                raise InvalidRequestError(f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels (at {path})")
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidRequestError(f"metadata keys must be strings: {path} has the key {short_repr(key)}")
                stack.append((item, f"{path}[{short_repr(key, 40)}]", depth + 1))
        elif isinstance(value, (list, tuple)):
            if depth > MAX_METADATA_DEPTH:
                raise InvalidRequestError(f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels (at {path})")
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
        elif isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        elif isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                raise InvalidRequestError(
                    f"{path} is an integer beyond 64 bits ({short_repr(value, 40)}); store it as a string"
                )
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidRequestError(f"{path} is {value!r}, which JSON cannot hold")
        else:
            raise InvalidRequestError(
                f"{path} is a {type(value).__name__}, not a JSON value (str, number, bool, null, list, dict)"
            )


def repeated(task_ids: Sequence[str | None]) -> set[str]:
    """The task_ids given more than once (``None``, a generated id, never is), in linear time:
    ``add_many`` fails every input of such an id."""
    counts = Counter(t for t in task_ids if t is not None)
    return {t for t, n in counts.items() if n > 1}
