"""The cases of bench/run.py: each runs hyperctl and its peers on the same work, in the same run.

A case returns Rows (what the report's table shows) and its raw figures (for --json). Times are
medians of several runs, taken round-robin between the tools so drift hits them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import compare_scale
import dashboard
import hypernets_peer
import idle_cpu
import local_throughput
import metrics_ingest
import report_speed
import ssh_throughput
from common import BenchError, hyperctl, run_cli, run_detached, settle, wait_for


@dataclass
class Row:
    """One line of the report: a measured figure beside its peers and its goal."""

    case: str
    hyperctl: str
    peers: str = "-"
    ratio: str = "-"
    goal: str = "-"
    met: bool | None = None  # None: nothing to meet (a figure given for the record)


@dataclass
class Outcome:
    rows: list[Row]
    figures: dict[str, Any] = field(default_factory=dict)


def median_time(cmd: list[str], repeat: int, **kwargs: Any) -> float:
    """Median wall seconds of cmd (it must exit 0), its output thrown away."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_measured(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of cmd, which must exit 0: wait4 gives the child's own peak."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(cmd[2:6])} ... exited {proc.returncode}: {err.decode()[-400:]}")
    return took, usage.ru_maxrss


def true_batch(path: Path, name: str, jobs: int, slots: int, command: str = "true") -> Path:
    doc = {
        "name": name,
        "jobs": [{"params": {}, "execution": {"command": command}} for _ in range(jobs)],
        "backend": {"type": "local", "conf": {"cpu": slots}},
        "daemon": {"port": 0},
    }
    path.write_text(json.dumps(doc))
    return path


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


# -- local throughput and one job end to end -----------------------------------------------
def local(quick: bool, tmp: Path, hypernets: Path | None = None) -> Outcome:
    """hypernets: the `hyperctl` of Hypernets 0.3.2, run as one more peer (run.py --hypernets)."""
    args = argparse.Namespace(jobs=300 if quick else 1000, slots=2, repeat=1 if quick else 5)
    parallel = local_throughput.gnu_parallel()
    extra = hypernets_peer.runners(hypernets, tmp, args.jobs, args.slots) if hypernets else {}
    times = local_throughput.measure(args, tmp, parallel, extra)
    hypernets_s = {name: statistics.median(times.pop(name)) for name in extra}
    result = local_throughput.summarize(args, times, parallel)
    tools = result["tools"]
    ours, xargs = tools[local_throughput.HYPERCTL]["median_s"], tools[local_throughput.XARGS]["median_s"]
    theirs = tools.get(local_throughput.PARALLEL, {}).get("median_s")
    xargs_sh = tools[local_throughput.XARGS_SH]["median_s"]
    peers = f"xargs -P 2: {fmt_s(xargs)}; xargs sh -c: {fmt_s(xargs_sh)}"
    ratio = f"{ours / xargs:.2f} × xargs"
    if theirs is not None:
        peers += f"; GNU parallel -j 2: {fmt_s(theirs)}"
        ratio += f"; {ours / theirs:.2f} × parallel"
    one = tools[local_throughput.HYPERCTL_1]["median_s"]
    n = args.jobs
    rows = [
        Row(
            f"local throughput: {n} × `true`, 2 slots",
            f"{fmt_s(ours)} ({n / ours:.0f} jobs/s)",
            peers,
            ratio,
            "≤ 1.3 × xargs, and below GNU parallel",
            ours <= 1.3 * xargs and (theirs is None or ours < theirs),
        ),
        Row("one `true` job end to end (`hyperctl run`, start to exit)", fmt_s(one), goal="≤ 0.4 s", met=one <= 0.4),
    ]
    if hypernets_s:
        rows += hypernets_rows(n, ours, one, hypernets_s)
        result["hypernets"] = {"median_s": hypernets_s, "jobs_at_default_interval": hypernets_peer.DEFAULT_JOBS}
    return Outcome(rows, result)


def hypernets_rows(n: int, ours: float, one: float, theirs: dict[str, float]) -> list[Row]:
    """Hypernets' runs beside ours from the same rounds. Its local backend runs one job at a time whatever the
    machine, and starts or reaps a job only at a scheduler tick (a job costs about two ticks)."""
    hn = hypernets_peer
    few, fast, slow = theirs[hn.HYPERCTL_FEW], theirs[hn.ONE_MS], theirs[hn.DEFAULT]
    one_fast, one_slow, k = theirs[hn.ONE_MS_1], theirs[hn.DEFAULT_1], hn.DEFAULT_JOBS
    them = f"Hypernets hyperctl {hn.VERSION}"

    def per_job(total: float, first: float, jobs: int) -> str:  # each job after the first: start-up left out
        each = (total - first) / (jobs - 1)
        return f"{each * 1000:.1f} ms per further job" if each < 1 else f"{fmt_s(each)} per further job"

    return [
        Row(
            f"local throughput vs {them} at a 1 ms scheduler interval: {n} × `true`, 2 slots",
            f"{fmt_s(ours)} ({n / ours:.0f} jobs/s; {per_job(ours, one, n)})",
            f"Hypernets: {fmt_s(fast)} ({n / fast:.0f} jobs/s, one at a time; {per_job(fast, one_fast, n)})",
            f"{fast / ours:.1f} × faster",
        ),
        Row(
            f"local throughput vs {them} at its default 5 s interval: {k} × `true`, 2 slots",
            f"{fmt_s(few)} ({k / few:.0f} jobs/s)",
            f"Hypernets: {fmt_s(slow)} ({k / slow:.2f} jobs/s, one at a time; {per_job(slow, one_slow, k)})",
            f"{slow / few:.0f} × faster",
        ),
        Row(
            f"one `true` job end to end vs {them} (`hyperctl run`, start to exit)",
            fmt_s(one),
            f"Hypernets: {fmt_s(one_slow)} at its default interval, {fmt_s(one_fast)} at 1 ms",
            f"{one_slow / one:.0f} × faster (5 s); {one_fast / one:.1f} × faster (1 ms)",
        ),
    ]


# -- SSH throughput ----------------------------------------------------------------------
def ssh(quick: bool, tmp: Path) -> Outcome:
    if os.geteuid() != 0 or not os.path.exists("/usr/sbin/sshd"):
        return Outcome([Row("SSH throughput", "not run: needs root and openssh-server")])
    from tests.sshhosts import ssh_hosts

    jobs, repeat = 200, 1 if quick else 5
    os.chmod(tmp, 0o755)
    (tmp / "hosts").mkdir()
    ours, ones, theirs = [], [], []
    with ssh_hosts(2, tmp / "hosts") as hosts:
        for n in range(repeat):
            settle()
            ones.append(ssh_throughput.run_hyperctl(hosts, 1, tmp, f"one-{n}"))
            settle()
            ours.append(ssh_throughput.run_hyperctl(hosts, jobs, tmp, n))
            settle()
            other = ssh_throughput.run_parallel(hosts, jobs)
            if other is not None:
                theirs.append(other)
    t, one = statistics.median(ours), statistics.median(ones)
    per_job = (t - one) / (jobs - 1)
    peers, ratio = "GNU parallel: not installed", "-"
    if theirs:
        p = statistics.median(theirs)
        peers, ratio = f"GNU parallel --sshlogin: {fmt_s(p)} ({jobs / p:.0f} jobs/s)", f"{p / t:.1f} × faster"
    return Outcome(
        [
            Row(
                f"SSH throughput: {jobs} × `true`, 2 hosts × 4 slots",
                f"{fmt_s(t)} = {jobs / t:.0f} jobs/s with start-up; {per_job * 1000:.1f} ms per further job "
                f"({1 / per_job:.0f} jobs/s)",
                peers,
                ratio,
                "≥ 150 jobs/s (≤ 7 ms per job)",
                jobs / t >= 150,
            )
        ],
        {"runs_s": ours, "one_job_s": ones, "parallel_s": theirs, "per_job_ms": per_job * 1000},
    )


# -- the job-params API under load --------------------------------------------------------
class DetachedBatch:
    """A batch started with `run --detach`, killed at the end whatever happens."""

    def __init__(self, tmp: Path, name: str, jobs: int, command: str) -> None:
        self.batches = tmp / "batches"
        self.name = name
        self.config = true_batch(tmp / f"{name}.json", name, jobs, jobs, command)

    def __enter__(self) -> DetachedBatch:
        run_detached(self.batches, self.config)
        self.internal = self.batches / self.name / ".hyperctl"
        return self

    def __exit__(self, *_: object) -> None:
        run_cli(hyperctl(self.batches, "batch", "kill", self.name), timeout=60)

    @property
    def portal(self) -> str:
        import sqlite3

        with sqlite3.connect(f"file:{self.internal / 'state.db'}?mode=ro", uri=True) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'portal'").fetchone()
        return str(json.loads(row[0])) if row else ""

    @property
    def token(self) -> str:
        from hyperctl.daemon.auth import read_token
        from hyperctl.layout import BatchDir

        token = read_token(BatchDir(self.batches, self.name))  # kept outside the batch folder
        if token is None:
            raise BenchError(f"batch {self.name}: no token")
        return token

    @property
    def first_job(self) -> str:
        return first_job(self.batches, self.name)


def first_job(batches: Path, batch: str) -> str:
    """The name hyperctl gave the batch's first (unnamed) job."""
    import sqlite3

    with sqlite3.connect(f"file:{batches / batch / '.hyperctl' / 'state.db'}?mode=ro", uri=True) as db:
        return str(db.execute("SELECT name FROM jobs ORDER BY position LIMIT 1").fetchone()[0])


# The framework's floors: a RequestHandler, and a bare connection delegate (what hyperctl's
# fast path for a job's own view stands on), each answering a fixed body. argv[1] picks one.
_BARE_TORNADO = """
import asyncio, sys, tornado.httpserver, tornado.httputil, tornado.netutil, tornado.web
BODY = b'{"name": "job-0000", "params": {}}'
class Hello(tornado.web.RequestHandler):
    def compute_etag(self):
        return None
    def get(self):
        self.finish(BODY)
class Answer(tornado.httputil.HTTPMessageDelegate):
    def __init__(self, conn):
        self.conn = conn
    def finish(self):
        headers = tornado.httputil.HTTPHeaders({"Content-Type": "application/json", "Content-Length": str(len(BODY))})
        self.conn.write_headers(tornado.httputil.ResponseStartLine("HTTP/1.1", 200, "OK"), headers, BODY)
        self.conn.finish()
class Delegate(tornado.httputil.HTTPServerConnectionDelegate):
    def start_request(self, server_conn, request_conn):
        return Answer(request_conn)
async def main():
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    handler = tornado.web.Application([(r"/", Hello)], log_function=lambda h: None)
    server = tornado.httpserver.HTTPServer(Delegate() if sys.argv[1] == "delegate" else handler)
    server.add_sockets(sockets)
    print(sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def api(quick: bool, tmp: Path) -> Outcome:
    """hyperctl's API under wrk, beside a bare Tornado app answering a fixed body: the floor of the
    framework on this machine."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return Outcome([Row("job-params API", "not run: wrk is not installed (apt-get install -y wrk)")])
    seconds = 3 if quick else 10

    def load(url: str, token: str) -> dict[str, float]:
        out = subprocess.run(
            [wrk, "-t2", "-c64", f"-d{seconds}s", "--latency", "-H", f"Authorization: Bearer {token}", url],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        p99 = _wrk_ms(re.search(r"99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
        errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s*(\d+)", out))
        errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
        return {"rate": rate, "p99_ms": p99, "errors": errors}

    with DetachedBatch(tmp, "bench-api", 1, "sleep 600") as batch:
        wait_for("the API", lambda: bool(batch.portal), within=30)
        url = f"{batch.portal}/hyperctl/api/job/{batch.first_job}"
        # One request first: the daemon loads Tornado at its first connection (~50 ms, once);
        # the load measures the steady state, as the floors below are measured warm.
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {batch.token}"})
        urllib.request.urlopen(request, timeout=30).read()
        settle()
        ours = load(url, batch.token)
    floors = {}
    for kind in ("handler", "delegate"):
        bare = subprocess.Popen([sys.executable, "-c", _BARE_TORNADO, kind], stdout=subprocess.PIPE, text=True)
        try:
            assert bare.stdout is not None
            port = int(bare.stdout.readline())
            settle()
            floors[kind] = load(f"http://127.0.0.1:{port}/", "x")
        finally:
            bare.kill()
            bare.wait()
    rate, p99, errors = ours["rate"], ours["p99_ms"], ours["errors"]
    handler, delegate = floors["handler"], floors["delegate"]
    return Outcome(
        [
            Row(
                f"job-params API: 64 clients, {seconds} s (wrk)",
                f"{rate:.0f} req/s, p99 {p99:.1f} ms, {errors:.0f} errors",
                f"bare Tornado, fixed body: connection delegate {delegate['rate']:.0f} req/s,"
                f" p99 {delegate['p99_ms']:.1f} ms; RequestHandler {handler['rate']:.0f} req/s,"
                f" p99 {handler['p99_ms']:.1f} ms",
                f"{rate / delegate['rate']:.2f} × the delegate's rate; {rate / handler['rate']:.2f} × the handler's",
                "≥ 3,000 req/s, p99 < 10 ms, 0 errors",
                rate >= 3000 and p99 < 10 and errors == 0,
            )
        ],
        {"hyperctl": ours, "bare_tornado": handler, "bare_tornado_delegate": delegate},
    )


def _wrk_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


# -- job-side start-up ------------------------------------------------------------------------
_JOBSIDE = """
import json, statistics, subprocess, sys, time
def t(code):
    runs = []
    for _ in range({n}):
        s = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        runs.append(time.perf_counter() - s)
    return statistics.median(runs)
print(json.dumps({{"api": t("import hyperctl; hyperctl.get_job_params()"), "pass": t("pass")}}))
"""


def jobside(quick: bool, tmp: Path) -> Outcome:
    script = tmp / "jobside.py"
    script.write_text(_JOBSIDE.format(n=5 if quick else 21))
    batches = tmp / "batches"
    config = true_batch(tmp / "jobside.json", "bench-jobside", 1, 1, f"{sys.executable} {script}")
    code, _, err = run_cli(hyperctl(batches, "run", "--config", str(config)))
    if code != 0:
        raise BenchError(f"the job-side batch failed: {err}")
    records = batches / "bench-jobside" / ".hyperctl" / "jobs" / first_job(batches, "bench-jobside")
    found = json.loads((records / "attempt-1" / "stdout").read_text())
    extra = found["api"] - found["pass"]
    return Outcome(
        [
            Row(
                "job-side start-up: `import hyperctl; get_job_params()` in a job",
                f"{extra * 1000:.1f} ms over `python -c pass`",
                f"python -c pass: {fmt_s(found['pass'])}",
                goal="≤ 30 ms",
                met=extra <= 0.030,
            )
        ],
        found,
    )


# -- CLI start-up ---------------------------------------------------------------------------
def cli(quick: bool, tmp: Path) -> Outcome:
    repeat = 5 if quick else 11
    python = median_time([sys.executable, "-c", "pass"], repeat)
    helped = median_time([sys.executable, "-m", "hyperctl", "--help"], repeat)
    jobs = 2000 if quick else 10_000
    batches = tmp / "batches"
    config = true_batch(tmp / "listed.json", "bench-list", jobs, 2)
    code, _, err = run_cli(hyperctl(batches, "run", "--config", str(config)), timeout=900)
    if code != 0:
        raise BenchError(f"the {jobs}-job batch failed: {err}")
    listed = median_time(hyperctl(batches, "job", "list", "-b", "bench-list"), repeat)
    as_json = median_time(hyperctl(batches, "job", "list", "-b", "bench-list", "--json"), repeat)
    return Outcome(
        [
            Row(
                "CLI start-up: `hyperctl --help`",
                fmt_s(helped),
                f"python -c pass: {fmt_s(python)}",
                goal="≤ 150 ms",
                met=helped <= 0.150,
            ),
            Row(
                f"`hyperctl job list` of a {jobs:,}-job batch",
                f"{fmt_s(listed)} (--json: {fmt_s(as_json)})",
                goal="≤ 300 ms",
                met=listed <= 0.300,
            ),
        ],
        {"python_s": python, "help_s": helped, "job_list_s": listed, "job_list_json_s": as_json, "jobs": jobs},
    )


# -- scale ------------------------------------------------------------------------------------
def scale(quick: bool, tmp: Path, reference_jobs_per_s: Callable[[], float]) -> Outcome:
    jobs = 10_000 if quick else 100_000
    template = tmp / "grid.yml"
    template.write_text(
        f"name: bench-scale\nparams:\n  a: {list(range(100))}\n  b: {list(range(jobs // 100))}\n"
        "execution:\n  command: 'true'\nbackend: {type: local, conf: {cpu: 2}}\ndaemon: {port: 0}\n"
    )
    batch_file = tmp / "grid.json"
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "hyperctl", "generate", "--template", str(template), "--output", str(batch_file)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    generated = time.perf_counter() - start
    settle()
    took, rss_kib = run_measured(hyperctl(tmp / "batches", "run", "--config", str(batch_file)))
    internal = tmp / "batches" / "bench-scale" / ".hyperctl"
    db_bytes = sum(p.stat().st_size for p in internal.glob("state.db*"))
    rate, reference = jobs / took, reference_jobs_per_s()
    drop = 1 - rate / reference
    return Outcome(
        [
            Row(f"scale: generate a {jobs:,}-job grid", fmt_s(generated), goal="≤ 2 s", met=generated <= 2),
            Row(
                f"scale: run {jobs:,} × `true`, 2 slots",
                f"{rate:.0f} jobs/s",
                f"1,000 jobs: {reference:.0f} jobs/s",
                f"{rate / reference:.2f} ×",
                "within 20 %",
                drop <= 0.20,
            ),
            Row("scale: daemon peak RSS", f"{rss_kib / 1024:.0f} MB", goal="≤ 300 MB", met=rss_kib <= 300 * 1024),
            Row("scale: SQLite file", f"{db_bytes / 2**20:.1f} MB ({db_bytes / jobs:.0f} B per job)"),
        ],
        {"jobs": jobs, "generate_s": generated, "run_s": took, "rss_kib": rss_kib, "db_bytes": db_bytes},
    )


def local_reference(tmp: Path) -> float:
    """Jobs per second of a 1,000-job `true` batch on 2 slots (when the local case did not run)."""
    config = true_batch(tmp / "ref.json", "bench-ref", 1000, 2)
    took, _ = run_measured(hyperctl(tmp / "ref-batches", "run", "--config", str(config)))
    return 1000 / took


# -- idle cost -----------------------------------------------------------------------------
def idle(quick: bool, tmp: Path) -> Outcome:
    result = idle_cpu.measure(argparse.Namespace(jobs=100, seconds=5.0 if quick else 10.0), tmp)
    percent = result["cpu_percent_of_one_core"]
    return Outcome(
        [
            Row(
                "idle cost: daemon CPU while 100 `sleep 60` jobs run",
                f"{percent:.2f} % of one core, {result['wakeups_per_s']:.1f} wake-ups/s",
                goal="≤ 1 % of one core",
                met=percent <= 1.0,
            )
        ],
        result,
    )


def ingest(quick: bool, tmp: Path) -> Outcome:
    seconds = 5.0 if quick else 10.0
    r = metrics_ingest.measure(argparse.Namespace(jobs=100, rate=1000, seconds=seconds), tmp)
    goal = r["goal"]
    return Outcome(
        [
            Row(
                "metrics ingest: daemon CPU while 100 jobs each report 1,000 points/s (3 metrics)",
                f"{r['cpu_percent_of_one_core']:.1f} % of one core; in the store within {r['lag_p50_s']:.2f} s"
                f" (p99 {r['lag_p99_s']:.2f} s, max {r['lag_max_s']:.2f} s);"
                f" {r['points_stored']:,} of {r['points_reported']:,} points stored",
                goal=f"≤ {goal['cpu_percent_max']:g} % of one core, within {goal['lag_max_s']:g} s, none lost",
                met=goal["met"],
            )
        ],
        r,
    )


# -- output ----------------------------------------------------------------------------------
def output(quick: bool, tmp: Path) -> Outcome:
    size = 100_000_000
    write = f"head -c {size} /dev/zero"
    disk = tmp / "plain.out"
    start = time.perf_counter()
    subprocess.run(["sh", "-c", f"{write} > {disk}"], check=True)
    plain = time.perf_counter() - start
    disk.unlink()
    base_s, baseline_kib = run_measured(
        hyperctl(tmp / "b0", "run", "--config", str(true_batch(tmp / "o0.json", "o0", 1, 1)))
    )
    took, rss_kib = run_measured(
        hyperctl(tmp / "b1", "run", "--config", str(true_batch(tmp / "o1.json", "o1", 1, 1, write)))
    )
    job_s = took - base_s  # the run less what a one-job batch costs anyway
    grown = (rss_kib - baseline_kib) / 1024
    return Outcome(
        [
            Row(
                "output: one job writing 100 MB to stdout",
                f"{fmt_s(job_s)} beyond a 1-job batch; daemon peak RSS {grown:+.1f} MB over it",
                f"`{write} > file`: {fmt_s(plain)}",
                f"{job_s / plain:.2f} ×",
                "at disk speed (≤ 1.5 ×); daemon RSS unchanged (± 5 MB)",
                job_s <= 1.5 * plain and abs(grown) < 5,
            )
        ],
        {"hyperctl_s": took, "plain_s": plain, "rss_kib": rss_kib, "baseline_rss_kib": baseline_kib},
    )


# -- reporting metrics ------------------------------------------------------------------------
def report(quick: bool, tmp: Path) -> Outcome:
    found = report_speed.figures(quick)
    ours = found["hyperctl"]
    peers, fastest = [], None
    for tool in report_speed.TOOLS[1:]:
        theirs = found[tool]
        if "error" in theirs:
            peers.append(f"{tool}: not measured ({theirs['error']})")
        else:
            peers.append(f"{tool}: {theirs['median_us']:.0f} µs, {theirs['calls_per_s']:,.0f}/s")
            if fastest is None or theirs["median_us"] < found[fastest]["median_us"]:
                fastest = tool
    return Outcome(
        [
            Row(
                "reporting: `hyperctl.report()` of 3 metrics in a job (median per call; calls/s from one process)",
                f"{ours['median_us']:.1f} µs; {ours['calls_per_s']:,.0f} calls/s",
                "; ".join(peers),
                f"{found[fastest]['median_us'] / ours['median_us']:.0f} × faster than {fastest}" if fastest else "-",
                goal="≤ 20 µs, ≥ 50,000 calls/s",
                met=ours["median_us"] <= 20 and ours["calls_per_s"] >= 50_000,
            )
        ],
        found,
    )


# -- comparing --------------------------------------------------------------------------------
def compare(quick: bool, tmp: Path) -> Outcome:
    """`hyperctl compare` of a 100,000-job and a 1,000-job batch, 3 metrics each (compare_scale.py)."""
    sizes = {100_000: 1.0, 1000: 0.2} if not quick else {10_000: 1.0, 1000: 0.2}
    found = compare_scale.measure(list(sizes), 3 if quick else 5, tmp)
    rows = []
    for jobs, goal in sizes.items():
        f = found[jobs]
        rows.append(
            Row(
                f"compare: a {jobs:,}-job batch, 3 metrics each (read, sort by one, every row)",
                f"{fmt_s(f['compare_s'])} in-process; CLI {fmt_s(f['cli_s'])} printing every row,"
                f" {fmt_s(f['cli_top_s'])} with --top 10, {fmt_s(f['csv_s'])} --csv;"
                f" IOLoop stall ≤ {fmt_s(f['loop_stall_s'])} (API, in a thread)",
                goal=f"≤ {fmt_s(goal)}",
                met=f["compare_s"] <= goal,
            )
        )
    return Outcome(rows, {str(k): v for k, v in found.items()})


# -- the dashboard ----------------------------------------------------------------------------------
def web(quick: bool, tmp: Path) -> Outcome:
    """The dashboard in headless Chromium (dashboard.py): a 10,000-job batch's page, a job's end
    seen on an open page while 100 jobs end a second, an open page's cost to an idle daemon."""
    jobs = 2000 if quick else 10_000
    f = dashboard.measure(jobs, 300, tmp)
    rows = [
        Row(
            f"dashboard: the page of a {jobs:,}-job batch (first paint; a sort of its table)",
            f"first paint {fmt_s(f['paint_first_s'])} (reloads {fmt_s(f['paint_s'])}); sort {fmt_s(f['sort_s'])}",
            goal="≤ 1.00 s; sort ≤ 200 ms",
            met=max(f["paint_first_s"], f["paint_s"]) <= 1.0 and f["sort_s"] <= 0.2,
        ),
        Row(
            f"dashboard: a job's end on an open batch page, {f['end_rate_per_s']:.0f} jobs ending a second",
            f"{fmt_s(f['end_s'])} median, p95 {fmt_s(f['end_p95_s'])} ({f['ends_shown']} ends)",
            goal="≤ 500 ms (median)",
            met=f["end_s"] <= 0.5,
        ),
        Row(
            "dashboard: daemon CPU with a batch page open, nothing changing",
            f"{f['idle_percent']:.2f} % of one core",
            goal="≤ 1 % of one core",
            met=f["idle_percent"] <= 1.0,
        ),
    ]
    return Outcome(rows, f)
