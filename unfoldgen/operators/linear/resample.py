"""``downsample(x, s)`` keeps every ``s``-th entry (``x[::s]``); ``upsample(x, s)`` puts ``s - 1``
zeros after each entry. They are an adjoint pair, and both have norm 1 (vectors whose length
``s`` divides)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sympy as sp

from unfoldgen.operators.linear.base import LinearFunction, LinearOperator


class Resample(LinearOperator):
    """``args``: the factor s, 1 for upsampling (0: downsampling), the argument's length."""

    template = "resample"

    @property
    def factor(self) -> sp.Integer:
        return self.args[0]

    @property
    def up(self) -> bool:
        return bool(self.args[1])

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        n = self.args[2]
        return (n * self.factor, n) if self.up else (n / self.factor, n)

    def array_call(self, adjoint: bool) -> tuple[str, tuple[sp.Basic, ...]]:
        return ("upsample" if self.up != adjoint else "downsample"), (self.factor,)

    def evaluate(self, x: Any, adjoint: bool, value_of: Callable[[sp.Basic], Any]) -> Any:
        import torch

        factor = int(self.factor)
        if self.up == adjoint:  # keep every factor-th entry
            return x[..., ::factor, :]
        out = torch.zeros(*x.shape[:-2], x.shape[-2] * factor, x.shape[-1], dtype=x.dtype, device=x.device)
        out[..., ::factor, :] = x
        return out

    def norm(self) -> sp.Expr | None:
        return sp.Integer(1)

    def norm_text(self) -> str:
        return "exact: 1 (a selection of entries)"

    def _sympystr(self, printer: Any) -> str:
        return f"{'upsample' if self.up else 'downsample'}_{self.factor}"

    def _latex(self, printer: Any) -> str:
        return rf"{'U' if self.up else 'S'}_{{{self.factor}}}"


def _build(up: bool) -> Any:
    name = "upsample" if up else "downsample"

    def build(parser: Any, node: Any, args: list[Any]) -> Any:
        parser.expect_args(node, args, 2, name)
        signal, factor = args
        if len(signal.shape) != 1:
            raise parser.error(node, f"{name}(x, s) takes a vector x")
        if not (factor.is_scalar and factor.expr.is_Integer and int(factor.expr) >= 1):
            raise parser.error(node, f"the factor of {name}(x, s) must be a positive whole number")
        (length,) = parser.ns.size(signal.shape)
        if not up and length % int(factor.expr):
            raise parser.error(node, f"downsample(x, {factor.expr}) needs a length that {factor.expr} divides, "
                                     f"got {length}")
        return parser.apply(node, Resample(factor.expr, int(up), signal.expr.shape[0]), signal)
    return build


FUNCTIONS = (
    LinearFunction("downsample", "`downsample(x, s)`", "every s-th entry, x[::s] (vectors)", _build(False),
                   ("downsample",)),
    LinearFunction("upsample", "`upsample(x, s)`", "s - 1 zeros after each entry: the adjoint of downsample",
                   _build(True), ("upsample",)),
)
