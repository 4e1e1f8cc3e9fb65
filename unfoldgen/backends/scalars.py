"""Printing scalar SymPy expressions, shared by both backends.

A backend says how a symbol, a conditional and a few functions look; the arithmetic is common.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import sympy as sp

from unfoldgen.symbolic.nodes import is_negative_term


class ScalarPrinter:
    """Print scalar expressions as Python source. Subclasses set ``functions`` and ``where``."""

    functions: ClassVar[dict[type[sp.Basic], str]] = {}

    def __init__(self, symbol: Callable[[sp.Symbol], str]) -> None:
        self.symbol = symbol

    def where(self, condition: str, then: str, otherwise: str) -> str:
        raise NotImplementedError

    def print(self, expr: sp.Basic) -> str:
        if isinstance(expr, (sp.Symbol, sp.Dummy)):
            return self.symbol(expr)
        if expr is sp.true:
            return "True"
        if expr.is_Number:
            if expr.is_infinite:
                return "math.inf" if expr > 0 else "-math.inf"
            return str(int(expr)) if expr.is_Integer else repr(float(expr))
        if expr.is_number and expr.is_real and expr.is_finite:  # sqrt(2), pi/4: a literal, not a call on an int
            return repr(float(expr))
        if isinstance(expr, sp.Add):
            return self.add(expr)
        if isinstance(expr, sp.Mul):
            return self.mul(expr)
        if isinstance(expr, sp.Pow):
            base, exponent = expr.args
            if exponent == -1:
                return f"1.0 / {self.atom(base)}"
            if exponent == sp.Rational(1, 2):
                return f"{self.functions[sp.sqrt]}({self.print(base)})"
            return f"{self.atom(base)} ** {self.atom(exponent)}"
        if isinstance(expr, sp.Piecewise):
            return self.piecewise(expr.args)
        if isinstance(expr, sp.core.relational.Relational):
            return f"{self.atom(expr.lhs)} {expr.rel_op} {self.atom(expr.rhs)}"
        for kind, name in self.functions.items():
            if isinstance(expr, kind):
                return self.call(name, tuple(expr.args))
        raise NotImplementedError(f"cannot print {expr!r} ({type(expr).__name__})")

    def call(self, name: str, args: tuple[sp.Basic, ...]) -> str:
        if len(args) > 2 and name.endswith(("maximum", "minimum", "max", "min")):
            return self.call(name, (args[0], type(sp.Max(*args[1:]))(*args[1:])))
        return f"{name}({', '.join(self.print(a) for a in args)})"

    def atom(self, expr: sp.Basic) -> str:
        text = self.print(expr)
        needs_parens = isinstance(expr, (sp.Add, sp.Mul, sp.Pow)) or (expr.is_Number and expr < 0)
        return f"({text})" if needs_parens else text

    def add(self, expr: sp.Add) -> str:
        terms = sp.Add.make_args(expr)
        ordered = sorted(terms, key=is_negative_term)
        text = self.print(ordered[0])
        for term in ordered[1:]:
            if is_negative_term(term):
                text += f" - {self.mul_or_atom(-term)}"
            else:
                text += f" + {self.print(term)}"
        return text

    def mul_or_atom(self, expr: sp.Basic) -> str:
        return self.print(expr) if isinstance(expr, sp.Mul) else self.atom(expr)

    def mul(self, expr: sp.Mul) -> str:
        if expr.could_extract_minus_sign():
            return f"-{self.atom(-expr)}" if not isinstance(-expr, sp.Mul) else f"-{self.print(-expr)}"
        numerator, denominator = sp.fraction(expr)
        if denominator != 1:
            return f"{self.atom(numerator)} / {self.atom(denominator)}"
        return "*".join(self.atom(f) for f in expr.args)

    def piecewise(self, branches: tuple[tuple[sp.Expr, sp.Basic], ...]) -> str:
        (value, condition), rest = branches[0], branches[1:]
        if condition is sp.true or not rest:
            return self.print(value)
        return self.where(self.print(condition), self.print(value), self.piecewise(rest))
