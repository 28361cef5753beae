"""A safe YAML loader that reads `1e-3` as a float, as users mean it."""

from __future__ import annotations

import re

import yaml

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Loader(_Base):  # type: ignore[misc,valid-type]
    """SafeLoader (C when available) with YAML 1.2 floats: 1e-3, 1E5, .5."""


# PyYAML follows YAML 1.1, where a float needs a dot: `1e-3` would be the string "1e-3".
Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)
