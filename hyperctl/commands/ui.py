"""`hyperctl ui`: browse every batch of the data dir in a web browser, read-only (web/serve.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from hyperctl.batches import resolve_batches_dir
from hyperctl.commands.job import whole_number
from hyperctl.output import say

DEFAULT_PORT = 8765


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], data_dir: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "ui",
        parents=[data_dir],
        help="browse the batches in a web browser (read-only; a running batch's own daemon serves its live pages)",
        description="Serve the dashboard of every batch in the data dir, read-only, until Ctrl-C. It prints a\n"
        "one-time login link: open it in a browser on this machine (it sets a cookie and is used up).",
        epilog="examples:\n  hyperctl ui\n  hyperctl ui --port 9000\n  ssh -L 8765:127.0.0.1:8765 gpu-box hyperctl ui"
        "    (then open the printed link here)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1, this machine only)"
    )
    p.add_argument(
        "--port",
        type=whole_number(0),
        default=DEFAULT_PORT,
        help=f"the port (default: {DEFAULT_PORT}, or a free one if it is taken; 0: any free one)",
    )
    p.set_defaults(func=cmd_ui)


def cmd_ui(args: argparse.Namespace) -> int:
    from hyperctl.web.serve import serve
    from hyperctl.web.site import Site

    batches_dir = resolve_batches_dir(args.batches_data_dir)

    def started(site: Site, port_note: str | None) -> None:
        if port_note:
            say(port_note.replace("the API listens", "the dashboard listens"))
        print(f"hyperctl: dashboard of {batches_dir} at {site.login_url()}  (Ctrl-C stops it)", flush=True)
        sys.stdout.flush()

    return asyncio.run(serve(batches_dir, args.host, args.port, started))
