"""A safe YAML loader that reads `1e-3` as a float, as users mean it."""

from __future__ import annotations

import re
from typing import Any

import yaml

from hyperctl.limits import MAX_NODES

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Loader(_Base):  # type: ignore[misc,valid-type]
    """SafeLoader (C when available) with YAML 1.2 floats: 1e-3, 1E5, .5, and no key twice in
    one mapping (PyYAML keeps the last one: a silent surprise in a batch file)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:  # its own keys: `<<` merges may be overridden, as YAML says
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key '{key_node.value}' appears twice in one mapping", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)

    def construct_document(self, node: yaml.Node) -> Any:
        check_expansion(node)  # before building anything from it
        return super().construct_document(node)


_MAX_YAML_DEPTH = 1_000  # libyaml's composer recurses in C: 200,000 levels crash the process


def check_depth(text: str) -> None:
    """Refuse YAML nested past _MAX_YAML_DEPTH, from its parse events (flat, some 10% of a load)."""
    depth = 0
    for event in yaml.parse(text, Loader=_Base):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > _MAX_YAML_DEPTH:
                mark: Any = event.start_mark  # libyaml's own Mark: the same fields
                raise yaml.constructor.ConstructorError(
                    None, None, f"nests lists or mappings over {_MAX_YAML_DEPTH:,} levels deep", mark
                )
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def check_expansion(root: yaml.Node) -> None:
    """Aliases build one value many times over (a "billion laughs" in a few lines), or a value
    inside itself: refuse a document whose values, counted as often as aliases repeat them, pass
    MAX_NODES, or that holds itself. In one pass over the distinct nodes."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()  # the nodes being counted: the path from the root
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_NODES:
                raise yaml.constructor.ConstructorError(
                    None, None, f"holds over {MAX_NODES:,} values, counting each use of an alias", node.start_mark
                )
        elif key not in sizes:
            open_.add(key)
            stack.append((node, True))
            for child in _children(node):
                if id(child) in open_:
                    raise yaml.constructor.ConstructorError(
                        None, None, "an alias refers to a value that holds it", child.start_mark
                    )
                stack.append((child, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


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
