"""hyperctl: run batches of shell jobs and parameter sweeps.

Only the job-side API is imported here, so `import hyperctl` in a job stays light.
"""

from hyperctl.errors import ConfigError, HyperctlError, NotInJobError
from hyperctl.jobside import get_job_data_dir, get_job_name, get_job_params, inject, reset_dev_params
from hyperctl.reporting import report

__version__ = "0.2.0"

__all__ = [
    "ConfigError",
    "HyperctlError",
    "NotInJobError",
    "__version__",
    "get_job_data_dir",
    "get_job_name",
    "get_job_params",
    "inject",
    "report",
    "reset_dev_params",
]
