"""`hyperctl generate`: a template -> a batch file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hyperctl import privatefs
from hyperctl.errors import ConfigError, HyperctlError
from hyperctl.exitstatus import ExitStatus
from hyperctl.limits import MAX_YAML_BYTES, size
from hyperctl.output import plural, say


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], data_dir: argparse.ArgumentParser) -> None:
    gen = commands.add_parser(
        "generate",
        help="expand a template into a batch file",
        description="Expand a template's params (lists for a grid, or distributions with strategy: random) "
        "into a batch file that `hyperctl run --config` takes as it is.",
    )
    gen.add_argument("--template", metavar="FILE", required=True, help="the template (YAML or JSON)")
    gen.add_argument(
        "--output",
        metavar="FILE",
        required=True,
        help="the batch file to write (private: 0600; a link is refused), or - for stdout",
    )
    gen.add_argument("--force", action="store_true", help="overwrite an existing output file")
    gen.set_defaults(func=cmd_generate)


def expand(path: str) -> tuple[dict[str, Any], int | None]:
    from hyperctl.config import load_document
    from hyperctl.generate import expand_template

    template = Path(path)
    return expand_template(load_document(template), template.parent)


def batch_json(batch: dict[str, Any]) -> str:
    """The batch as JSON, a job per line (what one edits by hand, and diffs well), the rest
    indented; json's C encoder writes each job (indent= takes the pure-Python one: 5 s for
    100,000 jobs)."""
    parts = []
    for key, value in batch.items():
        if key == "jobs" and value:
            jobs = ",\n".join("    " + json.dumps(job) for job in value)
            parts.append(f'  "jobs": [\n{jobs}\n  ]')
        else:
            parts.append(f"  {json.dumps(key)}: " + json.dumps(value, indent=2).replace("\n", "\n  "))
    return "{\n" + ",\n".join(parts) + "\n}\n"


def cmd_generate(args: argparse.Namespace) -> int:
    batch, seed = expand(args.template)
    if args.output.lower().endswith((".yml", ".yaml")):
        import yaml

        class Dumper(yaml.SafeDumper):
            """Every job written out whole: with aliases (`&id001`), editing one job would edit all."""

            def ignore_aliases(self, data: object) -> bool:
                return True

        text = yaml.dump(batch, Dumper=Dumper, sort_keys=False)
        if len(text.encode()) > MAX_YAML_BYTES:  # `run` would refuse it
            raise ConfigError(
                f"{args.output}: {len(batch['jobs']):,} jobs make over {size(MAX_YAML_BYTES)} of YAML, "
                "more than `run` reads: write them as JSON (--output batch.json)"
            )
    else:
        text = batch_json(batch)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        out = Path(args.output)
        if out.is_symlink():  # a link may name another user's file, or one of yours: never written through
            raise HyperctlError(f"{out}: is a symbolic link; give the path of a file, not a link (nothing written)")
        if out.exists() and not args.force:
            raise HyperctlError(f"{out}: exists; pass --force to overwrite it")
        try:
            # Private (0600): env values in a batch may be secrets. Renamed into place: a link put
            # there meanwhile is replaced, not written through.
            privatefs.write_atomic(out, text)
        except OSError as e:
            raise HyperctlError(f"{out}: cannot write: {e.strerror}") from None
        say(f"wrote {plural(len(batch['jobs']), 'job')} to {out}")
    if seed is not None:
        say(f"random params drawn with seed {seed}")
    return ExitStatus.OK
