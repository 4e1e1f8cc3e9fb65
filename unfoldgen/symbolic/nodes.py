"""SymPy nodes the derivation needs beyond SymPy's own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sympy as sp

if TYPE_CHECKING:
    from typing_extensions import Self


class SpectralNorm(sp.Expr):
    """``||M||_2``, the largest singular value of a matrix expression of constants."""

    is_real = True
    is_nonnegative = True
    is_commutative = True

    def __new__(cls, matrix: sp.MatrixExpr) -> Self:
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


class AnalyticWeight(sp.MatrixExpr):
    """ALISTA's analytic weight of a matrix ``A`` (m x n, m <= n, full row rank).

    ``W = argmin ||W^T A||_F^2  s.t.  diag(W^T A) = 1`` separates into one problem per column,
    ``min ||A^T w_i||^2 s.t. a_i^T w_i = 1``, with the closed form
    ``w_i = G a_i / (a_i^T G a_i)``, ``G = (A A^T)^{-1}``.
    """

    def __new__(cls, matrix: sp.MatrixExpr) -> Self:
        return sp.MatrixExpr.__new__(cls, matrix)

    @property
    def matrix(self) -> sp.MatrixExpr:
        return self.args[0]

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return self.matrix.shape

    def _latex(self, printer: Any) -> str:
        return rf"\operatorname{{analytic}}\left({printer._print(self.matrix)}\right)"

    def _sympystr(self, printer: Any) -> str:
        return f"analytic_weight({printer._print(self.matrix)})"


class LowRankFactor(sp.MatrixExpr):
    """A factor of the rank-``r`` truncated SVD ``M ~ U_r S_r V_r^T``: ``U_r S_r^{1/2}``
    (``side`` 0) or ``V_r S_r^{1/2}`` (``side`` 1), so ``M ~ left @ right.T``."""

    def __new__(cls, matrix: sp.MatrixExpr, rank: sp.Expr, side: sp.Integer) -> Self:
        return sp.MatrixExpr.__new__(cls, matrix, rank, side)

    @property
    def matrix(self) -> sp.MatrixExpr:
        return self.args[0]

    @property
    def rank(self) -> sp.Expr:
        return self.args[1]

    @property
    def side(self) -> int:
        return int(self.args[2])

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return (self.matrix.shape[self.side], self.args[1])

    def _sympystr(self, printer: Any) -> str:
        name = "svd_left" if self.side == 0 else "svd_right"
        return f"{name}({printer._print(self.matrix)}, {self.rank})"

    def _latex(self, printer: Any) -> str:
        factor = "U_r" if self.side == 0 else "V_r"
        return rf"{factor} \Sigma_r^{{1/2}}\left({printer._print(self.matrix)}\right)"
