"""Safe YAML reading that remembers where every key came from.

The spec is untrusted text: only YAML's safe core schema is accepted (no ``!!python`` tags),
the size is capped, and aliases are expanded under a node budget so an alias bomb fails fast.
Each value is recorded with its line, so later errors can say "objective.smooth (line 12)".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from unfoldgen.errors import SpecError

MAX_SPEC_BYTES = 1_000_000
TOO_LARGE_HINT = "a spec describes a problem, not its data: load large constants from files (data.constants)"
MAX_NODES = 20_000
_PLAIN_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


@dataclass
class SourceMap:
    """Line numbers (1-based) of every key path in a spec, e.g. ``("objective", "smooth")``."""

    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict)

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        """The line of ``path``, or of its nearest ancestor that YAML located."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def format_path(path: tuple[str | int, ...]) -> str:
    """``("objective", "nonsmooth", 0)`` -> ``objective.nonsmooth[0]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def parse_yaml(text: str) -> tuple[Any, SourceMap]:
    """Parse YAML text into plain Python data and a :class:`SourceMap`."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SPEC_BYTES:
        raise SpecError(
            f"the spec is larger than {MAX_SPEC_BYTES // 1000} kB",
            hint=TOO_LARGE_HINT,
        )
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise SpecError(
            f"invalid YAML: {exc.problem or exc.context}",
            line=mark.line + 1 if mark else None,
            hint="check indentation, colons and brackets around this line",
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    if node is None:
        raise SpecError("the spec is empty", hint="start from one of the specs in specs/")
    source = SourceMap()
    budget = [MAX_NODES]
    data = _convert(node, (), source, budget, loader)
    return data, source


def _convert(
    node: yaml.Node,
    path: tuple[str | int, ...],
    source: SourceMap,
    budget: list[int],
    loader: yaml.SafeLoader,
) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise SpecError(
            f"the spec expands to more than {MAX_NODES} YAML nodes",
            line=node.start_mark.line + 1,
            hint="remove deeply repeated aliases (&anchor / *alias)",
        )
    source.lines.setdefault(path, node.start_mark.line + 1)
    if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_COLLECTION_TAGS:
        raise SpecError(
            f"unsupported YAML tag '{node.tag}'",
            key_path=format_path(path),
            line=node.start_mark.line + 1,
            hint="only plain numbers, strings, lists and mappings are allowed (no !!tags)",
        )
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError(
                    "keys must be plain names",
                    key_path=format_path(path),
                    line=key_node.start_mark.line + 1,
                )
            key = str(key_node.value)
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise SpecError("YAML merge keys (<<) are not supported", key_path=format_path(path),
                                line=key_node.start_mark.line + 1)
            if key in result:
                raise SpecError(
                    f"duplicate key '{key}'",
                    key_path=format_path(path + (key,)),
                    line=key_node.start_mark.line + 1,
                    hint="each key may appear once in a mapping",
                )
            source.lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = _convert(value_node, path + (key,), source, budget, loader)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _convert(item, path + (i,), source, budget, loader) for i, item in enumerate(node.value)
        ]
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise SpecError(
            f"unsupported YAML value: {getattr(exc, 'problem', exc)}",
            key_path=format_path(path),
            line=node.start_mark.line + 1,
            hint="only plain numbers, strings, lists and mappings are allowed (no !!tags)",
        ) from None
