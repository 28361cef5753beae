"""A job reports through the API (POST .../job/{name}/metrics): for itself only, while it runs;
its points land in its metrics file and are read as every report is."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from hyperctl.daemon.auth import Tokens
from tests.conftest import hyperctl, wait_for
from tests.test_api import API, Runs, batch, job, wait_for_file

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post(portal: str, name: str, token: str | None, body: bytes) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"{portal}{API}/job/{name}/metrics", data=body, method="POST", headers=headers)
    try:
        with _OPENER.open(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def points(name: str) -> list[dict[str, Any]]:
    listed = hyperctl("job", "metrics", "api", name, "--json")
    assert listed.returncode == 0, listed.stderr
    return [{k: v for k, v in p.items() if k != "t"} for p in json.loads(listed.stdout)]


def test_a_running_job_reports_through_the_api_for_itself_only(runs: Runs, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    doc = batch(
        "api",
        job("j", wait_for_file(gate)),
        job("done", "true"),
        daemon={"port": 0, "exit_on_finish": False},
    )
    _, portal, token = runs.serve(doc)
    tokens = Tokens(token)
    mine = tokens.for_job("j")
    wait_for(lambda: hyperctl("job", "list", "api", "--json").stdout.count('"running"') == 1, "j to run")

    sent = json.dumps([{"loss": 0.5}, {"step": 5, "loss": 0.25, "acc": math.nan}]).encode()
    assert post(portal, "j", mine, sent) == (200, {"job": "j", "attempt": 1, "points": 2})
    assert post(portal, "j", mine, b'{"step": 6, "loss": "low"}') == (
        400,
        {"error": "the point.loss: must be a number, not 'low'", "status": 400},
    )
    assert post(portal, "j", mine, b'[{"step": 7}]')[1]["error"] == "[0]: no metric (a number besides t and step)"
    assert post(portal, "j", mine, b"{not json")[0] == 400
    assert post(portal, "j", mine, json.dumps([{"loss": 1}] * 1001).encode())[0] == 400
    assert post(portal, "j", token, sent)[0] == 403  # the batch's token: no one reports for a job
    assert post(portal, "j", tokens.for_job("done"), sent)[0] == 403  # nor another job
    assert post(portal, "done", tokens.for_job("done"), sent)[0] == 409  # ended: nothing to report to
    assert post(portal, "j", None, sent)[0] == 401

    wait_for(lambda: len(points("j")) == 2, "the points in the store, while the job runs")
    got = points("j")
    assert got[0] == {"step": 0, "loss": 0.5}
    assert got[1]["step"] == 5 and got[1]["loss"] == 0.25 and math.isnan(got[1]["acc"])
    gate.touch()
    wait_for(lambda: '"succeeded"' in hyperctl("job", "describe", "api", "j", "--json").stdout, "j to end")
    assert len(points("j")) == 2  # none lost at the end, none counted twice
