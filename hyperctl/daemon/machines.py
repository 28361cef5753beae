"""Which of the batch's machines take jobs now, and what each offers.

A machine that fails (unreachable, silent, refusing a job's start) takes no jobs for a while,
5 s doubling up to a minute, then is asked again; it takes jobs again once it answers, with
its capacity as then found. One that sends a job's end meanwhile answers: it is asked at once.
What the machines offer is saved in the store, for the views when no daemon runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hyperctl.backends.base import Executor, Machine
from hyperctl.daemon.placement import Pool
from hyperctl.store import Store
from hyperctl.views import machine_record

logger = logging.getLogger(__name__)
_FIRST_BACKOFF, _MAX_BACKOFF = 5.0, 60.0  # seconds a machine that failed takes no jobs


class Machines:
    """Up or down (the pool's `down` says why), and how long each down machine waits to be asked again."""

    def __init__(
        self, pool: Pool, executor: Executor, store: Store, changed: Callable[[], None], over: Callable[[], bool]
    ) -> None:
        self.pool = pool
        self.executor = executor
        self.store = store
        self.changed = changed  # told once a machine was asked again: start what now fits, or end
        self.over = over  # whether the batch has ended: nothing more to ask
        self.backoff: dict[str, float] = {}  # machine -> how long it stays down the next time
        self.timers: dict[str, asyncio.TimerHandle] = {}  # machine -> when it is asked again
        self.asking: set[str] = set()  # asked at once (answered()): the batch waits for their answer

    @property
    def all_down(self) -> bool:
        return len(self.pool.down) == len(self.pool.machines)

    def down(self, machine: str, reason: str) -> bool:
        """Take no jobs to it for a while (doubling each time, up to a minute), then ask it again.
        True when it was up until now."""
        if machine in self.pool.down:
            self.pool.down[machine] = reason  # the latest word on it
            return False
        logger.warning("machine %s is down: %s", machine, reason)
        self.pool.down[machine] = reason
        earlier = self.timers.pop(machine, None)
        if earlier is not None:
            earlier.cancel()  # asked at once meanwhile (answered()), and down again: one timer
        delay = self.backoff.get(machine, _FIRST_BACKOFF)
        self.backoff[machine] = min(delay * 2, _MAX_BACKOFF)
        self.timers[machine] = asyncio.get_running_loop().call_later(
            delay, lambda: asyncio.ensure_future(self._probe(machine))
        )
        return True

    def answered(self, machine: str) -> None:
        """A job's exit code came from this machine while it is down: it answers. Ask it now, not
        after its backoff (what failed may have been of that moment only: a session its sshd
        refused while others were open); until it answers, the batch does not end for want of it."""
        if machine in self.pool.down and machine not in self.asking and not self.over():
            self.asking.add(machine)
            asyncio.ensure_future(self._probe(machine, now=True))

    def up(self, machine: Machine) -> None:
        """It answers (again, or at last): jobs go there, as many as its capacity, now found, holds."""
        self.pool.replace(machine)
        self.save()
        if self.pool.down.pop(machine.name, None) is not None:
            logger.warning("machine %s is up", machine.name)
        self.backoff.pop(machine.name, None)
        timer = self.timers.pop(machine.name, None)
        if timer is not None:
            timer.cancel()  # asked already

    async def _probe(self, machine: str, now: bool = False) -> None:
        """Its time down is over: it takes jobs again only once it answers (no job waits on a dead host)."""
        try:
            why = None if self.over() else await self.executor.probe(machine)
        finally:
            if now:
                self.asking.discard(machine)
        if self.over():
            return
        if why is None:
            self.up(next(m for m in self.executor.machines() if m.name == machine))
        else:
            self.pool.down.pop(machine, None)
            self.down(machine, why)
        self.changed()

    def save(self) -> None:
        """Every machine and what it offers as now known, for `hosts` and `batch describe` when no
        daemon runs: they show it from the store alone, reaching no machine and building no executor."""
        self.store.set_meta(machines=[machine_record(m) for m in self.pool.machines])
