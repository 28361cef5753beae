"""The scheduler driven directly, without HTTP: placement, order, and event-driven dispatch."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from hyperctl.backends.base import Handle, Launch, Machine
from hyperctl.backends.local import LocalExecutor
from hyperctl.daemon.placement import Pool
from hyperctl.daemon.scheduler import Event, Scheduler
from hyperctl.layout import BatchDir
from hyperctl.spec import BatchSpec, BatchStatus, Execution, JobSpec, JobStatus, Resource
from hyperctl.store import Store


def make_scheduler(tmp_path: Path, jobs: list[JobSpec], machine: Machine) -> Scheduler:
    spec = BatchSpec(name="s", jobs=jobs)
    batch_dir = BatchDir(tmp_path, "s")
    batch_dir.internal.mkdir(parents=True)
    store = Store(batch_dir.db)
    store.sync_jobs(jobs)
    return Scheduler(spec, batch_dir, store, LocalExecutor(machine), {}, lambda name: "job.x")


def test_jobs_start_in_order_as_capacity_frees(tmp_path: Path) -> None:
    """One slot: job i+1 starts only after job i ended, and each end starts the next at once."""
    log = tmp_path / "order.log"
    jobs = [JobSpec(f"j{i}", {}, Execution(f"echo {i} >> {log}")) for i in range(5)]

    async def main() -> tuple[BatchStatus, list[Event]]:
        scheduler = make_scheduler(tmp_path, jobs, Machine("m", cpu=1, ram=0))
        events: list[Event] = []
        scheduler.listeners.append(events.append)
        await scheduler.start()
        return await asyncio.wait_for(scheduler.done, 30), events

    status, events = asyncio.run(main())

    assert status == BatchStatus.FINISHED
    assert log.read_text().split() == ["0", "1", "2", "3", "4"]
    assert [(e.job, e.status) for e in events] == [
        (f"j{i}", s) for i in range(5) for s in (JobStatus.RUNNING, JobStatus.SUCCEEDED)
    ]


def test_a_small_job_fills_the_gap_a_big_one_cannot(tmp_path: Path) -> None:
    jobs = [
        JobSpec("big1", {}, Execution("sleep 0.3"), Resource(cpu=2)),
        JobSpec("big2", {}, Execution("sleep 0.3"), Resource(cpu=2)),
        JobSpec("small", {}, Execution("sleep 0.3"), Resource(cpu=1)),
    ]

    async def main() -> list[str]:
        scheduler = make_scheduler(tmp_path, jobs, Machine("m", cpu=3, ram=0))
        await scheduler.start()
        running = sorted(scheduler.status[name].value for name in ("big1", "big2", "small"))
        await asyncio.wait_for(scheduler.done, 30)
        return running

    assert asyncio.run(main()) == ["pending", "running", "running"]


def test_pool_never_hands_out_a_gpu_twice() -> None:
    pool = Pool([Machine("a", cpu=8, ram=1000, gpus=(0, 1)), Machine("b", cpu=8, ram=1000, gpus=(5,))])
    slots = [pool.take(Resource(gpu=1)) for _ in range(3)]
    assert sorted((s.machine.name, s.gpus) for s in slots if s) == [("a", (0,)), ("a", (1,)), ("b", (5,))]
    assert pool.take(Resource(gpu=1)) is None
    given_back = slots[1]
    assert given_back is not None
    pool.give_back(given_back)
    again = pool.take(Resource(gpu=1))
    assert again is not None and (again.machine.name, again.gpus) == (given_back.machine.name, given_back.gpus)
    assert pool.why_never_fits(Resource(gpu=3)) == "asks 3 GPUs; the most any machine has is 2"
    assert pool.why_never_fits(Resource(cpu=4, ram=2000)) == "asks 2000 MB of RAM; the most any machine has is 1000"


def test_fractional_cpus_add_up(tmp_path: Path) -> None:
    pool = Pool([Machine("a", cpu=1, ram=0)])
    assert all(pool.take(Resource(cpu=0.1)) for _ in range(10))
    assert pool.take(Resource(cpu=0.1)) is None


def test_params_file_and_store_agree(tmp_path: Path) -> None:
    jobs = [JobSpec("p", {"lr": 0.1, "tags": ["a"]}, Execution(f"{sys.executable} -c 'import hyperctl; print(1)'"))]

    async def main() -> None:
        scheduler = make_scheduler(tmp_path, jobs, Machine("m", cpu=1, ram=0))
        await scheduler.start()
        await asyncio.wait_for(scheduler.done, 30)

    asyncio.run(main())
    store = Store(BatchDir(tmp_path, "s").db, readonly=True)
    record = store.job("p")
    assert record is not None and record.status == JobStatus.SUCCEEDED and record.attempts == 1
    assert record.last is not None and record.last.exit_code == 0 and record.last.pid
    assert json.loads((tmp_path / "s" / ".hyperctl" / "jobs" / "p" / "params.json").read_text()) == {
        "lr": 0.1,
        "tags": ["a"],
    }


def test_an_internal_error_ends_the_attempt_too(tmp_path: Path) -> None:
    """A bug while a job starts fails the job and ends its attempt, with why: nothing stays `running`."""

    class Broken(LocalExecutor):
        async def _spawn(self, launch: Launch) -> Handle:
            raise RuntimeError("a bug")

    jobs = [JobSpec("j", {}, Execution("true"))]
    batch_dir = BatchDir(tmp_path, "s")
    batch_dir.internal.mkdir(parents=True)
    store = Store(batch_dir.db)
    store.sync_jobs(jobs)

    async def main() -> BatchStatus:
        executor = Broken(Machine("m", cpu=1, ram=0))
        scheduler = Scheduler(BatchSpec(name="s", jobs=jobs), batch_dir, store, executor, {}, lambda name: "job.x")
        await scheduler.start()
        return await asyncio.wait_for(scheduler.done, 30)

    assert asyncio.run(main()) == BatchStatus.FAILED
    [attempt] = store.attempts("j")
    assert (attempt.status, attempt.reason) == (JobStatus.FAILED, "internal error: RuntimeError: a bug")
    assert attempt.ended is not None
