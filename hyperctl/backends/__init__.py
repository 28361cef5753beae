"""The executor registry: backend.type -> Executor class, imported only when used."""

from __future__ import annotations

import importlib
from typing import Any

from hyperctl.backends.base import Executor
from hyperctl.errors import ConfigError

# Imported on demand: paramiko loads only for batches that use the remote backend.
REGISTRY: dict[str, str] = {
    "local": "hyperctl.backends.local:LocalExecutor",
    "remote": "hyperctl.backends.ssh:RemoteExecutor",
    "slurm": "hyperctl.backends.slurm:SlurmExecutor",
}


def create_executor(kind: str, conf: dict[str, Any]) -> Executor:
    """The executor for backend.type, built from backend.conf; ConfigError when either is wrong."""
    if kind not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise ConfigError(f"backend.type: unknown backend '{kind}' (available: {known})")
    module, name = REGISTRY[kind].split(":")
    try:
        cls: type[Executor] = getattr(importlib.import_module(module), name)
    except ImportError as e:
        raise ConfigError(f"backend.type: {kind} needs a package that is not installed: {e.name}") from None
    return cls.from_conf(conf)
