"""What one sample's arithmetic costs, read off the IR: floating-point operations.

FLOPs count what the math needs, the way BLAS and LAPACK are usually credited: ``2 m k n`` for
an ``(m x k) @ (k x n)`` product (right-associated, as both backends compute chains), one per
entry for an addition or a scaling, a few per entry for an elementwise prox, and the usual
dense estimates for factorisations (thin SVD ``6 m n^2 + 20 n^3`` with ``m >= n``, inversion
``2 n^3``). Values computed once for all samples (derived tensors) are not counted. The
benchmark reports them; the kernel decides from them whether a batch is worth sharing among
threads.
"""

from __future__ import annotations

import math
from typing import Any

import sympy as sp
from sympy.printing.printer import Printer

from unfoldgen.ir.program import ApplyNetwork, ApplyProx, Assign, Network, Program, Step
from unfoldgen.operators.linear import LinearOperator, is_operator, operator_of
from unfoldgen.operators.prox.base import svd_flops
from unfoldgen.symbolic.nodes import LowRankFactor, Map


def sample_flops(program: Program) -> int:
    """FLOPs of one sample through every layer (its initial steps included)."""
    flops = sum(step_flops(program, s) for s in program.init_steps)
    return int(flops + program.layers * sum(step_flops(program, s) for s in program.steps))


def step_flops(program: Program, step: Step) -> int:
    if isinstance(step, Assign):
        return expr_flops(program, step.expr)
    if isinstance(step, ApplyNetwork):
        return network_flops(step.network) + math.prod(step.network.output_shape)
    return prox_flops(program, step)


def prox_flops(program: Program, step: ApplyProx) -> int:
    shape = program.shape_of(step.argument)
    entries = math.prod(shape)
    flops = expr_flops(program, step.argument)
    if step.support is not None:
        flops += int(entries * math.log2(max(entries, 2)))  # sorting the magnitudes
    for stage in step.prox.stages:
        if stage.helper is None:
            assert stage.formula is not None
            flops += entries * max(int(sp.count_ops(stage.formula)), 1)
        else:
            flops += stage.helper.flops(shape)
    return flops


def network_flops(network: Network) -> int:
    """Dense layers: 2 in out + out; 3x3 convolutions: 2 * 9 c_in c_out per pixel, + bias."""
    flops = 0
    pixels = math.prod(network.output_shape) if network.kind == "cnn" else 1
    for fan_in, fan_out in zip(network.sizes, network.sizes[1:], strict=False):
        weight = 9 * fan_in * fan_out if network.kind == "cnn" else fan_in * fan_out
        flops += (2 * weight + 2 * fan_out) * pixels  # multiply-adds, bias, activation
    return flops


def expr_flops(program: Program, expr: sp.Basic) -> int:
    return FlopCounter(program).count(expr)


class FlopCounter(Printer):
    """SymPy's printer dispatch (``_print_<Class>``), producing FLOP counts: a matrix node
    costs its children plus its own work; scalars, symbols and transposes cost nothing."""

    def __init__(self, program: Program) -> None:
        super().__init__()
        self.program = program

    def count(self, expr: sp.Basic) -> int:
        if not isinstance(expr, sp.MatrixExpr):
            return 0
        return int(self._print(expr))

    def children(self, expr: sp.Basic) -> int:
        return sum(self.count(a) for a in expr.args)

    def entries(self, expr: sp.MatrixExpr) -> int:
        return math.prod(self.program.shape_of(expr))

    def emptyPrinter(self, expr: Any) -> int:  # transposes, symbols, identities
        return self.children(expr)

    def _print_MatAdd(self, expr: sp.MatAdd) -> int:
        return self.children(expr) + (len(expr.args) - 1) * self.entries(expr)

    def _print_MatMul(self, expr: sp.MatMul) -> int:
        factors = [a for a in expr.args if isinstance(a, sp.MatrixExpr)]
        scaled = any(not isinstance(a, sp.MatrixExpr) and abs(a) != 1 for a in expr.args)
        return self.children(expr) + chain_flops(self.program, factors) + (self.entries(expr) if scaled else 0)

    def _print_Map(self, expr: Map) -> int:
        """One pass over the entries, the body's operations per entry."""
        return self.children(expr) + self.entries(expr) * max(int(sp.count_ops(expr.function.expr)), 1)

    def _print_Inverse(self, expr: sp.Inverse) -> int:
        return self.children(expr) + 2 * self.program.size(expr.shape[0]) ** 3

    def _print_LowRankFactor(self, expr: LowRankFactor) -> int:
        rows, cols = self.program.shape_of(expr.matrix)
        return self.count(expr.matrix) + svd_flops(rows, cols)


def chain_flops(program: Program, factors: list[sp.MatrixExpr]) -> int:
    """``F1 @ ... @ Fn`` evaluated right to left: 2 m k n per product, and a linear operator's
    own count (a 5-tap convolution is 10 per entry, not a dense product)."""
    flops = 0
    cols = program.size(factors[-1].shape[1])
    for factor in reversed(factors[:-1]):
        if is_operator(factor):
            operator, _ = operator_of(factor)
            flops += _sized(program, operator).flops(cols)
            continue
        rows, inner = program.size(factor.shape[0]), program.size(factor.shape[1])
        flops += 2 * rows * inner * cols
    return flops


def _sized(program: Program, operator: LinearOperator) -> LinearOperator:
    """The operator with its dims replaced by their values (its count is a number)."""
    return operator.xreplace({sp.Symbol(n, integer=True, positive=True): sp.Integer(v) for n, v in program.dims.items()})
