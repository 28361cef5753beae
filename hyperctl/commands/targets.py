"""Which batch (and job) a command is about: given the same way to every command.

`hyperctl job logs my-sweep lr-0.1`, `hyperctl job logs -b my-sweep -j lr-0.1` and any mix of
the two name the same job, as `hyperctl batch describe my-sweep` and `... -b my-sweep` name the
same batch: README and users write both forms.
"""

from __future__ import annotations

import argparse

from hyperctl.errors import HyperctlError

_TARGETS = ("batch", "job")


def add_targets(parser: argparse.ArgumentParser, *, job: bool = False) -> None:
    """BATCH [JOB] as positionals, and -b BATCH [-j JOB] as options; resolved by `resolve`."""
    names = _TARGETS if job else _TARGETS[:1]
    for name in names:  # optional here: -b/-j may give them instead (resolve tells what is missing)
        parser.add_argument(f"{name}_given", nargs="?", metavar=name.upper(), help=f"the {name}")
    parser.add_argument("-b", "--batch", metavar="BATCH", help="the batch (or give it first, without -b)")
    if job:
        parser.add_argument("-j", "--job", metavar="JOB", help="the job (or give it after the batch, without -j)")
    parser.set_defaults(target_names=names)


def resolve(args: argparse.Namespace) -> None:
    """Fill args.batch (and args.job) from the positionals where no option gave them."""
    names = getattr(args, "target_names", None)
    if names is None:
        return
    given = [value for value in (getattr(args, f"{name}_given") for name in names) if value is not None]
    for name in names:
        if getattr(args, name, None) is None and given:
            setattr(args, name, given.pop(0))
    if given:
        raise HyperctlError(f"unexpected argument '{given[0]}': give the {' and '.join(names)} once each")
    missing = [name for name in names if getattr(args, name, None) is None]
    if missing:
        options = " ".join(f"-{n[0]} {n.upper()}" for n in names)
        raise HyperctlError(f"which {missing[0]}? give it: {' '.join(n.upper() for n in names)} (or {options})")
