"""A job's name from what it runs, for jobs the batch file leaves unnamed.

`depth-3_lr-0.1-5e0c9a1b77d2`: the params, by key (their order in the file does not matter),
as a short slug to read and type, then 12 hex digits of a hash of the params and the command.
The same job has the same name in every run of the batch, wherever it stands in the file, so
a grown, shrunk or reordered sweep runs exactly its new jobs and each job's folder only ever
holds that job.
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
    # 48 bits: two of 100,000 jobs share a name about once in 50,000 such batches, and config.py
    # refuses that rather than take them for repeats of one job.
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{_slug(params, command)}-{digest}"


def _slug(params: dict[str, Any], command: str) -> str:
    if params:
        slug = "_".join(f"{_words(str(k))}-{_value(params[k])}" for k in sorted(params))
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
