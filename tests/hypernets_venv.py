"""A virtualenv with the real `hypernets` package from PyPI, for the tests of the way in from Hypernets.

Built once per Hypernets version and Python, outside the repo (~/.cache/hyperctl-tests/, or
$HYPERCTL_TEST_CACHE), and reused: a full `pip install hypernets==0.3.2` (its whole dependency set,
numpy, pandas, scikit-learn, lightgbm, ... about 500 MB) takes 25 s with pip's download cache warm
and 45 s cold on a 2-core machine; once built, nothing. A build that fails raises with pip's last
lines: the tests that need it fail, never skip. `python tests/hypernets_venv.py` builds it ahead of
the tests (.ci/test does).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

VERSION = "0.3.2"  # the last release, and the one the notes on the tool we replace measured


def cache_root() -> Path:
    return Path(os.environ.get("HYPERCTL_TEST_CACHE") or Path.home() / ".cache" / "hyperctl-tests")


def venv_python() -> Path:
    """The venv's python, built the first time (under a lock: two test runs at once build it once)."""
    root = cache_root()
    tag = f"hypernets-{VERSION}-py{sys.version_info.major}.{sys.version_info.minor}"
    venv = root / tag
    python = venv / "bin" / "python"
    done = venv / ".built"  # written last: a build that died half way is not taken for one
    if done.exists():
        return python
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{tag}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            _build(venv)
            done.write_text(VERSION + "\n")
    return python


def _build(venv: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    python = str(venv / "bin" / "python")
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", f"hypernets=={VERSION}"],
        [python, "-c", "from hypernets import hyperctl; hyperctl.get_job_params"],  # what the tests use
    ]
    for argv in steps:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise RuntimeError(f"cannot build the hypernets test venv at {venv}: {' '.join(argv)} failed:\n{tail}")


if __name__ == "__main__":
    print(venv_python())
