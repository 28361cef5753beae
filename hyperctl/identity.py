"""A job's name from what it runs, for jobs the batch file leaves unnamed.

`lr-0.1_depth-3-9c1f2a7b`: the params as a short slug to read and type, then 8 hex digits of
a hash of the params and the command. The same job has the same name in every run of the
batch, wherever it stands in the file, so a grown, shrunk or reordered sweep runs exactly its
new jobs and each job's folder only ever holds that job.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

_SLUG_MAX = 48  # characters of the readable part; the hash keeps names unique past it
_UNSAFE = re.compile(r"[^A-Za-z0-9._]+")
_SAFE = re.compile(r"[A-Za-z0-9._]*\Z")


def derived_name(params: dict[str, Any], command: str) -> str:
    """The name of an unnamed job: stable for the same params and (rendered) command."""
    key = json.dumps([params, command], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{_slug(params, command)}-{digest}"


def _slug(params: dict[str, Any], command: str) -> str:
    if params:
        slug = "_".join(f"{_words(str(k))}-{_value(v)}" for k, v in params.items())
    else:  # a plain shell job: its first words
        slug = _words(command[: _SLUG_MAX * 2])
    slug = slug[:_SLUG_MAX].strip("._-")
    return slug or "job"


def _value(value: Any) -> str:
    kind = type(value)
    if kind is str:
        text = value
    elif kind is int or kind is float:
        text = repr(value)  # as JSON writes them: 0.1, 1e-05
    else:
        text = json.dumps(value, separators=(",", ":"))  # true, null, [1,2]
    return ("-" if text[:1] == "-" else "") + _words(text)  # a sign is kept: lr=-0.1 is `lr--0.1`


def _words(text: str) -> str:
    """Letters, digits, '.' and '_' kept; every other run of characters becomes one '-'."""
    if _SAFE.match(text):  # most params: nothing to replace (a match is cheaper than a substitution)
        return text
    return _UNSAFE.sub("-", text).strip("-")
