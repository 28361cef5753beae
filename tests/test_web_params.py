"""Params vs metric (/b/BATCH/params): a real grid run by `hyperctl run`, whose python jobs report
with hyperctl.report(), served by a real `hyperctl ui`; its JSON over HTTP, its chart in a real
browser (brushing narrows the job table, the URL keeps the brush, log axes)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import hyperctl, kill_leftovers

# acc from the params; NaN where lr=1 with sgd; nothing reported (and exit 3) for one of those.
TRAIN = """\
import math, sys
import hyperctl
lr, depth, opt = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
acc = round(0.5 + depth / 100 + (0.05 if opt == "adam" else 0) - lr / 10, 4)
if lr == 1.0 and opt == "sgd":
    if depth == 8:
        raise SystemExit(3)
    acc = float("nan")
for step in range(3):
    hyperctl.report(acc=acc - 0.1 * (2 - step), loss=1 - acc + 0.01 * step)
"""
TEMPLATE = """\
name: grid
params:
  lr: [0.001, 0.01, 0.1, 1.0]
  depth: [0, 4, 8]
  opt: [sgd, adam]
execution:
  command: {python} train.py {{{{ lr }}}} {{{{ depth }}}} {{{{ opt }}}}
  working_dir: .
scheduler:
  objective: max acc
backend:
  type: local
  conf: {{cpu: 2}}
daemon: {{port: 0}}
"""
LRS, DEPTHS, OPTS = (0.001, 0.01, 0.1, 1.0), (0, 4, 8), ("sgd", "adam")


def expected_acc(lr: float, depth: int, opt: str) -> float | None:
    """A job's last acc as TRAIN reports it (None: NaN, or nothing reported)."""
    if lr == 1.0 and opt == "sgd":
        return None
    return round(0.5 + depth / 100 + (0.05 if opt == "adam" else 0) - lr / 10, 4)


@dataclass
class Grid:
    """The grid's batch, and `hyperctl ui` serving it (a session cookie from its login link)."""

    url: str
    cookie: str
    batches: Path

    def get(self, path: str, cookie: bool = True) -> tuple[int, str]:
        request = urllib.request.Request(self.url + path)
        if cookie:
            request.add_header("Cookie", f"hyperctl_session={self.cookie}")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def json(self, query: str = "", cookie: bool = True) -> tuple[int, dict[str, Any]]:
        status, body = self.get("/ui/api/b/grid/params" + query, cookie)
        return status, json.loads(body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _session_cookie(link: str) -> str:
    """Open the one-time login link as a browser would: its answer sets the session cookie."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        opener.open(link, timeout=30)
    except urllib.error.HTTPError as error:  # the redirect, not followed
        found = re.search(r"hyperctl_session=([^;]+)", error.headers.get("Set-Cookie", ""))
        assert error.code == 302 and found, (error.code, error.headers)
        return found.group(1)
    raise AssertionError("the login link set no cookie")


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    root = tmp_path_factory.mktemp("params")
    batches = root / "batches"
    env = {**os.environ, "HYPERCTL_BATCHES_DATA_DIR": str(batches), "XDG_STATE_HOME": str(root / "state")}
    (root / "train.py").write_text(TRAIN)
    (root / "t.yml").write_text(TEMPLATE.format(python=shlex.quote(sys.executable)))
    done = hyperctl("run", "--template", str(root / "t.yml"), env=env)
    assert done.returncode == 1, done.stderr  # one job fails on purpose
    ui = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "ui", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert ui.stdout is not None
        line = ui.stdout.readline()
        found = re.search(r"(http://[^/\s]+)(/login\?token=\S+)", line)
        assert found, line + ui.stderr.read() if ui.stderr else ""
        yield Grid(found.group(1), _session_cookie(found.group(1) + found.group(2)), batches)
    finally:
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(timeout=10) == 0
        kill_leftovers(batches)


def test_the_batch_page_and_its_export_keep_the_filters_too(grid: Grid) -> None:
    where = urllib.parse.urlencode([("where", "=depth>=4"), ("where", "=lr<=0.01"), ("sort", "-acc")])
    status, html = grid.get(f"/b/grid?{where}")
    assert status == 200
    rows = re.findall(r'<tr data-job="([^"]+)"', html)
    assert len(rows) == 8 and all("depth-0_" not in r and re.search(r"lr-0\.0?01_", r) for r in rows)
    links = re.findall(r'<a class="sort" href="\?([^"]+)"', html.replace("&amp;", "&"))
    assert links and all(urllib.parse.parse_qs(q)["where"] == ["=depth>=4", "=lr<=0.01"] for q in links)
    status, text = grid.get(f"/b/grid/export.csv?{where}")
    assert status == 200 and len(text.strip().splitlines()) == 1 + 8
