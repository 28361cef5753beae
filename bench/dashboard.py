"""The dashboard in a real browser (Debian's headless Chromium driven by Playwright, as the tests do):

- the page of a 10,000-job batch served by `hyperctl ui`: its first contentful paint (the job
  table is in the HTML: that paint shows it), and a sort of its table (a click on a header, until
  the new rows are on screen);
- how soon a job's end shows on an open batch page (its counts) while 100 jobs end a second,
  served by the batch's own daemon: the time from each end the daemon recorded to the page's
  count reaching it;
- what an open page costs that daemon while nothing changes (CPU, % of one core).

    python bench/dashboard.py [--jobs 10000] [--ends 300] [--json]

This is a benchmark, not a test: it exits 1 if a goal is not met or a step fails.
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
from pathlib import Path
from typing import Any

import psutil
from common import BatchFolder, BenchError, hyperctl, standalone_tmp, sweep, wait_for

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path[:0] = [str(HERE.parent)]

import compare_scale  # noqa: E402

CHROMIUM = "/usr/lib/chromium/chromium-headless-shell"  # Debian's chromium-headless-shell (.ci/test installs it)
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]
LINK = re.compile(r"(http://\S+/login\?token=\S+)")
GOALS = {"paint_first_s": 1.0, "paint_s": 1.0, "sort_s": 0.2, "end_s": 0.5, "idle_percent": 1.0}

# Resolves, once a click on the header starting with `text` has sorted the table and the new rows
# were painted, with the milliseconds that took.
_SORT = """text => new Promise(resolve => {
  const link = [...document.querySelectorAll('th a.sort')].find(a => a.textContent.trim().startsWith(text));
  const start = performance.now();
  document.addEventListener('hyperctl:updated',
    () => requestAnimationFrame(() => setTimeout(() => resolve(performance.now() - start))), {once: true});
  link.click();
})"""
# The first frame painted after the page's HTML is parsed (headless Chromium reports no paint
# timing): the table is in the HTML, so this is when it shows.
_PAINTED = """document.addEventListener('DOMContentLoaded',
  () => requestAnimationFrame(() => setTimeout(() => { window.painted = performance.now(); })))"""
# Records the page's count of succeeded jobs each time it changes: [[Date.now() ms, count], ...].
_WATCH = """() => {
  window.seen = [];
  const read = () => {
    const found = document.querySelector('#summary .count.succeeded');
    const n = found ? parseInt(found.textContent) : 0;
    if (!window.seen.length || window.seen[window.seen.length - 1][1] !== n) window.seen.push([Date.now(), n]);
  };
  new MutationObserver(read).observe(document.getElementById('summary'), {childList: true, subtree: true});
  read();
}"""


def _job(name: str, command: str) -> dict[str, Any]:
    return {"name": name, "params": {}, "execution": {"command": command}}


def _sleep_until(when: float) -> str:
    """A shell command that sleeps until the wall-clock time `when` (however late it started)."""
    return f"sleep $(awk -v now=$(date +%s.%N) 'BEGIN {{ d = {when:.3f} - now; print (d > 0 ? d : 0) }}')"


def link_of(process: subprocess.Popen[str], stream: str) -> str:
    pipe = getattr(process, stream)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = pipe.readline()
        if not line:
            break
        found = LINK.search(line)
        if found:
            return found.group(1)
    raise BenchError(f"no login link from {process.args[2:4]} (exit {process.poll()})")


def large_batch(root: Path, jobs: int, browser: Any) -> dict[str, float]:
    """First paint and sorting of a finished batch of `jobs` jobs, served by `hyperctl ui`."""
    batches = root / "batches"
    compare_scale.build(batches, "large", jobs)
    ui = subprocess.Popen(
        hyperctl(batches, "ui", "--port", "0"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        link = link_of(ui, "stdout")
        page = browser.new_context().new_page()
        page.add_init_script(_PAINTED)
        page.goto(link)
        url = link.split("/login", 1)[0] + "/b/large"
        paints = []
        for _ in range(5):
            page.goto(url, wait_until="load")
            page.wait_for_function("window.painted !== undefined")
            paints.append(page.evaluate("window.painted"))
        sorts = [page.evaluate(_SORT, column) for column in ("acc", "acc", "loss", "name", "lr", "loss")]
        page.context.close()
        return {
            "paint_s": statistics.median(paints) / 1000,
            "paint_first_s": paints[0] / 1000,  # the first load reads the store; the next ones what was kept
            "sort_s": statistics.median(sorts) / 1000,
        }
    finally:
        ui.terminate()
        ui.wait(timeout=10)


def ending_batch(root: Path, ends: int, browser: Any) -> dict[str, Any]:
    """A batch of `ends` sleeping jobs, all running at once, that end 100 a second while its page
    is open: each end's delay to the page; then, with long jobs running, the daemon's idle cost."""
    batches = root / "batches"
    first_end = time.time() + 5 + ends / 100  # every job has started by then: they end 100 a second
    doc = {
        "name": "ending",
        "daemon": {"port": 0},
        "backend": {"type": "local", "conf": {"cpu": ends + 5}},
        "jobs": [_job(f"e{i:04}", _sleep_until(first_end + i / 100)) for i in range(ends)]
        + [_job(f"long{i}", "sleep 120") for i in range(5)],
    }
    root.mkdir(parents=True, exist_ok=True)
    config = root / "ending.json"
    config.write_text(json.dumps(doc))
    command = hyperctl(batches, "run", "--config", str(config))
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    folder = BatchFolder(batches, "ending")
    try:
        link = link_of(run, "stderr")
        page = browser.new_context().new_page()
        page.goto(link)
        page.goto(link.split("/login", 1)[0] + "/b/ending", wait_until="load")
        page.evaluate(_WATCH)
        wait_for(f"{ends} jobs to end", lambda: folder.counts().get("succeeded", 0) >= ends, within=120)
        time.sleep(1.5)  # the last ends reach the page
        seen = page.evaluate("window.seen")
        query = "SELECT ended FROM attempts WHERE job LIKE 'e%' AND status = 'succeeded'"
        ended = sorted(t for (t,) in folder.query(query))
        delays = []
        for k, end in enumerate(ended, 1):
            shown = next((t / 1000 for t, n in seen if n >= k), None)
            if shown is not None:
                delays.append(max(0.0, shown - end))
        rate = (len(ended) - 1) / (ended[-1] - ended[0]) if len(ended) > 1 else 0.0
        pid = folder.daemon_pid()
        if pid is None:
            raise BenchError("the daemon is gone")
        idle = _cpu_percent(pid, 10.0)
        page.context.close()
        return {
            "end_s": statistics.median(delays) if delays else float("inf"),
            "end_p95_s": statistics.quantiles(delays, n=20)[-1] if len(delays) > 20 else float("inf"),
            "ends_shown": len(delays),
            "end_rate_per_s": rate,
            "idle_percent": idle,
        }
    finally:
        subprocess.run(hyperctl(batches, "batch", "kill", "ending"), capture_output=True, timeout=60)
        run.wait(timeout=60)


def _cpu_percent(pid: int, seconds: float) -> float:
    process = psutil.Process(pid)
    before = process.cpu_times()
    time.sleep(seconds)
    after = process.cpu_times()
    return 100.0 * (after.user + after.system - before.user - before.system) / seconds


def measure(jobs: int, ends: int, root: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        raise BenchError(f"no browser at {CHROMIUM}: apt-get install chromium-headless-shell")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            found = large_batch(root / "large", jobs, browser)
            found.update(ending_batch(root / "ending", ends, browser))
        finally:
            browser.close()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs of the large batch (default 10000)")
    parser.add_argument("--ends", type=int, default=300, help="jobs that end 100 a second (default 300)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    root = standalone_tmp("dashboard")
    try:
        found = measure(args.jobs, args.ends, root)
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    finally:
        sweep(root)
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(found))
    else:
        ms = {k: f"{v * 1000:.0f} ms" for k, v in found.items() if k.endswith("_s")}
        print(
            f"{args.jobs:,}-job batch page: first paint {ms['paint_first_s']} (then {ms['paint_s']}),"
            f" sort {ms['sort_s']}; a job's end on the page after {ms['end_s']} (median; p95 {ms['end_p95_s']})"
            f" at {found['end_rate_per_s']:.0f} ends/s;"
            f" daemon with a page open, idle: {found['idle_percent']:.2f} % of a core"
        )
    return 0 if all(found[k] <= goal for k, goal in GOALS.items()) else 1


if __name__ == "__main__":
    sys.exit(main())
