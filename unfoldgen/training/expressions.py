"""Evaluate the spec's parsed math (SymPy trees) on batched PyTorch tensors.

Training needs a few expressions outside the network: measurement models (``A @ x``),
estimates of the truth from the outputs (``U @ V.T``) and the objective's value. They were
parsed by the whitelisting parser into SymPy; this walks that tree (never text, never ``eval``)
and is differentiable, so the objective can be a loss.

Every tensor is 2-D per sample: a vector of size ``n`` is ``[..., n, 1]``; per-sample tensors
carry a leading batch axis and constants none, so ``torch.matmul`` broadcasts. Scalars are
``[..., 1, 1]`` tensors or floats.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import reduce
from typing import Any

import sympy as sp
import torch
from sympy.printing.printer import Printer

from unfoldgen.operators.linear import TableMatrix, is_operator, operator_of
from unfoldgen.symbolic.nodes import EntrySum, Map

Value = torch.Tensor | float
Env = Mapping[sp.Basic, Value]

ELEMENTWISE: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"Abs": torch.abs, "exp": torch.exp, "log": torch.log, "sign": torch.sign, "tanh": torch.tanh,
               "cosh": torch.cosh, "sinh": torch.sinh, "sigmoid": torch.sigmoid,
               "softplus": lambda t: torch.nn.functional.softplus(t, threshold=40.0)}  # exact in float64


def as_matrix(tensor: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """A tensor of per-sample ``shape`` (1-D vectors allowed) in the 2-D-per-sample layout."""
    return tensor.unsqueeze(-1) if len(shape) == 1 else tensor


def from_matrix(tensor: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Back from the 2-D layout to the per-sample ``shape``."""
    return tensor.squeeze(-1) if len(shape) == 1 else tensor


def evaluate(expr: sp.Basic, env: Env) -> Value:
    """The value of ``expr`` with the symbols bound in ``env`` (keys are the SymPy symbols)."""
    return TorchEvaluator(env).evaluate(expr)


class TorchEvaluator(Printer):
    """SymPy's printer dispatch (``_print_<Class>``), producing tensors instead of text."""

    def __init__(self, env: Env) -> None:
        super().__init__()
        self.env = env

    def evaluate(self, expr: sp.Basic) -> Value:
        return self._print(expr)

    def _print(self, expr: Any, **kwargs: Any) -> Any:
        if expr in self.env:
            return self.env[expr]
        return super()._print(expr, **kwargs)

    def emptyPrinter(self, expr: Any) -> Value:
        raise NotImplementedError(f"cannot evaluate {type(expr).__name__} ({expr}) in training")

    def _print_Number(self, expr: sp.Number) -> Value:
        return float(expr)

    def _print_Transpose(self, expr: sp.Transpose) -> Value:
        return _tensor(self.evaluate(expr.arg)).mT

    def _print_Add(self, expr: sp.Add) -> Value:
        return reduce(lambda a, b: a + b, (self.evaluate(a) for a in expr.args))

    _print_MatAdd = _print_Add

    def _print_Mul(self, expr: sp.Mul) -> Value:
        return reduce(lambda a, b: a * b, (self.evaluate(a) for a in expr.args))

    def _print_MatMul(self, expr: sp.MatMul) -> Value:
        scalars, factors = _split(expr)
        return self.scaled(self.chain(factors), scalars)

    def _print_Trace(self, expr: sp.Trace) -> Value:
        """``tr(P Q) = sum(P^T * Q)`` elementwise: ``sum_squares`` costs one pass, not a Gram matrix."""
        arg = expr.arg
        if isinstance(arg, sp.MatMul):
            scalars, factors = _split(arg)
            if len(factors) >= 2:
                left = _tensor(self.evaluate(factors[0]))
                right = self.chain(factors[1:])
                return self.scaled((left.mT * right).sum(dim=(-2, -1), keepdim=True), scalars)
        matrix = _tensor(self.evaluate(arg))
        return torch.diagonal(matrix, dim1=-2, dim2=-1).sum(-1).unsqueeze(-1).unsqueeze(-1)

    def _print_Pow(self, expr: sp.Pow) -> Value:
        return self.evaluate(expr.base) ** self.evaluate(expr.exp)

    def _print_MinMaxBase(self, expr: sp.Basic) -> Value:
        combine = torch.maximum if isinstance(expr, sp.Max) else torch.minimum
        values = [self.evaluate(a) for a in expr.args]
        like = next(v for v in values if isinstance(v, torch.Tensor))
        return reduce(combine, (torch.as_tensor(v, dtype=like.dtype, device=like.device) for v in values))

    def _print_Map(self, expr: Map) -> Value:
        """The body evaluated on the operands' tensors, entry by entry."""
        values = {v: self.evaluate(a) for v, a in zip(expr.function.variables, expr.arguments, strict=True)}
        return TorchEvaluator({**self.env, **values}).evaluate(expr.function.expr)

    def _print_EntrySum(self, expr: EntrySum) -> Value:
        return _tensor(self.evaluate(expr.matrix)).sum(dim=(-2, -1), keepdim=True)

    def _print_Piecewise(self, expr: sp.Piecewise) -> Value:
        return self.branches(expr.args)

    def branches(self, branches: tuple[tuple[sp.Basic, sp.Basic], ...]) -> Value:
        """The first branch whose condition holds, entry by entry."""
        (value, condition), rest = branches[0], branches[1:]
        if condition is sp.true or not rest:
            return self.evaluate(value)
        chosen = _tensor(self.evaluate(condition))
        other = _tensor(self.branches(rest)).to(chosen.device)
        return torch.where(chosen, _tensor(self.evaluate(value)).to(chosen.device), other)

    def _print_Relational(self, expr: sp.core.relational.Relational) -> Value:
        left, right = _tensor(self.evaluate(expr.lhs)), _tensor(self.evaluate(expr.rhs))
        return {">=": torch.ge, "<=": torch.le, ">": torch.gt, "<": torch.lt}[expr.rel_op](left, right)

    def _print_Function(self, expr: sp.Function) -> Value:
        function = ELEMENTWISE.get(type(expr).__name__)
        if function is None:
            return self.emptyPrinter(expr)
        return function(_tensor(self.evaluate(expr.args[0])))

    def scaled(self, value: torch.Tensor, scalars: list[sp.Basic]) -> torch.Tensor:
        for scalar in scalars:
            value = value * self.evaluate(scalar)
        return value

    def chain(self, factors: list[sp.MatrixExpr]) -> torch.Tensor:
        """Right to left, so matrix-vector products never become matrix-matrix products."""
        like = next((v for f in factors if isinstance(f, sp.MatrixSymbol)
                     for v in [self.evaluate(f)] if isinstance(v, torch.Tensor)), None)
        result = self.factor(factors[-1], like)
        for factor in reversed(factors[:-1]):
            if is_operator(factor):
                operator, adjoint = operator_of(factor)
                result = operator.evaluate(result, adjoint, self.evaluate)
            else:
                result = torch.matmul(self.factor(factor, result), result)
        return result

    def factor(self, factor: sp.MatrixExpr, like: torch.Tensor | None) -> torch.Tensor:
        """A factor's tensor; a table (the DCT matrix) takes the dtype of the tensors it meets."""
        if isinstance(factor, sp.Identity):
            reference = like if like is not None else _tensor(0.0)
            return torch.eye(int(self.evaluate(factor.shape[0])), dtype=reference.dtype, device=reference.device)
        table = factor.arg if isinstance(factor, sp.Transpose) and _table(factor) else factor
        if isinstance(table, TableMatrix):
            sizes = tuple(int(self.evaluate(s)) for s in table.args)
            value = table.value(sizes, like if like is not None else _tensor(0.0))
            return value.mT if table is not factor else value
        return _tensor(self.evaluate(factor))


def _table(factor: sp.Basic) -> bool:
    return isinstance(factor, TableMatrix) or (isinstance(factor, sp.Transpose) and isinstance(factor.arg, TableMatrix))


def _tensor(value: Value) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.tensor(value, dtype=torch.float64)


def _split(product: sp.MatMul) -> tuple[list[sp.Basic], list[sp.MatrixExpr]]:
    """A product's scalar factors and its matrix factors (in order)."""
    scalars = [a for a in product.args if not isinstance(a, sp.MatrixExpr)]
    return scalars, [a for a in product.args if isinstance(a, sp.MatrixExpr)]
