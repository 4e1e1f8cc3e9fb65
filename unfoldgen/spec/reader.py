"""Reading raw spec data with located errors, and the few names a spec cannot declare.

:class:`SpecReader` is shared by every stage that reads a part of the spec: the spec loader,
the experiment sections, and the methods (``unfoldgen.ir.methods``), which read their own keys
of the ``algorithm`` section when the spec is lowered.
"""

from __future__ import annotations

import keyword
import re
from typing import Any

from unfoldgen.errors import SpecError
from unfoldgen.operators.linear import LINEAR_FUNCTIONS, LINEAR_HELPERS
from unfoldgen.operators.prox import FUNCTIONS, HELPERS
from unfoldgen.spec.model import Located
from unfoldgen.spec.yaml_source import SourceMap, format_path

# The few names a spec cannot use, each with the reason the message gives: the spec language's
# own words. Every name of the generated code is spelled around the spec's names
# (unfoldgen/backends/hygiene.py; docs/spec.md, "Names").
RESERVED: dict[str, str] = {
    **dict.fromkeys(("sum", "abs", "sqrt", "exp", "log", "max", "min", "sign", "zeros", "quad_form",
                     "dot", "trace", "inv", "svd_left", "svd_right"), "it is a function of the spec language"),
    **dict.fromkeys(FUNCTIONS, "it is a prox function of the spec language"),
    **dict.fromkeys(HELPERS, "it is a prox helper that custom iterations call"),
    **dict.fromkeys(LINEAR_FUNCTIONS, "it is a linear operator of the spec language"),
    **dict.fromkeys(LINEAR_HELPERS, "it is a helper of the generated code that applies a linear operator"),
}
RESERVED_NAMES = frozenset(RESERVED)
IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,30}$")


class SpecReader:
    """Reads one spec's raw data, remembering where each value came from."""

    def __init__(self, data: Any, source: SourceMap, file: str) -> None:
        self.data = data
        self.source = source
        self.file = file

    def error(self, path: tuple[str | int, ...], message: str, hint: str | None = None) -> SpecError:
        return SpecError(
            message, key_path=format_path(path) or None, line=self.source.line_of(path),
            hint=hint, file=self.file,
        )

    def located(self, path: tuple[str | int, ...], text: str) -> Located:
        return Located(text, format_path(path), self.source.line_of(path))

    def mapping(self, value: Any, path: tuple[str | int, ...], what: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(path, f"{what} must be a mapping", hint=f"write it as 'key: value' lines under {format_path(path)}")
        return value

    def check_keys(self, value: dict[str, Any], path: tuple[str | int, ...], allowed: dict[str, str]) -> None:
        for key in value:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise self.error(path + (key,), f"unknown key '{key}'", hint=f"known keys here: {known}")

    def name(self, name: str, path: tuple[str | int, ...], taken: set[str]) -> str:
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            raise self.error(path, f"'{name}' is not a valid name",
                             hint="use a letter followed by letters, digits or '_' (at most 31 characters)")
        if keyword.iskeyword(name) or name in RESERVED_NAMES:
            reason = "it is a Python keyword" if keyword.iskeyword(name) else RESERVED[name]
            raise self.error(path, f"'{name}' is a reserved name: {reason}",
                             hint="pick another name; docs/spec.md says which names are reserved and why")
        if name in taken:
            raise self.error(path, f"the name '{name}' is declared twice",
                             hint="dims, inputs, constants, params and variables share one namespace")
        taken.add(name)
        return name

    def is_new_name(self, name: Any, taken: set[str]) -> bool:
        """Whether ``name`` could be declared now (an identifier, not reserved, not taken)."""
        return (isinstance(name, str) and bool(IDENTIFIER.match(name)) and not keyword.iskeyword(name)
                and name not in RESERVED_NAMES and name not in taken)

    def text(self, value: Any, path: tuple[str | int, ...], what: str) -> Located:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.error(path, f"{what} must be an expression written as text")
        return self.located(path, str(value))
