"""Free capacity per machine: which job fits where, with exclusive GPUs; and which never will."""

from __future__ import annotations

from dataclasses import dataclass

from hyperctl.backends.base import Executor, Machine
from hyperctl.errors import ConfigError
from hyperctl.spec import BatchSpec, Resource

_EPSILON = 1e-9  # cpu is fractional: 0.1 * 10 must fit in 1


@dataclass(frozen=True)
class Slot:
    """What one running attempt holds: its machine and the GPU indices it was given."""

    machine: Machine
    resource: Resource
    gpus: tuple[int, ...]


class Pool:
    """Hands out capacity on the machines; never gives a GPU to two attempts."""

    def __init__(self, machines: list[Machine]) -> None:
        self.machines = machines
        self.cpu = {m.name: float(m.cpu) for m in machines}
        self.ram = {m.name: m.ram for m in machines}
        self.gpus = {m.name: list(m.gpus) for m in machines}
        self.jobs = {m.name: 0 for m in machines}
        self.down: dict[str, str] = {}  # machine -> why it takes no jobs for now

    def why_never_fits(self, r: Resource) -> str | None:
        """Why no machine, even idle, could run r; None when one could."""
        if any(not m.known or m.places for m in self.machines):
            return None  # some capacity is found only once its host answers, or is a cluster's to judge
        if any(r.cpu <= m.cpu + _EPSILON and r.ram <= m.ram and r.gpu <= len(m.gpus) for m in self.machines):
            return None
        most_gpu = max(len(m.gpus) for m in self.machines)
        if r.gpu > most_gpu:
            return f"asks {r.gpu} GPU{'' if r.gpu == 1 else 's'}; the most any machine has is {most_gpu}"
        most_cpu = max(m.cpu for m in self.machines)
        if r.cpu > most_cpu + _EPSILON:
            return f"asks {r.cpu:g} CPUs; the most any machine has is {most_cpu:g}"
        most_ram = max(m.ram for m in self.machines)
        if r.ram > most_ram:
            return f"asks {r.ram} MB of RAM; the most any machine has is {most_ram}"
        return "no machine has all of it at once"

    def take(self, r: Resource, avoid: Slot | None = None) -> Slot | None:
        """Reserve r where it fits, or None; away from `avoid` (a retry's last place) if it can."""
        fits = [m for m in self.machines if self._fits(m, r)]
        if not fits:
            return None
        # The machine with the most CPUs free first: jobs spread out rather than pile on the first.
        fits.sort(key=lambda m: -self.cpu[m.name])
        if avoid is not None:
            # Another machine first, then the same machine with other GPUs, then anything.
            def reuse(m: Machine) -> tuple[bool, bool]:
                fresh = [g for g in self.gpus[m.name] if g not in avoid.gpus]
                return m.name == avoid.machine.name, len(fresh) < r.gpu

            fits.sort(key=reuse)
        m = fits[0]
        return self._hold(m, r, self._free_gpus(m, r, avoid.gpus if avoid else ())[: r.gpu])

    def reserve(self, machine: str, r: Resource, gpus: tuple[int, ...]) -> Slot:
        """Hold what a running attempt already holds (found after a restart), even past capacity."""
        m = next((m for m in self.machines if m.name == machine), self.machines[0])
        return self._hold(m, r, tuple(g for g in gpus if g in self.gpus[m.name]))

    def replace(self, machine: Machine) -> None:
        """A machine's capacity as now found (when it answered): what running jobs hold stays held."""
        i = next(i for i, m in enumerate(self.machines) if m.name == machine.name)
        old, name = self.machines[i], machine.name
        self.cpu[name] += machine.cpu - old.cpu
        self.ram[name] += machine.ram - old.ram
        held = set(old.gpus) - set(self.gpus[name])
        self.gpus[name] = [g for g in machine.gpus if g not in held]
        self.machines[i] = machine

    def _fits(self, m: Machine, r: Resource) -> bool:
        if m.places:  # a cluster: its scheduler places what we send; we only keep to max_jobs
            return m.name not in self.down and (m.max_jobs is None or self.jobs[m.name] < m.max_jobs)
        return (
            m.name not in self.down
            and r.cpu <= self.cpu[m.name] + _EPSILON
            and r.ram <= self.ram[m.name]
            and r.gpu <= len(self.gpus[m.name])
            and (m.max_jobs is None or self.jobs[m.name] < m.max_jobs)
        )

    def _free_gpus(self, m: Machine, r: Resource, avoid: tuple[int, ...] = ()) -> list[int]:
        free = self.gpus[m.name]
        return [g for g in free if g not in avoid] + [g for g in free if g in avoid]

    def _hold(self, m: Machine, r: Resource, gpus: list[int] | tuple[int, ...]) -> Slot:
        self.cpu[m.name] -= r.cpu
        self.ram[m.name] -= r.ram
        self.jobs[m.name] += 1
        taken = tuple(gpus)
        self.gpus[m.name] = [g for g in self.gpus[m.name] if g not in taken]
        return Slot(m, r, taken)

    def give_back(self, slot: Slot) -> None:
        name = slot.machine.name
        self.cpu[name] += slot.resource.cpu
        self.ram[name] += slot.resource.ram
        self.jobs[name] -= 1
        self.gpus[name].extend(slot.gpus)
        self.gpus[name].sort()


def check_fits(spec: BatchSpec, executor: Executor) -> None:
    """A job no machine can ever hold, or run, is a config error before anything starts."""
    pool = Pool(executor.machines())
    problems = []
    for i, job in enumerate(spec.jobs):
        why = pool.why_never_fits(job.resource)
        if why:
            problems.append(f"jobs[{i}].resource: {why}")
        why = executor.check_job(job.execution)
        if why:
            problems.append(f"jobs[{i}].execution.{why}")
    if problems:
        raise ConfigError(problems)
