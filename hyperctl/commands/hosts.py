"""`hyperctl hosts BATCH`: each machine of a batch, its state, running jobs, GPUs, CPU and RAM in use."""

from __future__ import annotations

import argparse
from typing import Any

from hyperctl.batches import NoDaemonError, daemon_pid, find_batch, resolve_batches_dir
from hyperctl.commands.targets import add_targets
from hyperctl.exitstatus import ExitStatus
from hyperctl.layout import BatchDir
from hyperctl.output import emit_json, say, table

_NAMES_SHOWN = 3  # a machine with more running jobs shows their count and the first few names


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], data_dir: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "hosts",
        parents=[data_dir],
        help="a batch's machines: state, running jobs, GPUs, CPU and RAM in use",
        description="Each machine of the batch: whether it takes jobs (up, or down and why: a machine that "
        "could not be reached takes no jobs for a while), the jobs running on it, the GPUs they hold, and "
        "the CPU and RAM they asked for out of what the machine offers. With no daemon running the batch, "
        "the running jobs come from its folder and the state shows '-' (unknown).",
    )
    add_targets(p)
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=cmd_hosts)


def machines_of(batch_dir: BatchDir) -> list[dict[str, Any]]:
    """The batch's machines (views.machines_view): from its daemon when one runs, else as the
    store has them, with state None (no daemon, nobody knows). Nothing is reached nor run here:
    no password is needed, no nvidia-smi runs."""
    from hyperctl.client import ApiError, DaemonUnreachableError, NoTokenError, live_client
    from hyperctl.store import Store
    from hyperctl.unwatched import Unwatched
    from hyperctl.views import machines_in_store, machines_view, placed_in_store

    if daemon_pid(batch_dir) is not None:
        try:
            return live_client(batch_dir).machines()
        except (NoDaemonError, DaemonUnreachableError):
            pass  # it is stopping or has just ended: the folder tells the rest
        except NoTokenError as e:  # a reading command works without the daemon: say why it is not asked
            say(f"{e.where}: showing what the batch folder tells")
        except ApiError as e:
            if e.status != 404:  # 404: a daemon of an older hyperctl, without this endpoint
                raise
    store = Store(batch_dir.db, readonly=True)
    try:
        placed = placed_in_store(store, Unwatched.of(batch_dir, store))  # no daemon: the jobs' files tell
        return machines_view(machines_in_store(store.meta()), placed, None)
    finally:
        store.close()


def state_text(view: dict[str, Any]) -> str:
    if view["state"] is None:
        return "-"
    if view["state"] == "down":
        return "down: " + " ".join(str(view["reason"]).split())  # one line, whatever the error said
    return str(view["state"])


def jobs_text(view: dict[str, Any]) -> str:
    names = [j["name"] for j in view["jobs"]]
    if not names:
        return "0"
    more = ", ..." if len(names) > _NAMES_SHOWN else ""
    return f"{len(names)}: " + ", ".join(names[:_NAMES_SHOWN]) + more


def gpus_text(view: dict[str, Any]) -> str:
    """GPUs in use out of the machine's, e.g. '0,2 of 0,1,2,3'; '-' for a machine without GPUs."""
    used = ",".join(map(str, view["gpus_in_use"])) or "none"
    if view["gpus"] is None:  # a machine the spec no longer lists
        return used
    if not view["gpus"]:
        return "-"
    return f"{used} of " + ",".join(map(str, view["gpus"]))


def cpu_text(view: dict[str, Any]) -> str:
    total = "-" if view["cpu"] is None else f"{view['cpu']:g}"
    return f"{view['cpu_used']:g}/{total}"


def ram_text(view: dict[str, Any]) -> str:
    total = "-" if view["ram"] is None else view["ram"]
    return f"{view['ram_used']}/{total} MB"


def machine_line(view: dict[str, Any]) -> str:
    """One machine in a sentence, for `batch describe`: the same facts as a row of `hosts`."""
    return (
        f"{state_text(view)}; jobs {jobs_text(view)}; GPUs in use {gpus_text(view)}; "
        f"CPU {cpu_text(view)}; RAM {ram_text(view)}"
    )


def cmd_hosts(args: argparse.Namespace) -> int:
    batch_dir = find_batch(resolve_batches_dir(args.batches_data_dir), args.batch)
    views = machines_of(batch_dir)
    if args.json:
        emit_json(views)
        return ExitStatus.OK
    rows = [[v["name"], state_text(v), jobs_text(v), gpus_text(v), cpu_text(v), ram_text(v)] for v in views]
    print(table(["MACHINE", "STATE", "JOBS", "GPUS IN USE", "CPU", "RAM"], rows))
    return ExitStatus.OK
