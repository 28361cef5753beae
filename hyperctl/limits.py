"""The limits on what a batch or template may ask, in one place (README's "Limits" says them).

Each is far past any real batch and keeps a mistake (or a hostile file) to a one-line error
in bounded time and memory, rather than a hang, a traceback or a job that fails later.
"""

from __future__ import annotations

MAX_FILE_BYTES = 10 * 2**20  # a batch or template file
MAX_YAML_BYTES = 2 * 2**20  # one in YAML: PyYAML reads some 0.3 MB/s, JSON some 50 MB/s
MAX_JOBS = 100_000  # jobs in a batch, and what a template may expand to (checked before expanding)
MAX_NODES = 1_000_000  # values in a YAML document, counting what aliases repeat (~ a 2 MB file's most)
MAX_DEPTH = 100  # levels of lists and objects in a param
MAX_ARG_BYTES = 128 * 2**10 - 1  # a command, or one env entry NAME=value: the kernel's MAX_ARG_STRLEN
RENDER_SECONDS = 2.0  # rendering one command
MAX_INT_BITS = 100_000  # an integer a template computes (`**`, `*`)
MAX_ITEMS = 100_000  # a list a template builds (`*`), like its range()


def size(n: int) -> str:
    """A byte count as README writes it."""
    return f"{n // 2**20} MB" if n >= 2**20 else f"{(n + 1) // 2**10} KiB"
