"""hyperctl's benchmark suite: every case beside its peers on this machine, into docs/performance.md.

    python bench/run.py [--quick] [--only CASE ...] [--output FILE] [--json] [--hypernets]

Cases: local (1,000 x `true` vs xargs and GNU parallel; one job end to end), ssh (200 x `true` on
2 network-namespace sshd hosts vs GNU parallel --sshlogin; root), api (the job-params API under
wrk), jobside (`import hyperctl` in a job), cli (--help, `job list` of 10,000 jobs), scale (a
100,000-job grid), idle (daemon CPU beside 100 sleeping jobs), ingest (daemon CPU while 100 jobs report
1,000 points/s each), output (100 MB of stdout), report (`hyperctl.report()` in a job vs MLflow and W&B
offline: their virtualenv is built on first use), compare (`hyperctl compare` of a 100,000-job and a
1,000-job store with 3 metrics each), web (the dashboard in headless Chromium: a 10,000-job batch's
page, a job's end seen on an open page, an open page's cost to an idle daemon; needs
chromium-headless-shell and playwright, as the tests do).
--quick runs smaller and fewer. --hypernets adds the tool hyperctl replaces, Hypernets' hyperctl 0.3.2 from
PyPI, to the local case (in a virtualenv built on first use under ~/.cache/hyperctl-bench). Peers run in the
same process, pair by pair, so ratios hold even when the machine's speed drifts. Needs: xargs; optionally
GNU parallel, wrk, openssh-server.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import cases  # noqa: E402
import hypernets_peer  # noqa: E402
from common import BenchError, as_installed, settle  # noqa: E402

CASES = ("local", "ssh", "api", "jobside", "cli", "scale", "idle", "ingest", "output", "report", "compare", "web")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="hyperctl's benchmark suite, beside its peers on this machine.")
    parser.add_argument("--quick", action="store_true", help="smaller and fewer runs: a check, not the record")
    parser.add_argument("--only", nargs="+", choices=CASES, metavar="CASE", help=f"run these: {', '.join(CASES)}")
    parser.add_argument("--output", type=Path, default=HERE.parent / "docs" / "performance.md", help="the report")
    parser.add_argument("--json", action="store_true", help="also print every figure as JSON on stdout")
    parser.add_argument(
        "--hypernets",
        action="store_true",
        help=f"also run Hypernets' hyperctl {hypernets_peer.VERSION} in the local case (builds its virtualenv once)",
    )
    args = parser.parse_args(argv)
    as_installed()
    chosen = args.only or list(CASES)
    if args.hypernets and "local" not in chosen:
        parser.error("--hypernets adds a peer to the local case: add local to --only")
    hypernets = None
    if args.hypernets:
        try:
            hypernets = hypernets_peer.ensure()
        except BenchError as e:
            print(f"bench: --hypernets: {e}", file=sys.stderr)
            return 1
    rows: list[cases.Row] = []
    figures: dict[str, object] = {}
    local_rate: list[float] = []

    def reference(tmp: Path) -> Callable[[], float]:
        return lambda: local_rate[0] if local_rate else cases.local_reference(tmp)

    started = time.time()
    for name in chosen:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        os.sync()  # what the last case wrote and deleted settles before this one starts
        settle()
        tmp = Path(tempfile.mkdtemp(prefix=f"hyperctl-bench-{name}-"))
        try:
            if name == "scale":
                outcome = cases.scale(args.quick, tmp, reference(tmp))
            elif name == "local":
                outcome = cases.local(args.quick, tmp, hypernets)
            else:
                outcome = getattr(cases, name)(args.quick, tmp)
        except (BenchError, subprocess.CalledProcessError, OSError) as e:
            outcome = cases.Outcome([cases.Row(name, f"FAILED: {e}", met=False)])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if name == "local" and "tools" in outcome.figures:
            tools = outcome.figures["tools"]
            local_rate.append(tools["hyperctl"]["jobs_per_s"])
        rows += outcome.rows
        figures[name] = outcome.figures
        for row in outcome.rows:
            print(f"  {row.case}: {row.hyperctl}  [{verdict(row.met)}]", file=sys.stderr, flush=True)
    report = render(rows, args, time.time() - started) + kept_notes(args.output)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(report)
    if args.json:
        print(json.dumps(figures, default=str))
    return 0


NOTES = "## Notes"  # a hand-written section of the report, kept when the tables are measured again


def kept_notes(report: Path) -> str:
    text = report.read_text() if report.exists() else ""
    return "\n" + text[text.index(NOTES) :] if NOTES in text else ""


def verdict(met: bool | None) -> str:
    return "-" if met is None else ("yes" if met else "**no**")


def render(rows: list[cases.Row], args: argparse.Namespace, took: float) -> str:
    command = (
        "python bench/run.py"
        + (" --quick" if args.quick else "")
        + (f" --only {' '.join(args.only)}" if args.only else "")
        + (" --hypernets" if args.hypernets else "")
    )
    lines = [
        "# Performance",
        "",
        f"Measured by `{command}` on {time.strftime('%Y-%m-%d')} ({took / 60:.0f} min); each figure is the",
        "median of several runs, and each ratio compares runs made side by side in the same session.",
        "",
        "| case | hyperctl | peers | ratio | goal | met? |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = (r.case, r.hyperctl, r.peers, r.ratio, r.goal, verdict(r.met))
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", "## The machine", ""] + [f"- {k}: {v}" for k, v in machine(args.hypernets).items()]
    lines += ["", "## Reproduce", "", "```sh", "pip install -e '.[dev]'", command, "```", ""]
    return "\n".join(lines)


def machine(hypernets: bool = False) -> dict[str, str]:
    def first_line(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return "not installed"
        return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "?"

    model = "?"
    if os.path.exists("/proc/cpuinfo"):
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        model = names[0] if names else "?"
    commit = first_line(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"])
    from hyperctl import __version__

    peer = {"Hypernets hyperctl": f"{hypernets_peer.VERSION} (PyPI), in {hypernets_peer.VENV}"} if hypernets else {}
    return {
        "CPU": f"{os.cpu_count()} cores, {model}",
        "memory": f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB",
        "system": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "hyperctl": f"{__version__} (commit {commit})",
        "SQLite": sqlite3.sqlite_version,
        "xargs": first_line(["xargs", "--version"]),
        "GNU parallel": first_line(["parallel", "--version"]),
        "OpenSSH": first_line(["ssh", "-V"]),
        "wrk": first_line(["wrk", "--version"]),
        **peer,
    }


if __name__ == "__main__":
    sys.exit(main())
