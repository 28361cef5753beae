"""The job-side hyperctl as files (what a job imports: its params, its data dir), for a job's
PYTHONPATH: sent to SSH hosts, written in a local batch's folder and for `hyperctl try`, so that
`import hyperctl` works in whatever Python a job runs, hyperctl installed there or not."""

from __future__ import annotations

import hashlib
from pathlib import Path

from hyperctl import privatefs

_PACKAGE = Path(__file__).resolve().parent
_JOB_SIDE = ("__init__.py", "jobside.py", "errors.py", "hyperctl.py", "reporting.py")
# extend_path: where hyperctl is installed, the rest of it stays importable.
_EXTEND = '\n__path__ = __import__("pkgutil").extend_path(__path__, __name__)\n'


def job_side_lib() -> tuple[str, dict[str, str]]:
    """The job-side modules as text, and a name for this version of them."""
    files = {name: (_PACKAGE / name).read_text() for name in _JOB_SIDE}
    files["__init__.py"] += _EXTEND
    digest = hashlib.sha256("".join(files.values()).encode()).hexdigest()[:12]
    return digest, files


def write_job_side_lib(root: Path) -> str:
    """A folder for jobs' PYTHONPATH, under root, private; on this machine it is this very package
    where the job's Python can import it (its __path__ reaches here)."""
    version, files = job_side_lib()
    package = root / version / "hyperctl"
    privatefs.make_missing_dirs(package)
    files["__init__.py"] += f"__path__.append({str(_PACKAGE)!r})\n"
    for name, text in files.items():
        privatefs.write_atomic(package / name, text)
    return str(package.parent)


def add_to_pythonpath(env: dict[str, str], lib: str) -> None:
    """lib last on env's PYTHONPATH: what the job's own Python finds first stays first."""
    env["PYTHONPATH"] = f"{env['PYTHONPATH']}:{lib}" if env.get("PYTHONPATH") else lib
