"""The command line: argparse, one library call per command, exit codes that mean something."""

from __future__ import annotations

import argparse
import gc
import os
import sys

from hyperctl import __version__
from hyperctl.commands import COMMANDS, targets
from hyperctl.errors import HyperctlError
from hyperctl.exitstatus import ExitStatus


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse has printed the usage error or the help
        return int(e.code or 0)
    try:
        targets.resolve(args)
        return int(args.func(args))
    except HyperctlError as e:
        for line in str(e).splitlines():
            print(f"hyperctl: error: {line}", file=sys.stderr)
        return ExitStatus.USAGE
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:  # `hyperctl job list | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return ExitStatus.OK


def entry() -> int:
    """The `hyperctl` program: main(), then an exit that skips the final garbage collection,
    which costs a tenth of a second once Tornado and Paramiko are loaded (every object left is
    freed when the process ends anyway)."""
    code = main()
    gc.freeze()
    return code


class _Parser(argparse.ArgumentParser):
    """argparse, but an argument a command does not take is reported with that command's usage
    (argparse leaves it to the top-level parser, which shows its own)."""

    def parse_known_args(  # type: ignore[override]
        self, args: list[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras and self._subparsers is None:  # a command itself, not a group of commands
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _Parser(  # its commands are _Parsers too (argparse makes them of its class)
        prog="hyperctl",
        description="Run batches of shell jobs and parameter sweeps on this machine or on SSH hosts.",
        epilog="Exit status: 0 ok, 1 some job did not succeed, 2 bad usage or config, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"hyperctl {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument(
        "--batches-data-dir",
        metavar="DIR",
        help="where batch folders live (default: $HYPERCTL_BATCHES_DATA_DIR, else ~/hyperctl-batches-data-dir)",
    )
    for register in COMMANDS:
        register(commands, data_dir)
    _describe(commands)
    return parser


def _describe(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Every command's --help opens with what it does: its one-line help where it has no longer
    description."""
    helps = {action.dest: action.help for action in commands._choices_actions}
    for name, sub in commands.choices.items():
        text = helps.get(name)
        if sub.description is None and text:
            sub.description = text[0].upper() + text[1:] + "."
        for action in sub._subparsers._group_actions if sub._subparsers else []:
            if isinstance(action, argparse._SubParsersAction):
                _describe(action)
