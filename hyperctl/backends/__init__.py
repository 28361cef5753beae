"""The executor registry: backend.type -> Executor class."""

from __future__ import annotations

from typing import Any

from hyperctl.backends.base import Executor
from hyperctl.backends.local import LocalExecutor
from hyperctl.errors import ConfigError

REGISTRY: dict[str, type[Executor]] = {cls.kind: cls for cls in (LocalExecutor,)}


def create_executor(kind: str, conf: dict[str, Any]) -> Executor:
    """The executor for backend.type, built from backend.conf; ConfigError when either is wrong."""
    try:
        cls = REGISTRY[kind]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ConfigError(f"backend.type: unknown backend '{kind}' (available: {known})") from None
    return cls.from_conf(conf)
