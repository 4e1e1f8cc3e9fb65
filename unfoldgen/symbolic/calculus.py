"""Gradients of ``sum(E(x))`` through elementwise maps, by the chain rule (reverse mode).

SymPy differentiates traces of products (the quadratic terms) but not a Hadamard product or a
function applied entry by entry. For ``sum(E)`` the gradient is the vector-Jacobian product of
``E`` with a matrix of ones, pulled back through ``E``'s nodes:

- ``f.(U, V, ...)`` (a :class:`Map`): ``U`` receives ``df/dU .* G`` (``G`` what reached the map);
- ``P @ U @ Q`` with ``U`` depending on ``x``: ``U`` receives ``P^T @ G @ Q^T``;
- ``U^T``: ``U`` receives ``G^T``; a sum passes ``G`` to each term.

The partial derivatives are SymPy's, kept in the maps' bodies, so the gradient prints as the
math reads: ``-A.T @ (y * sigmoid(-y * (A @ x)))`` for the logistic loss.
"""

from __future__ import annotations

import sympy as sp

from unfoldgen.errors import SpecError
from unfoldgen.symbolic.nodes import Map


def sum_gradient(matrix: sp.MatrixExpr, var: sp.MatrixSymbol) -> sp.MatrixExpr:
    """The gradient of ``sum(matrix)`` with respect to ``var`` (same shape as ``var``)."""
    gradient = _pull(matrix, var, None)
    return gradient if gradient is not None else sp.ZeroMatrix(*var.shape)


def _ones(shape: tuple[sp.Expr, sp.Expr]) -> sp.MatrixExpr:
    """Where ``sum`` is taken of an expression linear in the variable, its gradient is a matrix
    of ones pulled back; the emitted code has no such matrix, so the term is refused."""
    raise SpecError("a sum(...) of an expression linear in the variable is not supported",
                    hint="write linear terms with dot(c, x), e.g. dot(A.T @ ones_vector, x)")


def _pull(expr: sp.MatrixExpr, var: sp.MatrixSymbol, upstream: sp.MatrixExpr | None) -> sp.MatrixExpr | None:
    """What ``var`` receives from ``expr`` when ``expr`` receives ``upstream`` (None: ones).
    None when ``expr`` does not depend on ``var``."""
    if not expr.has(var):
        return None
    if expr == var:
        return upstream if upstream is not None else _ones(var.shape)
    if isinstance(expr, sp.MatAdd):
        return _add([_pull(term, var, upstream) for term in expr.args])
    if isinstance(expr, sp.Transpose):
        return _pull(expr.arg, var, upstream.T if upstream is not None else None)
    if isinstance(expr, sp.MatMul):
        return _pull_product(expr, var, upstream)
    if isinstance(expr, Map):
        return _pull_map(expr, var, upstream)
    raise NotImplementedError(f"cannot differentiate {expr} with respect to {var}")


def _add(parts: list[sp.MatrixExpr | None]) -> sp.MatrixExpr | None:
    present = [p for p in parts if p is not None]
    if not present:
        return None
    return sp.MatAdd(*present).doit() if len(present) > 1 else present[0]


def _pull_product(expr: sp.MatMul, var: sp.MatrixSymbol, upstream: sp.MatrixExpr | None) -> sp.MatrixExpr | None:
    scalars = [a for a in expr.args if not isinstance(a, sp.MatrixExpr)]
    factors = [a for a in expr.args if isinstance(a, sp.MatrixExpr)]
    coeff = sp.Mul(*scalars)
    parts = []
    for i, factor in enumerate(factors):
        if not factor.has(var):
            continue
        left, right = factors[:i], factors[i + 1:]
        received = upstream if upstream is not None else _ones(sp.MatMul(*factors).shape if len(factors) > 1
                                                               else factor.shape)
        scale, received = _split_scalar(received)  # numbers stay outside: C^T (C x - y), not C^T (2 C x - 2 y)
        pieces = [*(f.T for f in reversed(left)), received, *(f.T for f in reversed(right))]
        pulled = sp.MatMul(*pieces).doit() if len(pieces) > 1 else received
        parts.append(_pull(factor, var, coeff * scale * pulled if coeff * scale != 1 else pulled))
    return _add(parts)


def _split_scalar(expr: sp.MatrixExpr) -> tuple[sp.Expr, sp.MatrixExpr]:
    """``(c, M)`` for ``expr = c * M`` with ``c`` a scalar factor; ``(1, expr)`` otherwise."""
    if isinstance(expr, sp.MatMul):
        scalars = [a for a in expr.args if not isinstance(a, sp.MatrixExpr)]
        matrices = [a for a in expr.args if isinstance(a, sp.MatrixExpr)]
        if scalars:
            return sp.Mul(*scalars), sp.MatMul(*matrices) if len(matrices) > 1 else matrices[0]
    return sp.Integer(1), expr


def _pull_map(expr: Map, var: sp.MatrixSymbol, upstream: sp.MatrixExpr | None) -> sp.MatrixExpr | None:
    function = expr.function
    parts = []
    for variable, argument in zip(function.variables, expr.arguments, strict=True):
        if not argument.has(var):
            continue
        coeff, partial = function.expr.diff(variable).as_coeff_Mul()  # numbers stay outside the map
        if upstream is None and partial in function.variables:  # a square's derivative: the argument itself
            received = expr.arguments[function.variables.index(partial)]
        elif upstream is None and not partial.has(*function.variables):
            received = partial * _ones(expr.shape)
        elif upstream is None:
            received = Map(sp.Lambda(function.variables, partial), *expr.arguments)
        else:
            seed = sp.Dummy("g", real=True)
            received = Map(sp.Lambda((*function.variables, seed), partial * seed), *expr.arguments, upstream)
        pulled = _pull(argument, var, received)  # linear in what it receives: the number multiplies after
        parts.append(coeff * pulled if pulled is not None and coeff != 1 else pulled)
    return _add(parts)
