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

from collections.abc import Mapping
from functools import reduce

import sympy as sp
import torch

Value = torch.Tensor | float
Env = Mapping[sp.Basic, Value]

_ELEMENTWISE = {sp.Abs: torch.abs, sp.exp: torch.exp, sp.log: torch.log, sp.sign: torch.sign}


def as_matrix(tensor: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """A tensor of per-sample ``shape`` (1-D vectors allowed) in the 2-D-per-sample layout."""
    return tensor.unsqueeze(-1) if len(shape) == 1 else tensor


def from_matrix(tensor: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Back from the 2-D layout to the per-sample ``shape``."""
    return tensor.squeeze(-1) if len(shape) == 1 else tensor


def evaluate(expr: sp.Basic, env: Env) -> Value:
    """The value of ``expr`` with the symbols bound in ``env`` (keys are the SymPy symbols)."""
    if expr in env:
        return env[expr]
    if isinstance(expr, sp.Number):
        return float(expr)
    if isinstance(expr, sp.Transpose):
        return _tensor(evaluate(expr.arg, env)).mT
    if isinstance(expr, sp.MatAdd | sp.Add):
        return reduce(lambda a, b: a + b, (evaluate(a, env) for a in expr.args))
    if isinstance(expr, sp.MatMul):
        return _matmul(expr, env)
    if isinstance(expr, sp.Mul):
        return reduce(lambda a, b: a * b, (evaluate(a, env) for a in expr.args))
    if isinstance(expr, sp.Trace):
        return _trace(expr.arg, env)
    if isinstance(expr, sp.Pow):
        return evaluate(expr.base, env) ** evaluate(expr.exp, env)
    if isinstance(expr, sp.Max | sp.Min):
        combine = torch.maximum if isinstance(expr, sp.Max) else torch.minimum
        values = [evaluate(a, env) for a in expr.args]
        like = next(v for v in values if isinstance(v, torch.Tensor))
        return reduce(combine, (torch.as_tensor(v, dtype=like.dtype, device=like.device) for v in values))
    for function, torch_function in _ELEMENTWISE.items():
        if isinstance(expr, function):
            return torch_function(_tensor(evaluate(expr.args[0], env)))
    raise NotImplementedError(f"cannot evaluate {type(expr).__name__} ({expr}) in training")


def _tensor(value: Value) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.tensor(value, dtype=torch.float64)


def _split(product: sp.MatMul) -> tuple[list[sp.Basic], list[sp.MatrixExpr]]:
    """A product's scalar factors and its matrix factors (in order)."""
    scalars = [a for a in product.args if not isinstance(a, sp.MatrixExpr)]
    return scalars, [a for a in product.args if isinstance(a, sp.MatrixExpr)]


def _scaled(value: torch.Tensor, scalars: list[sp.Basic], env: Env) -> torch.Tensor:
    for scalar in scalars:
        value = value * evaluate(scalar, env)
    return value


def _matmul(expr: sp.MatMul, env: Env) -> Value:
    scalars, factors = _split(expr)
    return _scaled(_chain(factors, env), scalars, env)


def _chain(factors: list[sp.MatrixExpr], env: Env) -> torch.Tensor:
    """Right to left, so matrix-vector products never become matrix-matrix products."""
    result = _tensor(evaluate(factors[-1], env))
    for factor in reversed(factors[:-1]):
        result = torch.matmul(_tensor(evaluate(factor, env)), result)
    return result


def _trace(arg: sp.MatrixExpr, env: Env) -> torch.Tensor:
    """``tr(P Q) = sum(P^T * Q)`` elementwise: ``sum_squares`` costs one pass, not a Gram matrix."""
    if isinstance(arg, sp.MatMul):
        scalars, factors = _split(arg)
        if len(factors) >= 2:
            left = _tensor(evaluate(factors[0], env))
            right = _chain(factors[1:], env)
            return _scaled((left.mT * right).sum(dim=(-2, -1), keepdim=True), scalars, env)
    matrix = _tensor(evaluate(arg, env))
    return torch.diagonal(matrix, dim1=-2, dim2=-1).sum(-1).unsqueeze(-1).unsqueeze(-1)
