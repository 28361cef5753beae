"""The CLI's commands: each module registers its own parsers."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from hyperctl.commands import batch, compare, generate, hosts, job, run, tryjob, ui

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]", argparse.ArgumentParser], None]

COMMANDS: list[Register] = [
    run.register,
    generate.register,
    batch.register,
    job.register,
    hosts.register,
    tryjob.register,
    compare.register,
    ui.register,
]
