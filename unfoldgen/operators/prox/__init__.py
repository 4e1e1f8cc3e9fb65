"""The registry of prox functions: every module of this package that defines ``FUNCTION`` is
one spec function of the nonsmooth part. Adding a function is adding a module here (and its
helper's template, ``templates/prox/<helper>.py.j2``); every table the compiler needs (the
parser's function names, the reserved names, the training values, the costs, the emitted
helpers, the documentation) is derived from :data:`FUNCTIONS` and :data:`HELPERS`.
"""

from __future__ import annotations

import importlib
import pkgutil

from unfoldgen.operators.prox.base import Helper, ProxFunction


def _discover() -> dict[str, ProxFunction]:
    found: dict[str, ProxFunction] = {}
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base"):
        function = importlib.import_module(f"{__name__}.{module}").FUNCTION
        assert function.name == module, f"{module}.py defines '{function.name}'"
        found[function.name] = function
    return found


def _helpers(functions: dict[str, ProxFunction]) -> dict[str, Helper]:
    """Every helper, each after the helpers it calls (so emitted code reads top-down)."""
    ordered: dict[str, Helper] = {}

    def add(helper: Helper) -> None:
        for required in helper.requires:
            add(required)
        ordered.setdefault(helper.name, helper)

    for function in functions.values():
        add(function.helper)
    return ordered


FUNCTIONS: dict[str, ProxFunction] = _discover()
HELPERS: dict[str, Helper] = _helpers(FUNCTIONS)


def markdown_table() -> str:
    """The table of nonsmooth terms in docs/spec.md (a test keeps the page equal to it)."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = [f"| {f.usage()} | {cell(f.summary)} | {cell(f.prox_summary)} |" for f in FUNCTIONS.values()]
    return "\n".join(["| term | what it is | prox |", "| --- | --- | --- |", *rows])


__all__ = ["FUNCTIONS", "HELPERS", "Helper", "ProxFunction", "markdown_table"]
