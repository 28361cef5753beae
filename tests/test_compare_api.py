"""The API's results: GET .../job/{name}/metrics and GET .../compare, from a real daemon on loopback."""

from __future__ import annotations

import json
import math
import urllib.parse
from pathlib import Path
from typing import Any

from tests.conftest import hyperctl, wait_for
from tests.test_api import API, Runs, batch, call, job
from tests.test_compare import RETRIED, reporting

TOKEN_TO_FILE = 'echo "$HYPERCTL_JOB_TOKEN" > "$HYPERCTL_JOB_DATA_DIR/token"; '


def served(runs: Runs) -> tuple[str, str]:
    """A finished batch whose daemon stays up: its portal and batch token, once every job ended."""
    doc = batch(
        "results",
        job("a", TOKEN_TO_FILE + reporting({"loss": 0.5}, {"loss": 0.25, "acc": 0.5}), {"lr": 0.1}),
        job("b", TOKEN_TO_FILE + reporting({"loss": 0.75, "acc": float("nan")}), {"lr": 0.2}),
        {**job("c", RETRIED, {"lr": 0.3}), "max_retries": 1},
        daemon={"port": 0, "exit_on_finish": False},
    )
    _, portal, token = runs.serve(doc)

    def ended() -> bool:
        status, view = call(portal, f"{API}/batch", token)
        return status == 200 and view["counts"]["succeeded"] == 3

    wait_for(ended, "the batch's jobs to end")
    return portal, token


def get(portal: str, path: str, token: str | None, **query: Any) -> tuple[int, dict[str, Any]]:
    return call(portal, path + ("?" + urllib.parse.urlencode(query, doseq=True) if query else ""), token)


def test_a_job_s_metrics_points_and_summaries(runs: Runs) -> None:
    portal, token = served(runs)

    status, doc = get(portal, f"{API}/job/a/metrics", token)
    assert status == 200, doc
    assert doc["job"] == "a" and doc["attempt"] == 1
    assert [{k: v for k, v in p.items() if k != "t"} for p in doc["points"]] == [
        {"step": 0, "loss": 0.5},
        {"step": 1, "loss": 0.25, "acc": 0.5},
    ]
    assert all(isinstance(p["t"], float) for p in doc["points"])
    assert doc["summaries"]["loss"] == {
        "last": 0.25, "last_step": 1, "min": 0.25, "min_step": 1, "max": 0.5, "max_step": 0, "count": 2
    }  # fmt: skip

    status, doc = get(portal, f"{API}/job/a/metrics", token, key="acc")
    assert [p["acc"] for p in doc["points"]] == [0.5] and list(doc["summaries"]) == ["acc"]
    assert all("loss" not in p for p in doc["points"])

    status, doc = get(portal, f"{API}/job/b/metrics", token)
    assert math.isnan(doc["summaries"]["acc"]["last"])  # NaN, as Python's json writes it


def test_an_earlier_attempt_s_metrics_and_one_it_does_not_have(runs: Runs) -> None:
    portal, token = served(runs)
    assert get(portal, f"{API}/job/c/metrics", token)[1]["summaries"]["acc"]["last"] == 0.6
    status, doc = get(portal, f"{API}/job/c/metrics", token, attempt=1)
    assert status == 200 and doc["attempt"] == 1 and doc["summaries"]["acc"]["last"] == 0.1
    assert get(portal, f"{API}/job/c/metrics", token, attempt=3) == (
        404,
        {"error": "job 'c' has attempts 1 to 2, not 3", "status": 404},
    )
    assert get(portal, f"{API}/job/nosuch/metrics", token)[0] == 404
    assert get(portal, f"{API}/job/a/metrics", token, attempt="x")[0] == 400


def test_compare_is_the_cli_s_table(runs: Runs) -> None:
    portal, token = served(runs)

    status, doc = get(portal, f"{API}/compare", token)
    assert status == 200, doc
    cli = hyperctl("compare", "results", "--json")
    assert cli.returncode == 0, cli.stderr
    expected = json.loads(cli.stdout)
    assert doc["columns"] == expected["columns"] == ["name", "status", "duration", "host", "lr", "acc", "loss"]
    strip = [{k: v for k, v in row.items() if k not in ("duration", "acc")} for row in doc["rows"]]
    assert strip == [{k: v for k, v in row.items() if k not in ("duration", "acc")} for row in expected["rows"]]

    status, doc = get(
        portal, f"{API}/compare", token, columns="=lr,min loss as best", sort="best", where=["lr<0.3"], top=1
    )
    assert (status, doc) == (200, {"columns": ["name", "lr", "best"], "rows": [{"name": "a", "lr": 0.1, "best": 0.25}]})
    status, doc = get(portal, f"{API}/compare", token, columns="acc", attempt=1, sort="-acc")
    assert [row["acc"] for row in doc["rows"]][:1] == [0.5] and doc["rows"][-1]["acc"] != doc["rows"][-1]["acc"]


def test_a_bad_compare_expression_is_400_naming_it(runs: Runs) -> None:
    portal, token = served(runs)
    assert get(portal, f"{API}/compare", token, where="lr") == (
        400,
        {"error": "filter 'lr': write NAME OP VALUE, with OP one of <= >= != = < > ~ (e.g. loss<0.3)", "status": 400},
    )
    status, doc = get(portal, f"{API}/compare", token, sort="-nosuch")
    assert status == 400 and doc["error"].startswith("sort key 'nosuch': no job has a param or metric named 'nosuch'")
    assert get(portal, f"{API}/compare", token, top=-1)[0] == 400


def test_tokens_as_for_the_other_routes(runs: Runs, batches: Path) -> None:
    portal, token = served(runs)
    for path in (f"{API}/compare", f"{API}/job/a/metrics", f"{API}/job/nosuch/metrics"):
        for bad in (None, "not-the-token", token + "x"):
            assert get(portal, path, bad)[0] == 401, (path, bad)
    job_token = (batches / "results" / "a" / "token").read_text().strip()
    assert get(portal, f"{API}/job/a/metrics", job_token)[0] == 200  # its own
    assert get(portal, f"{API}/job/b/metrics", job_token)[0] == 403  # another's
    assert get(portal, f"{API}/compare", job_token)[0] == 401  # the batch's: the batch token's alone
