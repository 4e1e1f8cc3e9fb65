"""The smooth part: its gradient by SymPy matrix calculus and the gradient's Lipschitz constant.

For a quadratic objective the gradient is affine in the variable, ``grad f(x) = H(x) + b``,
and the Lipschitz constant is the operator norm of ``H``. After expanding the gradient each term
linear in ``x`` is ``c P x Q``: when every term has ``x`` on the right (vectors always do) ``H``
is the matrix ``sum c_i P_i`` and ``L = ||H||_2`` exactly; likewise on the left. A mix of both
sides gives the bound ``sum |c_i| ||P_i|| ||Q_i||`` (documented as a bound).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from unfoldgen.errors import SpecError
from unfoldgen.spec.model import Located
from unfoldgen.symbolic.language import Namespace, parse_smooth
from unfoldgen.symbolic.nodes import SpectralNorm


@dataclass(frozen=True)
class Lipschitz:
    """The Lipschitz constant of one variable's gradient, as an expression of constants."""

    value: sp.Expr
    exact: bool
    hessian: sp.MatrixExpr | None


@dataclass(frozen=True)
class SmoothPart:
    expr: sp.Expr
    gradients: dict[str, sp.MatrixExpr]
    lipschitz: dict[str, Lipschitz | None]


def derive_smooth(ns: Namespace, where: Located) -> SmoothPart:
    value = parse_smooth(ns, where)
    expr = value.expr
    variables = [ns.matrix_symbol(v) for v in ns.spec.variables]
    used = [v for v in variables if expr.has(v)]
    if not used:
        raise where.error("the smooth objective does not depend on any variable",
                          hint="e.g. 0.5 * sum_squares(A @ x - y)")
    gradients: dict[str, sp.MatrixExpr] = {}
    lipschitz: dict[str, Lipschitz | None] = {}
    for var in variables:
        gradient = _gradient(expr, var, where)
        gradients[var.name] = gradient
        lipschitz[var.name] = lipschitz_constant(ns, gradient, var)
    return SmoothPart(expr, gradients, lipschitz)


def _gradient(expr: sp.Expr, var: sp.MatrixSymbol, where: Located) -> sp.MatrixExpr:
    if not expr.has(var):
        return sp.ZeroMatrix(*var.shape)
    try:
        parts = [_term_gradient(term, var) for term in sp.Add.make_args(expr) if term.has(var)]
        gradient = sp.MatAdd(*parts).doit() if len(parts) > 1 else parts[0]
    except Exception as exc:  # noqa: BLE001  (SymPy raises many types for what it cannot differentiate)
        raise where.error(f"cannot differentiate the smooth objective with respect to {var.name}: {exc}") from None
    if not isinstance(gradient, sp.MatrixExpr) or gradient.shape != var.shape:
        raise where.error(f"the gradient with respect to {var.name} did not simplify to a {var.shape} matrix",
                          hint="write the smooth part with sum_squares, quad_form, dot and trace")
    return gradient


def _term_gradient(term: sp.Expr, var: sp.MatrixSymbol) -> sp.MatrixExpr:
    """Differentiate one product ``c * Trace(...)`` of the objective.

    Terms are differentiated one by one, with their scalar factor kept outside, because SymPy's
    derivative of a sum of traces is unreliable and pulling scalars inside gives unreadable
    results such as ``2*A.T*((1/2)*A*x - (1/2)*y)``.
    """
    factors = sp.Mul.make_args(term)
    scalar = sp.Mul(*(f for f in factors if not f.has(var)))
    rest = sp.Mul(*(f for f in factors if f.has(var)))
    return (scalar * rest.diff(var)).doit()


def _linear_terms(gradient: sp.MatrixExpr, var: sp.MatrixSymbol) -> list[tuple[sp.Expr, list, list]] | None:
    """Split the expanded gradient into ``(c, P factors, Q factors)`` per term ``c P x Q``.

    Returns None when the gradient is not affine in ``var`` (the objective is not quadratic).
    """
    expanded = sp.expand(gradient)
    terms = expanded.args if isinstance(expanded, sp.MatAdd) else (expanded,)
    result = []
    for term in terms:
        if not term.has(var):
            continue
        factors = list(term.args) if isinstance(term, sp.MatMul) else [term]
        scalars = [f for f in factors if not isinstance(f, sp.MatrixExpr)]
        matrices = [f for f in factors if isinstance(f, sp.MatrixExpr)]
        positions = [i for i, f in enumerate(matrices) if f == var]
        if len(positions) != 1 or any(f.has(var) for i, f in enumerate(matrices) if i != positions[0]):
            return None
        if any(s.has(var) for s in scalars):
            return None
        i = positions[0]
        result.append((sp.Mul(*scalars), matrices[:i], matrices[i + 1 :]))
    return result


def _product(factors: list, size: sp.Expr) -> sp.MatrixExpr:
    return sp.MatMul(*factors).doit() if factors else sp.Identity(size)


def _norm(matrix: sp.MatrixExpr) -> sp.Expr:
    """``||M||_2`` with the usual simplifications: ``||c I|| = |c|``, ``||C^T C|| = ||C||^2``."""
    if isinstance(matrix, sp.Identity):
        return sp.Integer(1)
    if isinstance(matrix, sp.MatMul):
        scalars = [f for f in matrix.args if not isinstance(f, sp.MatrixExpr)]
        rest = [f for f in matrix.args if isinstance(f, sp.MatrixExpr)]
        if scalars:
            return sp.Abs(sp.Mul(*scalars)) * _norm(sp.MatMul(*rest).doit() if len(rest) > 1 else rest[0])
        if len(rest) == 2 and isinstance(rest[0], sp.Transpose) and rest[0].arg == rest[1]:
            return SpectralNorm(rest[1]) ** 2
        if len(rest) == 2 and isinstance(rest[1], sp.Transpose) and rest[1].arg == rest[0]:
            return SpectralNorm(rest[0]) ** 2
    return SpectralNorm(matrix)


def lipschitz_constant(ns: Namespace, gradient: sp.MatrixExpr, var: sp.MatrixSymbol) -> Lipschitz | None:
    """None when the gradient is not affine in ``var`` or its slope depends on the inputs."""
    terms = _linear_terms(gradient, var)
    if terms is None:
        return None
    inputs = {ns.tensors[name].expr for name, role in ns.roles.items() if role in ("input", "variable")}
    for _, left, right in terms:
        if any(f.has(s) for f in left + right for s in inputs):
            return None
    if not terms:
        return Lipschitz(sp.Integer(0), True, sp.ZeroMatrix(var.shape[0], var.shape[0]))
    if all(not right for _, _, right in terms):
        hessian = sp.MatAdd(*(c * _product(left, var.shape[0]) for c, left, _ in terms)).doit()
        return Lipschitz(_norm(hessian), True, hessian)
    if all(not left for _, left, _ in terms):
        hessian = sp.MatAdd(*(c * _product(right, var.shape[1]) for c, _, right in terms)).doit()
        return Lipschitz(_norm(hessian), True, hessian)
    bound = sp.Add(*(
        sp.Abs(c) * _norm(_product(left, var.shape[0])) * _norm(_product(right, var.shape[1]))
        for c, left, right in terms
    ))
    return Lipschitz(bound, False, None)


def require_lipschitz(smooth: SmoothPart, variable: str, where: Located) -> Lipschitz:
    lipschitz = smooth.lipschitz[variable]
    if lipschitz is None:
        raise where.error(
            f"the step uses L, but the gradient of the smooth part is not affine in '{variable}' "
            "with a slope fixed by the constants, so L cannot be computed exactly",
            hint="give algorithm.step as a number or an expression of params",
        )
    if lipschitz.value == 0:
        raise SpecError("the smooth part is linear in the variables, so its gradient has no Lipschitz constant "
                        "to set a step from", key_path=where.key_path, line=where.line,
                        hint="give algorithm.step as a number")
    return lipschitz
