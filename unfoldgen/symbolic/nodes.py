"""SymPy nodes the derivation needs beyond SymPy's own."""

from __future__ import annotations

from typing import Any

import sympy as sp


class SpectralNorm(sp.Expr):
    """``||M||_2``, the largest singular value of a matrix expression of constants."""

    is_real = True
    is_nonnegative = True
    is_commutative = True

    def __new__(cls, matrix: sp.MatrixExpr) -> SpectralNorm:
        return sp.Expr.__new__(cls, matrix)

    @property
    def matrix(self) -> sp.MatrixExpr:
        return self.args[0]

    def _latex(self, printer: Any) -> str:
        return rf"\left\|{printer._print(self.matrix)}\right\|_2"

    def _sympystr(self, printer: Any) -> str:
        return f"spectral_norm({printer._print(self.matrix)})"


def is_negative_term(term: sp.Basic) -> bool:
    """True for a term printed with a leading minus, e.g. ``-t*g`` (scalar or matrix)."""
    if isinstance(term, sp.MatMul):
        return sp.Mul(*(a for a in term.args if not isinstance(a, sp.MatrixExpr))).could_extract_minus_sign()
    if isinstance(term, sp.MatrixExpr):
        return False
    return term.could_extract_minus_sign()
