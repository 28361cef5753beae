"""The machines part of a batch page (web/machines.py, web/usage.py): each machine's state, its
running jobs and GPUs, and what they use now: CPU % and RSS of each job's processes (psutil), GPU
use from nvidia-smi (a stand-in script on PATH here), sampled only when the part is asked for."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from hyperctl.backends.base import Machine
from hyperctl.backends.local import LocalExecutor
from hyperctl.daemon.app import make_app
from hyperctl.daemon.auth import Tokens
from hyperctl.daemon.listener import InFlight
from hyperctl.daemon.scheduler import Scheduler
from hyperctl.layout import BatchDir
from hyperctl.spec import BatchSpec, BatchStatus, Execution, JobSpec, Resource
from hyperctl.store import Store
from hyperctl.web.login import Logins
from hyperctl.web.site import Site
from tests.conftest import hyperctl, write_json
from tests.test_web_actions import detached, logged_in, running, sleepers
from tests.webclient import ui

SMI = """#!/bin/sh
echo "$1" >> {calls}
case "$1" in
  --query-gpu=index,*) printf '0, 35, 1200, 16000\\n1, [N/A], 5000, 16000\\n' ;;
  --query-compute-apps=*) for f in {pids}/*; do [ -f "$f" ] && printf '%s, 700\\n' "$(cat "$f")"; done ;;
esac
"""


def stand_in_smi(tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    """An nvidia-smi that answers for GPUs 0 and 1, and says each pid a job wrote in `pids` holds 700
    MiB; it logs each call. The PATH to give the daemon, the log, the folder of pids."""
    folder, calls, pids = tmp_path / "bin", tmp_path / "smi-calls", tmp_path / "pids"
    folder.mkdir()
    pids.mkdir()
    smi = folder / "nvidia-smi"
    smi.write_text(SMI.format(calls=calls, pids=pids))
    smi.chmod(0o755)
    return {"PATH": f"{folder}:{os.environ['PATH']}"}, calls, pids


def test_the_machines_part_shows_state_jobs_gpus_and_what_each_job_uses(tmp_path: Path, batches: Path) -> None:
    env, calls, pids = stand_in_smi(tmp_path)
    doc = sleepers("m", "idle")
    doc["backend"]["conf"]["gpu"] = [0, 1]  # declared: the daemon runs no nvidia-smi to find them
    # A job that burns CPU (for a few seconds at most) on GPU 0, and holds memory.
    spin = "import time; b = bytearray(40 << 20); t = time.time() + 20\nwhile time.time() < t: pass"
    busy = f"echo $$ > {pids}/busy; python3 -c '{spin}'"
    doc["jobs"].append({"name": "busy", "resource": {"gpu": 1}, "execution": {"command": busy}})
    page = logged_in(detached(tmp_path, doc, env))
    running("m", "idle", "busy")
    shown = page.get("/b/m").text
    assert 'data-src="/b/m/machines"' in shown and "reading the machines" in shown
    assert not calls.exists()  # the page painted without sampling anything

    part = page.get("/b/m/machines?part=machines").text
    row = re.search(r'<tr class="machine" data-machine="localhost">(.*?)</tr>', part, re.S).group(1)
    assert '<span class="state up">up</span>' in row
    assert "<td>0 of 0,1</td>" in row  # GPUs in use of the machine's
    assert "GPU 0: 35 % · 1200/16000 MiB" in row and "GPU 1: n/a · 5000/16000 MiB" in row
    busy_row = re.search(r'<tr class="job-use" data-job="busy">(.*?)</tr>', part, re.S).group(1)
    cpu = float(re.search(r'cpu-use">([\d.]+) %', busy_row).group(1))
    rss = re.search(r'class="num rss">([\d.]+) MB', busy_row)
    assert cpu > 5, busy_row  # it spins (a core's worth, less what a busy test machine takes); idle: 0.0
    assert rss is not None and float(rss.group(1)) >= 40, busy_row  # the 40 MB it holds
    assert "<td>700 MiB</td>" in busy_row  # its GPU memory, from nvidia-smi's compute apps
    idle_row = re.search(r'<tr class="job-use" data-job="idle">(.*?)</tr>', part, re.S).group(1)
    assert 'cpu-use">0.0 %' in idle_row and re.search(r'class="num rss">[\d.]+ MB', idle_row)  # sleep: no CPU
    machine_cpu = float(re.search(r'cpu-use">([\d.]+) %', row).group(1))
    assert machine_cpu >= cpu  # the machine's: its jobs' summed

    page.get("/b/m/machines?part=machines")  # within 5 s: the same sample, nvidia-smi not run again
    assert calls.read_text().splitlines() == [
        "--query-gpu=index,utilization.gpu,memory.used,memory.total",
        "--query-compute-apps=pid,used_memory",
    ]
    hyperctl("batch", "kill", "m")


def test_without_a_daemon_the_machines_are_read_from_the_store_state_unknown_not_sampled(
    tmp_path: Path, batches: Path
) -> None:
    doc = {**sleepers("s", "a"), "jobs": [{"name": "a", "execution": {"command": "true"}}]}
    assert hyperctl("run", "--config", str(write_json(tmp_path / "s.json", doc))).returncode == 0
    with ui(batches) as server:
        page = server.session()
        part = page.get("/b/s/machines?part=machines").text
        assert '<span class="state unknown">unknown</span> <span class="why">no daemon runs this batch</span>' in part
        assert "not sampled: no daemon runs this batch here" in part
        assert page.get("/b/nope/machines?part=machines").status == 404


def test_a_machine_down_shows_why_in_the_part(tmp_path: Path) -> None:
    """A machine in backoff (as the SSH backend reports one it cannot reach) is down, with why, and
    its running job still shows. Driven in-process (a local batch has no machine to lose): the
    daemon's app with its pages, real HTTP."""
    job = JobSpec("j", {}, Execution("sleep 60"), Resource(gpu=1))
    batch_dir = BatchDir(tmp_path, "s")
    batch_dir.internal.mkdir(parents=True)
    store = Store(batch_dir.db)
    store.sync_jobs([job])
    tokens = Tokens("secret")

    async def main() -> str:
        executor = LocalExecutor(Machine("box", cpu=2, ram=0, gpus=(0, 1)))
        scheduler = Scheduler(BatchSpec(name="s", jobs=[job]), batch_dir, store, executor, {}, tokens.for_job)
        await scheduler.start()
        [sock] = bind_sockets(0, address="127.0.0.1")
        site = Site(tmp_path, Logins(), port=sock.getsockname()[1], scheduler=scheduler)
        server = HTTPServer(make_app(scheduler, tokens, InFlight(), site))
        server.add_sockets([sock])
        client = AsyncHTTPClient()
        try:
            while "j" not in scheduler.running:
                await asyncio.sleep(0.01)
            assert executor.on_machine_down is not None
            executor.on_machine_down("box", "cannot connect to 127.0.0.1:1: connection refused")
            login = await client.fetch(site.login_url(), follow_redirects=False, raise_error=False)
            cookie = login.headers["Set-Cookie"].split(";", 1)[0]
            url = f"{site.base_url()}/b/s/machines?part=machines"
            return (await client.fetch(url, headers={"Cookie": cookie})).body.decode()
        finally:
            server.stop()
            await scheduler.stop(BatchStatus.KILLED, grace=0)

    part = asyncio.run(main())
    store.close()
    why = "cannot connect to 127.0.0.1:1: connection refused"
    assert f'<span class="state down">down</span> <span class="why">{why}</span>' in part
    assert '<tr class="job-use" data-job="j">' in part and "<td>0 of 0,1</td>" in part


def test_the_page_shows_the_gpus_and_the_running_jobs_use(tmp_path: Path, batches: Path, page: Any) -> None:
    from playwright.sync_api import expect

    from tests.browser import screenshot

    env, calls, pids = stand_in_smi(tmp_path)
    doc = sleepers("mp", "idle")
    doc["backend"]["conf"]["gpu"] = [0, 1]
    spin = "import time; b = bytearray(40 << 20); t = time.time() + 20\nwhile time.time() < t: pass"
    doc["jobs"].append({"name": "busy", "resource": {"gpu": 1}, "execution": {"command": f"python3 -c '{spin}'"}})
    link = detached(tmp_path, doc, env)
    running("mp", "idle", "busy")
    page.goto(link)
    page.goto(link.split("/login", 1)[0] + "/b/mp")
    machine = page.locator('#machines tr.machine[data-machine="localhost"]')
    expect(machine.locator(".state")).to_have_text("up")
    expect(machine.locator('.gpu[data-gpu="0"]')).to_have_text("GPU 0: 35 % · 1200/16000 MiB")
    busy = page.locator('#machines tr.job-use[data-job="busy"]')
    expect(busy.locator(".cpu-use")).to_have_text(re.compile(r"^\d+\.\d %$"))
    assert float(busy.locator(".cpu-use").inner_text().split()[0]) > 5
    expect(busy.locator(".rss")).to_have_text(re.compile(r"^\d+\.\d MB$"))
    screenshot(page, "machines")
