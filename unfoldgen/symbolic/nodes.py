"""SymPy nodes the derivation needs beyond SymPy's own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sympy as sp

from unfoldgen.operators.linear.base import SameShape

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


class AnalyticWeight(SameShape):
    """ALISTA's analytic weight of a matrix ``A`` (m x n, m <= n, full row rank).

    ``W = argmin ||W^T A||_F^2  s.t.  diag(W^T A) = 1`` separates into one problem per column,
    ``min ||A^T w_i||^2 s.t. a_i^T w_i = 1``, with the closed form
    ``w_i = G a_i / (a_i^T G a_i)``, ``G = (A A^T)^{-1}``.
    """

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


class sigmoid(sp.Function):
    """The logistic function ``1 / (1 + exp(-t))``."""

    is_real = True

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        value = sigmoid(self.args[0])
        return value * (1 - value)

    def _eval_rewrite_as_exp(self, t: sp.Expr, **kwargs: Any) -> sp.Expr:
        return 1 / (1 + sp.exp(-t))


class softplus(sp.Function):
    """``log(1 + exp(t))``, computed stably by every backend."""

    is_real = True

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(self.args[0])

    def _eval_rewrite_as_exp(self, t: sp.Expr, **kwargs: Any) -> sp.Expr:
        return sp.log(1 + sp.exp(t))


class Map(sp.MatrixExpr):
    """A scalar function applied entry by entry: ``f(A_ij, B_ij, ...)`` for matrices of one shape.

    ``function`` is a ``Lambda`` of one variable per argument; scalars (params, numbers) live in
    its body. The parser fuses nested elementwise operations into one ``Map``, so
    ``log(1 + exp(-y * (A @ x)))`` is one map of ``y`` and ``A @ x``.
    """

    def __new__(cls, function: sp.Lambda, *arguments: sp.MatrixExpr) -> Self:
        return sp.MatrixExpr.__new__(cls, function, *arguments)

    @property
    def function(self) -> sp.Lambda:
        return self.args[0]

    @property
    def arguments(self) -> tuple[sp.MatrixExpr, ...]:
        return self.args[1:]

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return self.arguments[0].shape

    def body(self, values: tuple[sp.Basic, ...]) -> sp.Expr:
        """The function's body with its variables replaced by ``values``."""
        return self.function.expr.xreplace(dict(zip(self.function.variables, values, strict=True)))

    def _sympystr(self, printer: Any) -> str:
        names = tuple(sp.Symbol(printer._print(a) if isinstance(a, sp.MatrixSymbol) else f"({printer._print(a)})")
                      for a in self.arguments)
        return printer._print(self.body(names))

    def _latex(self, printer: Any) -> str:
        names = tuple(sp.Symbol(printer._print(a) if isinstance(a, sp.MatrixSymbol) else rf"\left({printer._print(a)}\right)")
                      for a in self.arguments)
        return printer._print(self.body(names))


class _OfEntries(sp.Expr):
    """A scalar computed from the entries of a matrix expression, printed ``label(E)``."""

    is_real = True
    is_commutative = True
    label = ""
    latex_label = ""

    def __new__(cls, matrix: sp.MatrixExpr) -> Self:
        return sp.Expr.__new__(cls, matrix)

    @property
    def matrix(self) -> sp.MatrixExpr:
        return self.args[0]

    def _sympystr(self, printer: Any) -> str:
        return f"{self.label}({printer._print(self.matrix)})"

    def _latex(self, printer: Any) -> str:
        return rf"{self.latex_label} \left({printer._print(self.matrix)}\right)"


class EntrySum(_OfEntries):
    """``sum(E)``: the sum of the entries of a matrix expression."""

    label, latex_label = "sum", r"\sum"


class EntryMax(_OfEntries):
    """The largest entry of a matrix expression of constants (used in Lipschitz bounds)."""

    label, latex_label = "max", r"\max"
