"""hyperctl: run batches of shell jobs and parameter sweeps.

Only the job-side API is imported here, so `import hyperctl` in a job stays light (the standard
library alone; this file is also sent to hosts without hyperctl: jobsidelib.py). The Python API
(`from hyperctl import Batch`) loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hyperctl.errors import (
    ApiError,
    BadRequest,
    ConfigError,
    Conflict,
    Forbidden,
    HyperctlError,
    NoSuchBatchError,
    NoSuchJobError,
    NotFound,
    NotInJobError,
    Unauthorized,
)
from hyperctl.jobside import get_job_data_dir, get_job_name, get_job_params, inject, reset_dev_params
from hyperctl.reporting import report

if TYPE_CHECKING:
    from hyperctl.pyapi import Batch as Batch
    from hyperctl.pyapi import Job as Job
    from hyperctl.rows import Rows as Rows

__version__ = "0.2.0"

# name -> the module that has it, imported when the name is first asked for
_LAZY = {"Batch": "hyperctl.pyapi", "Job": "hyperctl.pyapi", "Rows": "hyperctl.rows"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hyperctl' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # asked once
    return value


# Not the lazy names: `from hyperctl import *` in a job stays the job side (stdlib only).
__all__ = [
    "ApiError",
    "BadRequest",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "HyperctlError",
    "NoSuchBatchError",
    "NoSuchJobError",
    "NotFound",
    "NotInJobError",
    "Unauthorized",
    "__version__",
    "get_job_data_dir",
    "get_job_name",
    "get_job_params",
    "inject",
    "report",
    "reset_dev_params",
]
