"""The registry of linear operators: every module of this package that defines ``FUNCTIONS``
adds spec functions applying a structured linear map (``conv``, ``diff``, ``dct``...). Adding an
operator is adding a module here and its helpers' template, ``templates/linear/<module>.py.j2``;
the parser's function names, the reserved names, the emitted helpers and the docs' table are
derived from :data:`LINEAR_FUNCTIONS`.
"""

from __future__ import annotations

import importlib
import pkgutil

from unfoldgen.operators.linear.base import (
    LinearFunction,
    LinearOperator,
    Materialized,
    TableMatrix,
    has_operator,
    is_operator,
    operator_of,
)


def _discover() -> dict[str, LinearFunction]:
    found: dict[str, LinearFunction] = {}
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base"):
        for function in importlib.import_module(f"{__name__}.{module}").FUNCTIONS:
            found[function.name] = function
    return found


LINEAR_FUNCTIONS: dict[str, LinearFunction] = _discover()
LINEAR_HELPERS: tuple[str, ...] = tuple(sorted({h for f in LINEAR_FUNCTIONS.values() for h in f.helpers} | {"dense_matrix"}))


def markdown_table() -> str:
    """The table of linear operators in docs/spec.md (a test keeps the page equal to it)."""
    rows = [f"| {f.usage} | {f.summary} |" for f in LINEAR_FUNCTIONS.values()]
    return "\n".join(["| function | what it is |", "| --- | --- |", *rows])


__all__ = ["LINEAR_FUNCTIONS", "LINEAR_HELPERS", "LinearFunction", "LinearOperator", "Materialized", "TableMatrix",
           "has_operator", "is_operator", "markdown_table", "operator_of"]
