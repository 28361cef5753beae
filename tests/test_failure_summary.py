"""Why jobs failed, said where the user looks: a line above the progress bar as each attempt fails,
and the last lines of the failed jobs' stderr in the summary (and in `run --json`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import attempt_dir, hyperctl, run_on_terminal, write_json


def batch(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": "b", "jobs": jobs, "daemon": {"port": 0}, "backend": {"conf": {"cpu": 1}}}


def failing(name: str, **fields: Any) -> dict[str, Any]:
    """Prints seven numbered lines on stderr, then exits 1."""
    command = f'for i in 1 2 3 4 5 6 7; do echo "{name} says $i" >&2; done; exit 1'
    return {"name": name, "params": {}, "execution": {"command": command}, **fields}


def test_the_summary_shows_the_end_of_the_stderr_of_three_failed_jobs_and_counts_the_rest(
    tmp_path: Path, batches: Path
) -> None:
    names = ["f1", "f2", "f3", "f4", "f5"]
    jobs = [failing(n) for n in names[:4]] + [failing("f5", max_retries=1)]
    config = write_json(tmp_path / "b.json", batch([{"name": "ok", "execution": {"command": "true"}}, *jobs]))

    result = hyperctl("run", "--config", str(config), "--json")

    assert result.returncode == 1
    before, summary = result.stderr.split("hyperctl: batch b failed in ", 1)
    # As they happened (plain lines off a terminal), each failed attempt with where its stderr is.
    for name in names:
        stderr = attempt_dir(batches, "b", name) / "stderr"
        assert f"hyperctl: {name}: failed (exit 1); stderr: {stderr}\n" in before or name == "f5"
    stderr = attempt_dir(batches, "b", "f5", 1) / "stderr"
    assert f"hyperctl: f5 attempt 1: failed (exit 1); it will run again (max_retries); stderr: {stderr}\n" in before
    assert f"hyperctl: f5: failed (exit 1); stderr: {attempt_dir(batches, 'b', 'f5', 2) / 'stderr'}\n" in before
    assert "hyperctl: ok" not in before  # nothing named of a job that succeeded
    # In the summary: the last five lines of three, the two others counted, with how to see theirs.
    for name in names[:3]:
        shown = "".join(f"    | {name} says {i}\n" for i in range(3, 8))
        assert f"  {name}: last lines of its stderr:\n{shown}" in summary
        assert f"{name} says 2" not in summary
    assert "f4 says" not in summary and "f5 says" not in summary
    assert "  2 more failed jobs; the stderr of each: hyperctl job logs b JOB --stderr\n" in summary
    # And for scripts, on stdout, as JSON.
    out = json.loads(result.stdout)
    assert [(f["name"], f["how"], f["tail"]) for f in out["failures"]] == [
        (name, "failed (exit 1)", [f"{name} says {i}" for i in range(3, 8)]) for name in names[:3]
    ]
    assert out["failures"][0]["stderr"] == str(attempt_dir(batches, "b", "f1") / "stderr")
    assert out["failures_more"] == 2


def test_failures_named_as_they_happen_are_bounded(tmp_path: Path, batches: Path) -> None:
    jobs = [{"name": f"j{i:02d}", "execution": {"command": "exit 2"}} for i in range(25)]
    config = write_json(tmp_path / "b.json", batch(jobs))

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 1
    named = [line for line in result.stderr.splitlines() if line.endswith("/stderr")]
    assert len(named) == 20 and named[0].startswith("hyperctl: j00: failed (exit 2); stderr: ")
    assert "hyperctl: the next failed attempts are counted, not named (after 20)\n" in result.stderr
    assert "\n  5 more failed attempts than were named while it ran\n" in result.stderr


def test_a_failure_is_named_above_the_bar_on_a_terminal(tmp_path: Path, batches: Path) -> None:
    jobs = [{"name": "bad", "execution": {"command": "echo boom >&2; exit 4"}}]
    config = write_json(tmp_path / "b.json", batch(jobs))

    code, screen = run_on_terminal("run", "--config", str(config))

    assert code == 1
    stderr = attempt_dir(batches, "b", "bad") / "stderr"
    # The bar's line is cleared, the failure written on it, and the bar drawn again below.
    assert f"\r\x1b[Khyperctl: bad: failed (exit 4); stderr: {stderr}\r\n\r\x1b[K[" in screen
    assert "  bad: last lines of its stderr:\r\n    | boom\r\n" in screen


def test_a_job_s_stderr_cannot_drive_the_terminal_through_the_summary(tmp_path: Path, batches: Path) -> None:
    """Escape sequences in a failed job's stderr (retitle, clear, recolour) are shown, not sent."""
    command = r'printf "\033]0;PWNED\007\033[2J\033[31mred\n" >&2; exit 1'
    config = write_json(tmp_path / "b.json", batch([{"name": "esc", "execution": {"command": command}}]))

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 1
    assert "    | \\x1b]0;PWNED\\x07\\x1b[2J\\x1b[31mred\n" in result.stderr
    assert "\033" not in result.stderr.split("last lines of its stderr", 1)[1]
