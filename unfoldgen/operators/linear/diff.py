"""``diff(x)``: ``x[1:] - x[:-1]``, as ``numpy.diff``, for vectors (one entry fewer out).

Its adjoint is ``y -> (-y[0], y[0] - y[1], ..., y[-1])``. ``D^T D`` is the path graph's
Laplacian, with eigenvalues ``4 sin^2(pi k / 2n)``, so ``||D||_2 = 2 cos(pi / 2n)`` exactly
(below 2, the bound usually quoted).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sympy as sp

from unfoldgen.operators.linear.base import LinearFunction, LinearOperator


class Difference(LinearOperator):
    """``args``: the length n of the argument."""

    template = "diff"

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return (self.args[0] - 1, self.args[0])

    def array_call(self, adjoint: bool) -> tuple[str, tuple[sp.Basic, ...]]:
        return "diff", (sp.true if adjoint else sp.false,)

    def evaluate(self, x: Any, adjoint: bool, value_of: Callable[[sp.Basic], Any]) -> Any:
        import torch

        if adjoint:
            zero = torch.zeros_like(x[..., :1, :])
            return torch.cat([zero, x], dim=-2) - torch.cat([x, zero], dim=-2)
        return x[..., 1:, :] - x[..., :-1, :]

    def norm(self) -> sp.Expr | None:
        return 2 * sp.cos(sp.pi / (2 * self.args[0]))

    def norm_text(self) -> str:
        return r"exact: $2\cos(\pi / 2n)$"

    def flops(self, columns: int) -> int:
        return int(self.args[0]) * columns

    def _sympystr(self, printer: Any) -> str:
        return "diff"

    def _latex(self, printer: Any) -> str:
        return r"\Delta"


def _build(parser: Any, node: Any, args: list[Any]) -> Any:
    parser.expect_args(node, args, 1, "diff")
    (signal,) = args
    if len(signal.shape) != 1:
        raise parser.error(node, "diff(x) takes a vector", hint="for an image, tv(X), tv1(X) or grad2d(X)")
    if parser.ns.size(signal.shape)[0] < 2:
        raise parser.error(node, "diff(x) needs a vector of at least 2 entries")
    return parser.apply(node, Difference(signal.expr.shape[0]), signal)


def _build_adjoint(parser: Any, node: Any, args: list[Any]) -> Any:
    parser.expect_args(node, args, 1, "diff_adjoint")
    (signal,) = args
    if len(signal.shape) != 1:
        raise parser.error(node, "diff_adjoint(y) takes a vector")
    return parser.apply(node, Difference(signal.expr.shape[0] + 1), signal, adjoint=True)


FUNCTIONS = (
    LinearFunction("diff", "`diff(x)`", "x[1:] - x[:-1], as numpy.diff (vectors)", _build, ("diff",)),
    LinearFunction("diff_adjoint", "`diff_adjoint(y)`", "its adjoint, (-y[0], y[0] - y[1], ..., y[-1]): one entry more",
                   _build_adjoint, ()),
)
