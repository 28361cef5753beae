"""Free capacity per machine: which job fits where, with exclusive GPUs."""

from __future__ import annotations

from dataclasses import dataclass

from hyperctl.backends.base import Machine
from hyperctl.spec import Resource

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

    def why_never_fits(self, r: Resource) -> str | None:
        """Why no machine, even idle, could run r; None when one could."""
        if any(r.cpu <= m.cpu + _EPSILON and r.ram <= m.ram and r.gpu <= len(m.gpus) for m in self.machines):
            return None
        most_gpu = max(len(m.gpus) for m in self.machines)
        if r.gpu > most_gpu:
            return f"asks {r.gpu} GPUs; the most any machine has is {most_gpu}"
        most_cpu = max(m.cpu for m in self.machines)
        if r.cpu > most_cpu + _EPSILON:
            return f"asks {r.cpu:g} CPUs; the most any machine has is {most_cpu:g}"
        most_ram = max(m.ram for m in self.machines)
        if r.ram > most_ram:
            return f"asks {r.ram} MB of RAM; the most any machine has is {most_ram}"
        return "no machine has all of it at once"

    def take(self, r: Resource) -> Slot | None:
        """Reserve r on the first machine with room for it, or None."""
        for m in self.machines:
            free_gpus = self.gpus[m.name]
            if r.cpu <= self.cpu[m.name] + _EPSILON and r.ram <= self.ram[m.name] and r.gpu <= len(free_gpus):
                self.cpu[m.name] -= r.cpu
                self.ram[m.name] -= r.ram
                taken = tuple(free_gpus[: r.gpu])
                del free_gpus[: r.gpu]
                return Slot(m, r, taken)
        return None

    def give_back(self, slot: Slot) -> None:
        name = slot.machine.name
        self.cpu[name] += slot.resource.cpu
        self.ram[name] += slot.resource.ram
        self.gpus[name].extend(slot.gpus)
        self.gpus[name].sort()
