"""One-line plain-text math for the comments of emitted code, e.g. ``A.T @ (A @ x - y)``."""

from __future__ import annotations

import sympy as sp
from sympy.printing.str import StrPrinter

from unfoldgen.symbolic.nodes import Map, is_negative_term


class _CommentPrinter(StrPrinter):
    def _print_MatMul(self, expr: sp.MatMul) -> str:
        scalars = [a for a in expr.args if not isinstance(a, sp.MatrixExpr)]
        matrices = [a for a in expr.args if isinstance(a, sp.MatrixExpr)]
        parts = [f"({self._print(m)})" if isinstance(m, Map) else self.parenthesize(m, 60) for m in matrices]
        text = " @ ".join(parts)
        if scalars:
            coeff = sp.Mul(*scalars)
            if coeff.could_extract_minus_sign():
                coeff = -coeff
                return "-" + (text if coeff == 1 else f"{self.parenthesize(coeff, 50)}*{text}")
            return f"{self.parenthesize(coeff, 50)}*{text}"
        return text

    def _print_MatAdd(self, expr: sp.MatAdd) -> str:
        terms = sorted(expr.args, key=is_negative_term)
        text = self._print(terms[0])
        for term in terms[1:]:
            text += f" - {self._print(-term)}" if is_negative_term(term) else f" + {self._print(term)}"
        return text

    def _print_Inverse(self, expr: sp.Inverse) -> str:
        return f"inv({self._print(expr.arg)})"

    def _print_Dummy(self, expr: sp.Dummy) -> str:
        return expr.name


def math_text(expr: sp.Basic) -> str:
    return _CommentPrinter().doprint(expr)
