"""``M * x`` outside the smooth part: the entry-by-entry product with a constant mask (or any
constant weights) of the argument's shape, as a linear operator (in ``objective.smooth`` the
same text is an entry-by-entry map, differentiated by the calculus). It is its own adjoint, and
its norm is ``max |M|``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sympy as sp

from unfoldgen.operators.linear.base import LinearOperator

if TYPE_CHECKING:
    from typing_extensions import Self


class Mask(LinearOperator):
    """``args``: the mask (a matrix symbol), and the argument's rows and columns."""

    template = "mask"

    @property
    def weights(self) -> sp.MatrixExpr:
        return self.args[0]

    @property
    def image(self) -> bool:  # type: ignore[override]
        return self.args[2] != 1

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return (self.args[1], self.args[1])

    def array_call(self, adjoint: bool) -> tuple[str, tuple[sp.Basic, ...]]:
        return "mask", (self.weights,)

    def numba_call(self, adjoint: bool) -> tuple[str, tuple[sp.Basic, ...]]:
        return ("mask_2d" if self.image else "mask_1d"), (self.weights,)

    def evaluate(self, x: Any, adjoint: bool, value_of: Callable[[sp.Basic], Any]) -> Any:
        return x * value_of(self.weights)

    def norm(self) -> sp.Expr | None:
        return LargestMagnitude(self.weights)

    def norm_text(self) -> str:
        return r"exact: $\max |M|$"

    def _sympystr(self, printer: Any) -> str:
        return f"mask({printer._print(self.weights)})"

    def _latex(self, printer: Any) -> str:
        return rf"\left({printer._print(self.weights)} \odot\right)"


class LargestMagnitude(sp.Expr):
    """``max |M_ij|``: the norm of the mask's product."""

    is_real = True
    is_nonnegative = True
    is_commutative = True

    def __new__(cls, weights: sp.MatrixExpr) -> Self:
        return sp.Expr.__new__(cls, weights)

    def _sympystr(self, printer: Any) -> str:
        return f"max|{printer._print(self.args[0])}|"

    def _latex(self, printer: Any) -> str:
        return rf"\max\left|{printer._print(self.args[0])}\right|"


FUNCTIONS = ()
