"""A Python with hyperctl's dependencies that any user may run, for tests that run hyperctl as a
user other than root (the tests' own Python usually lives under root's home, which others cannot
enter).

A virtualenv of the system's python3 (Debian's, which .ci/test installs) with hyperctl's
install_requires from PyPI, built once per machine under /var/cache/hyperctl-tests (or
$HYPERCTL_TEST_SHARED_CACHE), readable by everyone; about 10 s the first time. hyperctl itself
comes from the repository (PYTHONPATH), so the tests run the code under test.
"""

from __future__ import annotations

import configparser
import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cache_root() -> Path:
    return Path(os.environ.get("HYPERCTL_TEST_SHARED_CACHE") or "/var/cache/hyperctl-tests")


def requirements() -> list[str]:
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    return [line.strip() for line in setup["options"]["install_requires"].splitlines() if line.strip()]


def user_python() -> Path:
    """The venv's python, built the first time (under a lock: two test runs at once build it once)."""
    system = shutil.which("python3", path="/usr/bin:/bin")
    if system is None:
        raise RuntimeError("no system python3 in /usr/bin: apt-get install python3 python3-venv (.ci/test does)")
    root = cache_root()
    wanted = "\n".join(requirements())
    venv = root / "user-python"
    python = venv / "bin" / "python"
    done = venv / ".built"  # written last, with what it holds: a half-built or older venv is rebuilt
    if done.exists() and done.read_text() == wanted:
        return python
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    with open(root / "user-python.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (done.exists() and done.read_text() == wanted):
            _build(system, venv, requirements())
            done.write_text(wanted)
    return python


def _build(system: str, venv: Path, packages: list[str]) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    python = str(venv / "bin" / "python")
    steps = [
        [system, "-m", "venv", str(venv)],
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages],
    ]
    for argv in steps:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise RuntimeError(f"cannot build the user python at {venv}: {' '.join(argv)} failed:\n{tail}")
    subprocess.run(["chmod", "-R", "a+rX", str(venv)], check=True)


if __name__ == "__main__":
    print(user_python(), file=sys.stdout)
