"""The command line: argparse, one library call per command, exit codes that mean something."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hyperctl import __version__
from hyperctl.errors import HyperctlError

OK, JOBS_FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse has printed the usage error or the help
        return int(e.code or 0)
    try:
        return int(args.func(args))
    except HyperctlError as e:
        for line in str(e).splitlines():
            print(f"hyperctl: error: {line}", file=sys.stderr)
        return USAGE
    except KeyboardInterrupt:
        return INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hyperctl",
        description="Run batches of shell jobs and parameter sweeps on this machine.",
    )
    parser.add_argument("--version", action="version", version=f"hyperctl {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument(
        "--batches-data-dir",
        metavar="DIR",
        help="where batch folders live (default: $HYPERCTL_BATCHES_DATA_DIR, else ~/hyperctl-batches-data-dir)",
    )

    run = commands.add_parser(
        "run",
        parents=[data_dir],
        help="run a batch and wait for it",
        description="Run a batch: start its daemon and API, run every job, and exit when all have ended. "
        "Exit status: 0 all jobs succeeded, 1 some did not, 2 bad usage or config, 130 interrupted. "
        "Running the same batch again skips the jobs that already succeeded.",
    )
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="FILE", help="a batch file (JSON or YAML)")
    source.add_argument("--template", metavar="FILE", help="a template: expand it and run the jobs in one step")
    run.add_argument("--name", help="the batch name (default: the batch's `name`, else the file name)")
    run.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    run.set_defaults(func=cmd_run)

    gen = commands.add_parser(
        "generate",
        help="expand a template into a batch file",
        description="Expand a template's params (lists for a grid, or distributions with strategy: random) "
        "into a batch file that `hyperctl run --config` takes as it is.",
    )
    gen.add_argument("--template", metavar="FILE", required=True, help="the template (YAML or JSON)")
    gen.add_argument("--output", metavar="FILE", required=True, help="the batch file to write, or - for stdout")
    gen.add_argument("--force", action="store_true", help="overwrite an existing output file")
    gen.set_defaults(func=cmd_generate)
    return parser


def _template_batch(path: str) -> tuple[dict[str, Any], int | None]:
    from hyperctl.config import load_document
    from hyperctl.generate import expand_template

    template = Path(path)
    return expand_template(load_document(template), template.parent)


def cmd_generate(args: argparse.Namespace) -> int:
    batch, seed = _template_batch(args.template)
    fmt = "yaml" if args.output.lower().endswith((".yml", ".yaml")) else "json"
    if fmt == "yaml":
        import yaml

        text = yaml.safe_dump(batch, sort_keys=False)
    else:
        text = json.dumps(batch, indent=2) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        out = Path(args.output)
        if out.exists() and not args.force:
            raise HyperctlError(f"{out}: exists; pass --force to overwrite it")
        try:
            out.write_text(text)
        except OSError as e:
            raise HyperctlError(f"{out}: cannot write: {e.strerror}") from None
        print(f"hyperctl: wrote {len(batch['jobs'])} jobs to {out}", file=sys.stderr)
    if seed is not None:
        print(f"hyperctl: random params drawn with seed {seed}", file=sys.stderr)
    return OK


def cmd_run(args: argparse.Namespace) -> int:
    from hyperctl.config import load_batch, parse_batch
    from hyperctl.daemon.server import RunOptions, resolve_batches_dir, run_batch
    from hyperctl.progress import Progress
    from hyperctl.spec import BatchStatus

    if args.template:
        batch, _ = _template_batch(args.template)
        source = Path(args.template)
        spec = parse_batch(batch, source.parent, source.stem, name=args.name)
    else:
        source = Path(args.config)
        spec = load_batch(source, name=args.name)
    options = RunOptions(
        batches_dir=resolve_batches_dir(args.batches_data_dir),
        source=str(source.absolute()),
        same_batch=args.name is not None,
    )
    progress = Progress(sys.stderr, sys.stderr.isatty())
    result = run_batch(spec, options, progress)
    progress.finished(result)
    if args.json:
        json.dump(
            {
                "name": result.batch_dir.name,
                "status": result.status.value,
                "path": str(result.batch_dir.path),
                "counts": result.counts,
                "skipped": result.skipped,
                "elapsed": round(result.elapsed, 3),
                "not_succeeded": [r.name for r in result.not_succeeded],
            },
            sys.stdout,
        )
        sys.stdout.write("\n")
    exit_codes = {BatchStatus.FINISHED: OK, BatchStatus.INTERRUPTED: INTERRUPTED}
    return exit_codes.get(result.status, JOBS_FAILED)
