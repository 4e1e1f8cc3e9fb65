"""Printing scalar SymPy expressions as Python source, on SymPy's printer dispatch.

:class:`ScalarPrinter` is a :class:`sympy.printing.printer.Printer`: ``_print`` finds the
``_print_<Class>`` method of the expression's class (or of the nearest base class), as SymPy's
own code printers do. A backend differs only in its module table (:attr:`functions`: which
callable prints ``Abs``, ``exp``, ``Max``...), in how a conditional looks (:meth:`where`) and in
how a symbol is named (a resolver fed by the IR, :mod:`unfoldgen.backends.resolver`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import sympy as sp
from sympy.printing.printer import Printer

from unfoldgen.backends.hygiene import CANONICAL, Spelling
from unfoldgen.symbolic.nodes import is_negative_term


class ScalarPrinter(Printer):
    """Scalar arithmetic; subclasses set ``functions`` and :meth:`where`."""

    functions: ClassVar[dict[str, str]] = {}  # SymPy class name (and "sqrt") -> the callable, e.g. "{math}.sqrt"

    def __init__(self, symbol: Callable[[sp.Symbol], str], spelling: Spelling = CANONICAL) -> None:
        super().__init__()
        self.symbol = symbol
        self.g = spelling  # how the emitted code spells np, math, ... (around the spec's names)
        self.compound: set[sp.Basic] = set()  # symbols standing for compound code (a map's operands)

    def print(self, expr: sp.Basic) -> str:
        return str(self._print(expr))

    def _print(self, expr: Any, **kwargs: Any) -> Any:
        if isinstance(expr, sp.Expr) and not expr.is_Number and expr.is_number and expr.is_real \
                and expr.is_finite:  # sqrt(2), pi/4: a literal, not a call on an int
            return repr(float(expr))
        return super()._print(expr, **kwargs)

    def emptyPrinter(self, expr: Any) -> str:
        raise NotImplementedError(f"cannot print {expr!r} ({type(expr).__name__})")

    def where(self, condition: str, then: str, otherwise: str) -> str:
        raise NotImplementedError

    # -- atoms ------------------------------------------------------------------------------
    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return self.symbol(expr)

    def _print_BooleanTrue(self, expr: sp.Basic) -> str:
        return "True"

    def _print_BooleanFalse(self, expr: sp.Basic) -> str:
        return "False"

    def _print_Integer(self, expr: sp.Integer) -> str:
        return str(int(expr))

    def _print_Number(self, expr: sp.Number) -> str:
        return repr(float(expr))

    def _print_Infinity(self, expr: sp.Basic) -> str:
        return f"{self.g.math}.inf"

    def _print_NegativeInfinity(self, expr: sp.Basic) -> str:
        return f"-{self.g.math}.inf"

    # -- arithmetic -------------------------------------------------------------------------
    def _print_Add(self, expr: sp.Add) -> str:
        ordered = sorted(sp.Add.make_args(expr), key=is_negative_term)
        text = self.print(ordered[0])
        for term in ordered[1:]:
            if is_negative_term(term):
                text += f" - {self.mul_or_atom(-term)}"
            else:
                text += f" + {self.print(term)}"
        return text

    def _print_Mul(self, expr: sp.Mul) -> str:
        if expr.could_extract_minus_sign():
            return f"-{self.atom(-expr)}" if not isinstance(-expr, sp.Mul) else f"-{self.print(-expr)}"
        numerator, denominator = sp.fraction(expr)
        if denominator != 1:
            return f"{self.atom(numerator)} / {self.atom(denominator)}"
        return "*".join(self.atom(f) for f in expr.args)

    def _print_Pow(self, expr: sp.Pow) -> str:
        base, exponent = expr.args
        if exponent == -1:
            return f"1.0 / {self.atom(base)}"
        if exponent == sp.Rational(1, 2):
            return f"{self.g.format(self.table()['sqrt'])}({self.print(base)})"
        return f"{self.atom(base)} ** {self.atom(exponent)}"

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        return self.piecewise(expr.args)

    def _print_Relational(self, expr: sp.core.relational.Relational) -> str:
        return f"{self.atom(expr.lhs)} {expr.rel_op} {self.atom(expr.rhs)}"

    # -- the module table -------------------------------------------------------------------
    def _print_Function(self, expr: sp.Function) -> str:
        """Abs, exp, log, sign, tanh, cosh, sigmoid, softplus: a callable of the module table, or
        an inline formula of ``{x}`` where the library has none (NumPy's sigmoid)."""
        template = self.table().get(type(expr).__name__)
        if template is not None and "{x}" in template:
            return self.g.format(template, x=self.print(expr.args[0]))
        return self.call(self.callee(expr), tuple(expr.args))

    def _print_MinMaxBase(self, expr: sp.Basic) -> str:
        return self.call(self.callee(expr), tuple(expr.args))

    def table(self) -> dict[str, str]:
        """The module table: SymPy class name (and ``sqrt``) -> the callable that prints it."""
        return self.functions

    def callee(self, expr: sp.Basic) -> str:
        name = type(expr).__name__
        if name not in self.table():
            raise NotImplementedError(f"cannot print {expr!r}: no {name} in this backend's module table")
        return self.g.format(self.table()[name])

    def call(self, name: str, args: tuple[sp.Basic, ...]) -> str:
        if len(args) > 2 and name.endswith(("maximum", "minimum", "max", "min")):
            return self.call(name, (args[0], type(sp.Max(*args[1:]))(*args[1:])))
        return f"{name}({', '.join(self.print(a) for a in args)})"

    # -- helpers ----------------------------------------------------------------------------
    def atom(self, expr: sp.Basic) -> str:
        text = self.print(expr)
        needs_parens = isinstance(expr, (sp.Add, sp.Mul, sp.Pow)) or (expr.is_Number and expr < 0) \
            or expr in self.compound
        return f"({text})" if needs_parens else text

    def mul_or_atom(self, expr: sp.Basic) -> str:
        return self.print(expr) if isinstance(expr, sp.Mul) else self.atom(expr)

    def piecewise(self, branches: tuple[tuple[sp.Expr, sp.Basic], ...]) -> str:
        (value, condition), rest = branches[0], branches[1:]
        if condition is sp.true or not rest:
            return self.print(value)
        return self.where(self.print(condition), self.print(value), self.piecewise(rest))
