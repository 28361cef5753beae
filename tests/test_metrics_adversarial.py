"""Hostile and odd metrics: what jobs write, print or send that no sane job would, and what a
user sees then (the job's end as it would be without reporting, the points that are points)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hyperctl import metricstore
from hyperctl.daemon.auth import Tokens
from hyperctl.metricsfile import lines_from_body, read_new
from hyperctl.store import Store
from tests.conftest import attempt_dir, batch_token, hyperctl, wait_for, wait_for_portal, write_json
from tests.sshhosts import Host, hosts_for_module
from tests.test_api import Runs, batch, job, wait_for_file
from tests.test_report_api import post
from tests.test_ssh import job as remote_job
from tests.test_ssh import remote_batch


def run_shell(tmp_path: Path, *commands: str) -> Any:
    """Run a batch of shell jobs j0, j1, ... (one per command); the completed `hyperctl run`."""
    jobs = [{"name": f"j{i}", "execution": {"command": c}} for i, c in enumerate(commands)]
    doc = {"name": "b", "jobs": jobs, "daemon": {"port": 0}}
    return hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))


def job_metrics(job: str) -> list[dict[str, Any]]:
    listed = hyperctl("job", "metrics", "b", job, "--json")
    assert listed.returncode == 0, listed.stderr
    return [{k: v for k, v in p.items() if k != "t"} for p in json.loads(listed.stdout)]


def test_a_step_or_value_too_big_for_the_store_never_fails_the_job(tmp_path: Path, batches: Path) -> None:
    big = 10**26
    run = run_shell(
        tmp_path,
        f'echo \'{{"step": {big}, "loss": 1}}\' >> $HYPERCTL_METRICS_FILE;'
        ' echo \'{"step": 2, "loss": 5}\' >> $HYPERCTL_METRICS_FILE',
        f'echo \'{{"step": 1, "loss": {big}}}\' >> $HYPERCTL_METRICS_FILE',
        f"echo 'step: {big}'; echo 'acc: 3'",
    )

    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert job_metrics("j0") == [{"step": 2, "loss": 5.0}]  # the line with a step no store keeps: skipped
    assert job_metrics("j1") == [{"step": 1, "loss": float(big)}]
    assert job_metrics("j2") == [{"step": 0, "acc": 3.0}]  # a step: line out of range sets no step


def test_integers_beyond_any_float_or_step_are_no_point_and_the_rest_are_read() -> None:
    huge = "1" + "0" * 400
    lines = [
        f'{{"step": 0, "loss": {huge}}}',  # beyond a float: the line is no point
        f'{{"step": {huge}, "loss": 1}}',
        '{"step": 1, "loss": 2, "tag": "x"}',
        '{"step": 2, "loss": "x"}',  # numbers in some lines only
    ]
    data = ("\n".join(lines) + "\n").encode()

    columns = read_new(data, points=False).columns
    reading = read_new(data)

    assert columns == {"loss": ([2.0], [1])}
    assert [(p.step, p.values) for p in reading.points] == [(1, {"loss": 2.0})] and reading.skipped == 3


def test_the_api_refuses_a_step_or_integer_the_store_cannot_keep_naming_it() -> None:
    with pytest.raises(ValueError, match=r"^\[1\]\.step: must be a whole number"):
        lines_from_body([{"loss": 1}, {"step": 2**63, "loss": 1}], 0.0)
    with pytest.raises(ValueError, match=r"^the point\.loss: must be a number"):
        lines_from_body({"loss": 10**400}, 0.0)
    assert lines_from_body({"step": -(2**63), "loss": 10**300}, 0.0)[1] == 1


def test_report_keeps_what_it_can_of_integers_too_big_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "metrics"
    code = (
        "import hyperctl\n"
        "hyperctl.report(loss=10**30, huge=10**400, acc=1)\n"
        "hyperctl.report(loss=1, step=2**63)\n"
        "print('went on')\n"
    )
    env = {**os.environ, "HYPERCTL_METRICS_FILE": str(path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)

    assert done.returncode == 0 and done.stdout == "went on\n"
    assert [{k: v for k, v in p.items() if k != "t"} for p in map(json.loads, path.read_text().splitlines())] == [
        {"step": 0, "loss": 1e30, "acc": 1}
    ]
    assert "huge=" in done.stderr and "out of range" in done.stderr and "Traceback" not in done.stderr


def test_a_line_longer_than_a_read_is_no_point_even_where_its_end_looks_like_one(tmp_path: Path, batches: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(
        "import os\n"
        "with open(os.environ['HYPERCTL_METRICS_FILE'], 'w') as f:\n"
        "    f.write('\"' + 'x' * ((1 << 20) - 2) + '\"' + '{\"step\": 7, \"loss\": 99}\\n')\n"
        '    f.write(\'{"step": 1, "loss": 1}\\n{"acc": 5}\\n\')\n'
    )

    run = run_shell(tmp_path, f"{sys.executable} {script}")

    assert run.returncode == 0, run.stderr
    assert job_metrics("j0") == [{"step": 1, "loss": 1.0}, {"step": 2, "acc": 5.0}]  # the long line is line 0


def test_a_body_nested_too_deep_is_a_bad_request_and_the_daemon_goes_on(runs: Runs, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    doc = batch("api", job("j", wait_for_file(gate)), daemon={"port": 0, "exit_on_finish": False})
    _, portal, token = runs.serve(doc)
    mine = Tokens(token).for_job("j")
    wait_for(lambda: hyperctl("job", "list", "api", "--json").stdout.count('"running"') == 1, "j to run")

    status, answer = post(portal, "j", mine, b"[" * 100_000 + b"]" * 100_000)

    assert status == 400 and "nested too deep" in answer["error"]
    assert post(portal, "j", mine, b'{"loss": 1}')[0] == 200
    gate.touch()


def test_job_metrics_shows_a_name_s_control_characters_as_escapes(tmp_path: Path, batches: Path) -> None:
    line = json.dumps({"step": 0, "a\nb": 1, "\u001b]0;owned\u0007x": 2})
    run_shell(tmp_path, f"printf '%s\\n' {shlex.quote(line)} >> $HYPERCTL_METRICS_FILE")

    shown = hyperctl("job", "metrics", "b", "j0")

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0].split() == ["STEP", "\\x1b]0;owned\\x07x", "a\\x0ab"]
    assert "\x1b" not in shown.stdout and len(shown.stdout.splitlines()) == 2


def test_two_broken_lines_never_make_one_point_between_them() -> None:
    # A shell's echo turned the \n of a name into a newline: two lines, neither an object.
    data = b'{"step": 0, "a\nb": 1}\n{"step": 1, "loss": 2}\n{"acc": 3}\n'

    reading = read_new(data)

    assert [(p.step, p.values) for p in reading.points] == [(1, {"loss": 2.0}), (3, {"acc": 3.0})]
    assert reading.skipped == 2
    assert read_new(data, points=False).columns == {"loss": ([2], [1]), "acc": ([3], [3])}


def test_a_chunk_writes_the_summaries_of_its_own_metrics_only(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    try:
        tail = metricstore.Tail(summaries={})
        metricstore.add(
            store.conn, "j", 1, tail, json.dumps({"step": 0, **{f"m{i}": i for i in range(1000)}}).encode() + b"\n"
        )
        before = store.conn.total_changes

        metricstore.add(store.conn, "j", 1, tail, b'{"step": 1, "m5": -1}\n')

        assert store.conn.total_changes - before == 2  # the chunk, and m5's summary
        summaries = metricstore.summaries_of(store.conn, "j", 1)
        assert len(summaries) == 1000 and (summaries["m5"].last, summaries["m5"].min, summaries["m5"].count) == (
            -1,
            -1,
            2,
        )
        assert (summaries["m7"].last, summaries["m7"].count) == (7, 1)
    finally:
        store.close()


def test_report_never_fails_the_job_when_its_stderr_is_full_too(tmp_path: Path) -> None:
    # A full disk holds the job's stderr as well as its metrics file: the note cannot be written either.
    code = "import hyperctl\nfor i in range(3): hyperctl.report(loss=i)\nprint('went on')"
    env = {**os.environ, "HYPERCTL_METRICS_FILE": "/dev/full"}
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=full, text=True, env=env)

    assert (done.returncode, done.stdout) == (0, "went on\n")


def test_a_point_cut_by_a_full_disk_never_takes_the_next_one_with_it(tmp_path: Path) -> None:
    path = tmp_path / "metrics"
    code = (
        "import os, resource, hyperctl\n"
        "hyperctl.report(loss=1)\n"
        "_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize({str(path)!r}) + 10, hard))\n"
        "hyperctl.report(loss=2)  # cut after 10 bytes: the file is full\n"
        "hyperctl.report(loss=3)  # nothing written\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # room again\n"
        "hyperctl.report(loss=4)\n"
        "print('went on')\n"
    )
    env = {**os.environ, "HYPERCTL_METRICS_FILE": str(path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)

    assert (done.returncode, done.stdout) == (0, "went on\n"), done.stderr
    reading = read_new(path.read_bytes())
    assert [(p.step, p.values) for p in reading.points] == [(0, {"loss": 1.0}), (3, {"loss": 4.0})]
    assert reading.skipped == 1  # the cut line, alone


def test_a_metrics_file_made_a_fifo_never_holds_the_daemon(runs: Runs, tmp_path: Path, batches: Path) -> None:
    gate = tmp_path / "gate"
    doc = batch("api", job("j", wait_for_file(gate)), daemon={"port": 0, "exit_on_finish": False})
    _, portal, token = runs.serve(doc)
    mine = Tokens(token).for_job("j")
    wait_for(lambda: hyperctl("job", "list", "api", "--json").stdout.count('"running"') == 1, "j to run")
    os.mkfifo(attempt_dir(batches, "api", "j") / "metrics")  # no one reads it: an open to write it waits

    status, answer = post(portal, "j", mine, b'{"loss": 1}')

    assert status == 503 and "not a regular file" in answer["error"], answer
    assert hyperctl("job", "list", "api", "--json").returncode == 0  # the daemon answers still
    gate.touch()


def test_an_attempt_0_or_not_a_number_is_refused_naming_it_never_read_as_the_last(
    tmp_path: Path, batches: Path
) -> None:
    from hyperctl import Batch
    from hyperctl.errors import HyperctlError

    run_shell(tmp_path, "echo '{\"loss\": 1}' >> $HYPERCTL_METRICS_FILE")
    job0 = Batch("b")["j0"]

    for attempt in (0, -1, "1", 1.0, True):
        with pytest.raises(HyperctlError, match=r"attempt"):
            job0.metrics(attempt=attempt)  # type: ignore[arg-type]
    assert len(job0.metrics(attempt=1)) == 1


def test_batch_compare_takes_one_string_as_the_command_s_options_do(tmp_path: Path, batches: Path) -> None:
    from hyperctl import Batch

    report = "echo '{\"loss\": %d}' >> $HYPERCTL_METRICS_FILE"
    run_shell(tmp_path, report % 1, report % 2)

    rows = Batch("b").compare("loss,min loss as least", sort="-loss", where="loss>0")

    assert rows.columns == ["name", "loss", "least"]
    assert [(r["name"], r["loss"]) for r in rows] == [("j1", 2.0), ("j0", 1.0)]


def test_a_progress_too_small_for_any_eta_shows_no_eta_and_breaks_no_view(tmp_path: Path, batches: Path) -> None:
    from tests.test_progress import rows, waiting

    gate = tmp_path / "gate"
    doc = {"name": "b", "daemon": {"port": 0}, "jobs": [{"name": "j", "execution": waiting("5e-324", gate)}]}
    started = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)), "--detach")
    assert started.returncode == 0, started.stderr
    try:
        listed = wait_for(lambda: rows("b")["j"].get("PROGRESS") == "0%" or None, "j's progress in job list")

        described = hyperctl("job", "describe", "b", "j")
        batch_described = hyperctl("batch", "describe", "b")
    finally:
        gate.touch()
    assert listed  # its time left at that pace would be infinite: none is shown
    assert described.returncode == 0 and re.search(r"^progress +0%$", described.stdout, re.M), described.stderr
    assert batch_described.returncode == 0 and not re.search(r"^ETA +\d{6}", batch_described.stdout, re.M)


def test_a_name_that_is_no_text_is_left_out_and_never_fails_the_job(tmp_path: Path, batches: Path) -> None:
    # "\ud800" is JSON, but half of a character: no store, terminal or file can hold it.
    line = '{"\\ud800": 1, "loss": 2, "\\ud83d\\ude00": 3}'
    run = run_shell(tmp_path, f"printf '%s\\n' {shlex.quote(line)} >> $HYPERCTL_METRICS_FILE")

    assert run.returncode == 0, run.stderr
    assert job_metrics("j0") == [{"step": 0, "loss": 2.0, "\U0001f600": 3.0}]
    with pytest.raises(ValueError, match=r"^the point\.'\\ud800': not a metric name"):
        lines_from_body({"\ud800": 1}, 0.0)


def test_compare_shows_a_metric_name_s_control_characters_as_escapes(tmp_path: Path, batches: Path) -> None:
    line = json.dumps({"step": 0, "a\nb": 1, "\u001b[31mred": 2})
    run_shell(tmp_path, f"printf '%s\\n' {shlex.quote(line)} >> $HYPERCTL_METRICS_FILE")

    shown = hyperctl("compare", "b", env={"COLUMNS": "200"})

    assert shown.returncode == 0, shown.stderr
    header, *rows = shown.stdout.splitlines()
    assert header.split()[-2:] == ["\\x1b[31mred", "a\\x0ab"] and len(rows) == 1
    assert "\x1b" not in shown.stdout


def test_compare_s_error_naming_the_metrics_stays_one_line(tmp_path: Path, batches: Path) -> None:
    line = json.dumps({"step": 0, "a\nb": 1, "\u001b[31mred": 2})
    run_shell(tmp_path, f"printf '%s\\n' {shlex.quote(line)} >> $HYPERCTL_METRICS_FILE")

    refused = hyperctl("compare", "b", "-c", "nosuch")

    assert refused.returncode == 2
    assert refused.stderr.endswith("metrics: \\x1b[31mred, a\\x0ab)\n") and len(refused.stderr.splitlines()) == 1


def test_the_api_refuses_a_point_longer_than_a_line_the_daemon_reads() -> None:
    with pytest.raises(ValueError, match=r"^\[1\]: \d+ bytes as a line: at most 1048576"):
        lines_from_body([{"loss": 1}, {f"m{i}": i for i in range(100_000)}], 0.0)


def test_report_says_when_a_point_is_too_long_to_be_read_and_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "metrics"
    code = "import hyperctl\nhyperctl.report(**{f'm{i}': i for i in range(100_000)})\nhyperctl.report(loss=1)\n"
    env = {**os.environ, "HYPERCTL_METRICS_FILE": str(path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)

    assert done.returncode == 0 and "the daemon reads lines of 1048576 at most" in done.stderr
    assert [(p.step, p.values) for p in read_new(path.read_bytes()).points] == [(1, {"loss": 1.0})]


REMOTE_ROOT = f".hyperctl-test-adversarial-{os.getpid()}"


@pytest.fixture(scope="module")
def hosts() -> Iterator[list[Host]]:
    with hosts_for_module(1, REMOTE_ROOT) as found:
        yield found


def test_a_remote_job_s_metrics_file_made_a_fifo_never_holds_a_request(
    hosts: list[Host], shared: Path, batches: Path
) -> None:
    gate = shared / "gate"
    doc = remote_batch(
        hosts,
        [
            remote_job(
                f'F="$HYPERCTL_METRICS_FILE"; rm -f "$F"; mkfifo "$F"; while [ ! -e {gate} ]; do sleep 0.05; done',
                name="m",
            )
        ],
        remote_root=REMOTE_ROOT,
    )
    run = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(write_json(shared / "b.json", doc))],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        portal = wait_for_portal(run)
        wait_for(lambda: '"running"' in hyperctl("job", "list", "r", "--json").stdout, "the remote job to run")
        mine = Tokens(batch_token(batches, "r")).for_job("m")

        status, answer = post(portal, "m", mine, b'{"loss": 1}')

        assert status == 503 and "not a regular file" in answer["error"], answer
    finally:
        gate.touch()
    assert run.wait(timeout=30) == 0, run.communicate()[1]


def test_wait_refuses_a_timeout_that_is_no_number_of_seconds_naming_it(tmp_path: Path, batches: Path) -> None:
    from hyperctl import Batch

    run_shell(tmp_path, "true")
    batch_ = Batch("b")

    for timeout in (float("nan"), -5, "3", True):
        with pytest.raises(ValueError, match=r"^timeout: must be seconds"):
            batch_.wait(timeout=timeout)  # type: ignore[arg-type]
    assert batch_.wait(timeout=0) == "finished"


def test_a_metrics_file_rewritten_instead_of_appended_to_is_said_once(tmp_path: Path, batches: Path) -> None:
    rewrites = (
        'echo \'{"loss": 10}\' > "$HYPERCTL_METRICS_FILE"; sleep 1.5;'  # `>`, where `>>` is meant
        ' echo \'{"loss": 2}\' > "$HYPERCTL_METRICS_FILE"; sleep 1.5;'
        ' echo \'{"loss": 3}\' > "$HYPERCTL_METRICS_FILE"'
    )

    run = run_shell(tmp_path, rewrites)

    assert run.returncode == 0, run.stderr
    assert run.stderr.count("its metrics file shrank") == 1, run.stderr
    assert "it is appended to (>>), never rewritten" in run.stderr
    assert job_metrics("j0")[0] == {"step": 0, "loss": 10.0}  # what was read before stays
