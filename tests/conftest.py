"""Shared fixtures: real `hyperctl` processes, a batches folder per test, and no skips in CI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every test must run: {report.longrepr}"


@pytest.fixture
def batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh batches data dir, also set in the environment of every hyperctl started."""
    path = tmp_path / "batches"
    monkeypatch.setenv("HYPERCTL_BATCHES_DATA_DIR", str(path))
    return path


def hyperctl(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a process of its own, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "hyperctl", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_hyperctl(*args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hyperctl", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def write_json(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))
    return path


def read_stdout(batches: Path, batch: str, job: str, attempt: int = 1) -> str:
    return (batches / batch / job / f"attempt-{attempt}" / "stdout").read_text()


def wait_for_portal(proc: subprocess.Popen[str]) -> str:
    """The API address a running `hyperctl run` prints on stderr when it is ready."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if "API at " in line:
            return line.split("API at ", 1)[1].strip()
    raise AssertionError(f"hyperctl run ended before serving (exit {proc.wait()})")


def wait_for(check: Callable[[], T], what: str, deadline: float = 30) -> T:
    """Poll check() until it returns something true; fail after `deadline` seconds."""
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"gave up after {deadline:.0f} s waiting for {what}")
        time.sleep(0.02)


def batch_token(batches: Path, batch: str) -> str:
    return (batches / batch / ".hyperctl" / "token").read_text().strip()
