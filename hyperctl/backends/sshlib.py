"""Paramiko, loaded without the tenth of a second it spends importing invoke.

Paramiko imports invoke (and with it unittest.mock and a YAML parser) at start, only to run
`Match exec` lines of ~/.ssh/config. It is loaded here with invoke held back; the one lookup
that needs it (ssh_config() meeting `Match exec`) loads it then.
"""

from __future__ import annotations

import importlib
import sys

_held = "invoke" not in sys.modules
if _held:
    sys.modules["invoke"] = None  # type: ignore[assignment]  # `import invoke` fails at once
try:
    import paramiko as paramiko  # noqa: PLC0414 - re-exported
    import paramiko.config
finally:
    if _held:
        del sys.modules["invoke"]


def load_invoke() -> bool:
    """Give paramiko its invoke now (for `Match exec`); False when it is not installed."""
    if getattr(paramiko.config, "invoke", None) is not None:
        return True
    try:
        paramiko.config.invoke = importlib.import_module("invoke")  # type: ignore[attr-defined]
    except ImportError:
        return False
    return True


__all__ = ["load_invoke", "paramiko"]
