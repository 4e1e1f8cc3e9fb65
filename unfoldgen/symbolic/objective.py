"""The smooth part: its gradient by SymPy matrix calculus and the gradient's Lipschitz constant.

For a quadratic objective the gradient is affine in the variable, ``grad f(x) = H(x) + b``,
and the Lipschitz constant is the operator norm of ``H``. After expanding the gradient each term
linear in ``x`` is ``c P x Q``: when every term has ``x`` on the right (vectors always do) ``H``
is the matrix ``sum c_i P_i`` and ``L = ||H||_2`` exactly; likewise on the left. A mix of both
sides gives the bound ``sum |c_i| ||P_i|| ||Q_i||`` (documented as a bound).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import sympy as sp
from sympy.calculus.util import maximum, minimum

from unfoldgen.errors import SpecError
from unfoldgen.operators.linear import LinearOperator, TableMatrix, has_operator
from unfoldgen.spec.model import Located
from unfoldgen.symbolic.budget import OverBudget, time_budget
from unfoldgen.symbolic.calculus import sum_gradient
from unfoldgen.symbolic.language import Namespace, parse_smooth
from unfoldgen.symbolic.nodes import EntryMax, EntrySum, Map, SpectralNorm


@dataclass(frozen=True)
class Lipschitz:
    """The Lipschitz constant of one variable's gradient, as an expression of constants."""

    value: sp.Expr
    exact: bool
    hessian: sp.MatrixExpr | None


class LipschitzTable(Mapping[str, "Lipschitz | None"]):
    """Each variable's Lipschitz constant, derived when first asked for: a bound through a
    symbolic supremum costs seconds, and a spec with an explicit step never needs it."""

    def __init__(self, ns: Namespace, expr: sp.Expr, variables: dict[str, sp.MatrixSymbol], where: Located) -> None:
        self.ns, self.expr, self.variables, self.where = ns, expr, variables, where
        self.known: dict[str, Lipschitz | None] = {}
        self.no_bound: dict[str, str] = {}  # why a variable has none
        self.terms: dict[str, list[str]] = {}  # how each sum(...) term's bound was found, in LaTeX

    def __getitem__(self, name: str) -> Lipschitz | None:
        if name not in self.known:
            self.known[name], reason, self.terms[name] = _lipschitz(self.ns, self.expr, self.variables[name], self.where)
            if reason:
                self.no_bound[name] = reason
        return self.known[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.variables)

    def __len__(self) -> int:
        return len(self.variables)


@dataclass(frozen=True)
class SmoothPart:
    expr: sp.Expr
    gradients: dict[str, sp.MatrixExpr]
    lipschitz: LipschitzTable

    @property
    def no_bound(self) -> dict[str, str]:
        return self.lipschitz.no_bound


def derive_smooth(ns: Namespace, where: Located) -> SmoothPart:
    value = parse_smooth(ns, where)
    expr = value.expr
    variables = [ns.matrix_symbol(v) for v in ns.spec.variables]
    used = [v for v in variables if expr.has(v)]
    if not used:
        raise where.error("the smooth objective does not depend on any variable",
                          hint="e.g. 0.5 * sum_squares(A @ x - y)")
    gradients = {var.name: _gradient(expr, var, where) for var in variables}
    return SmoothPart(expr, gradients, LipschitzTable(ns, expr, {var.name: var for var in variables}, where))


def _lipschitz(ns: Namespace, expr: sp.Expr, var: sp.MatrixSymbol,
               where: Located) -> tuple[Lipschitz | None, str, list[str]]:
    """Exact for the quadratic terms; a bound added for each ``c * sum(phi(K x + b))`` term;
    None, with the reason, where no global bound exists."""
    terms = [t for t in sp.Add.make_args(expr) if t.has(var)]
    sums = [t for t in terms if t.has(EntrySum)]
    rest = [t for t in terms if not t.has(EntrySum)]
    base = lipschitz_constant(ns, _gradient(sp.Add(*rest), var, where), var) if rest else \
        Lipschitz(sp.Integer(0), True, sp.ZeroMatrix(var.shape[0], var.shape[0]))
    if base is None:
        return None, "", []
    bounds, details = [], []
    for term in sums:
        bound, reason, detail = sum_bound(ns, term, var)
        if bound is None:
            return None, reason, []
        bounds.append(bound)
        details.append(detail)
    if not bounds:
        return base, "", []
    return Lipschitz(sp.Add(base.value, *bounds), False, None), "", details


def _gradient(expr: sp.Expr, var: sp.MatrixSymbol, where: Located) -> sp.MatrixExpr:
    if not expr.has(var):
        return sp.ZeroMatrix(*var.shape)
    try:
        parts = [_term_gradient(term, var) for term in sp.Add.make_args(expr) if term.has(var)]
        gradient = sp.MatAdd(*parts).doit() if len(parts) > 1 else parts[0]
    except SpecError as exc:
        raise where.error(exc.message, exc.hint) from None
    except Exception as exc:  # noqa: BLE001  (SymPy raises many types for what it cannot differentiate)
        raise where.error(f"cannot differentiate the smooth objective with respect to {var.name}: {exc}") from None
    if not isinstance(gradient, sp.MatrixExpr) or gradient.shape != var.shape:
        raise where.error(f"the gradient with respect to {var.name} did not simplify to a {var.shape} matrix",
                          hint="write the smooth part with sum_squares, quad_form, dot and trace")
    return gradient


def _term_gradient(term: sp.Expr, var: sp.MatrixSymbol) -> sp.MatrixExpr:
    """Differentiate one product ``c * Trace(...)`` or ``c * sum(E)`` of the objective.

    Terms are differentiated one by one, with their scalar factor kept outside, because SymPy's
    derivative of a sum of traces is unreliable and pulling scalars inside gives unreadable
    results such as ``2*A.T*((1/2)*A*x - (1/2)*y)``.
    """
    factors = sp.Mul.make_args(term)
    scalar = sp.Mul(*(f for f in factors if not f.has(var)))
    rest = sp.Mul(*(f for f in factors if f.has(var)))
    if rest.has(EntrySum):
        if not isinstance(rest, EntrySum):
            raise SpecError(f"'{rest}' is not a sum of terms c * sum(...): a sum(...) may only be scaled "
                            "or added", hint="e.g. sum(log(1 + exp(-y * (A @ x)))) + 0.5 * lam * sum_squares(x)")
        gradient = sum_gradient(rest.matrix, var)
        return gradient if scalar == 1 else scalar * gradient
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
    """``||M||_2`` with the usual simplifications: ``||c I|| = |c|``, ``||C^T C|| = ||C||^2``;
    through linear operators, their norms (exact, or a bound: :func:`operator_norm`)."""
    if has_operator(matrix):
        return operator_norm(matrix)[0]
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


def operator_norm(matrix: sp.MatrixExpr) -> tuple[sp.Expr, bool]:
    """``||K||_2`` of a map built from linear operators, tables and constants, and whether it is
    exact: each operator's own norm (or its bound), ``||K^T K|| = ||K||^2``, and the bounds
    ``||A B|| <= ||A|| ||B||``, ``||A + B|| <= ||A|| + ||B||`` where operators are combined."""
    if not has_operator(matrix):
        return _norm(matrix), True
    if isinstance(matrix, sp.Transpose):
        return operator_norm(matrix.arg)
    if isinstance(matrix, LinearOperator):
        exact = matrix.norm()
        return (exact, True) if exact is not None else (matrix.norm_bound(), False)
    if isinstance(matrix, TableMatrix):
        return sp.Integer(1), matrix.orthonormal
    if isinstance(matrix, sp.MatMul):
        scalar = sp.Abs(sp.Mul(*(f for f in matrix.args if not isinstance(f, sp.MatrixExpr))))
        factors = [f for f in matrix.args if isinstance(f, sp.MatrixExpr)]
        if len(factors) == 2 and (factors[0] == factors[1].T or factors[0].T == factors[1]):
            value, exact = operator_norm(factors[1])
            return scalar * value**2, exact
        parts = [operator_norm(f) for f in factors]
        tables = sum(isinstance(f, TableMatrix) or isinstance(f, sp.Transpose) and isinstance(f.arg, TableMatrix)
                     for f in factors)
        exact = all(e for _, e in parts) and len(factors) - tables <= 1  # orthonormal factors keep the norm
        return scalar * sp.Mul(*(v for v, _ in parts)), exact
    if isinstance(matrix, sp.MatAdd):
        parts = [operator_norm(term) for term in matrix.args]
        return sp.Add(*(v for v, _ in parts)), False
    return SpectralNorm(matrix), True


def apply_map(matrix: sp.MatrixExpr, value: sp.MatrixExpr) -> sp.MatrixExpr:
    """``K v`` with a sum ``K`` distributed over its terms (each a product the printers apply
    right to left) and ``v`` kept whole: ``grad2d.T @ (z - u)``, one application."""
    if isinstance(matrix, sp.MatAdd):
        return sp.MatAdd(*(apply_map(term, value) for term in matrix.args))
    return sp.MatMul(matrix, value).doit() if not isinstance(value, sp.MatAdd) else sp.MatMul(matrix, value)


def linear_map(expr: sp.MatrixExpr, var: sp.MatrixSymbol) -> sp.MatrixExpr:
    """``K`` of an expression ``K var`` (each term a scaled product ending in ``var``)."""
    terms = _linear_terms(expr, var)
    assert terms is not None and not any(right for _, _, right in terms), f"{expr} is not K {var}"
    parts = [c * _product(left, var.shape[0]) for c, left, _ in terms]
    return sp.MatAdd(*parts).doit() if len(parts) > 1 else parts[0]


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
    if lipschitz is None and variable in smooth.no_bound:
        raise where.error(f"the step uses L, but {smooth.no_bound[variable]}",
                          hint="give algorithm.step as a number or an expression of params")
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


SUP_BUDGET_S = 10.0  # seconds for the symbolic supremum of one term's second derivative


def sum_bound(ns: Namespace, term: sp.Expr, var: sp.MatrixSymbol) -> tuple[sp.Expr | None, str, str]:
    """A Lipschitz bound of the gradient of ``c * sum(phi.(K x + b, w...))``:
    ``|c| sup_t |phi''(t, w)| ||K||^2``, a constant weight ``w`` entering as its largest value.
    None, with the reason, where it does not exist or cannot be found."""
    factors = sp.Mul.make_args(term)
    coeff = sp.Mul(*(f for f in factors if not isinstance(f, EntrySum)))
    (total,) = [f for f in factors if isinstance(f, EntrySum)]
    matrix = total.matrix
    if not isinstance(matrix, Map):
        slope = _linear_terms(matrix, var)
        if slope is None:
            return None, f"sum({matrix}) is not linear in {var.name}", ""
        return sp.Integer(0), "", rf"${sp.latex(total)}$ is linear in ${var.name}$: it adds $0$"
    text = f"sum({matrix})"
    moving = [i for i, a in enumerate(matrix.arguments) if a.has(var)]
    if len(moving) != 1:
        return None, f"{text} applies its function to several expressions of {var.name}: no bound is derived", ""
    (i,) = moving
    slope = _affine_slope(ns, matrix.arguments[i], var)
    if slope is None:
        return None, f"{text} is not a function of an affine map of {var.name} with constant slope", ""
    t = matrix.function.variables[i]
    second = matrix.function.expr.diff(t, 2).replace(sp.DiracDelta, lambda *a: sp.Integer(0))
    shown = Map(sp.Lambda(matrix.function.variables, second), *matrix.arguments)  # in the spec's names
    per_sample = {ns.tensors[n].expr for n, role in ns.roles.items() if role in ("input", "variable")}
    others = [(v, a) for j, (v, a) in enumerate(zip(matrix.function.variables, matrix.arguments, strict=True))
              if j != i and second.has(v)]
    if any(a.has(s) for _, a in others for s in per_sample):
        return None, (f"the second derivative of {text} along {var.name}, {shown}, depends on the inputs, so "
                      "no bound is known when the model is built"), ""
    sup = _sup_abs(second, t)
    if sup is None or sup.has(sp.oo, sp.zoo, sp.nan):
        return None, (f"the second derivative of {text} along {var.name}, {shown}, has no global bound, so "
                      "its gradient has no Lipschitz constant"), ""
    others = [(v, a) for v, a in others if sup.has(v)]
    weight = EntryMax(Map(sp.Lambda(tuple(v for v, _ in others), sup), *(a for _, a in others))) if others else sup
    bound = sp.Abs(coeff) * weight * slope**2
    detail = (rf"${sp.latex(term)}$: $\varphi'' = {sp.latex(shown)}$, $\sup_t |\varphi''| = {sp.latex(weight)}$, "
              rf"$\|K\|_2 = {sp.latex(slope)}$, so it adds ${sp.latex(bound)}$")
    return bound, "", detail


def _affine_slope(ns: Namespace, expr: sp.MatrixExpr, var: sp.MatrixSymbol) -> sp.Expr | None:
    """``||K||`` for ``expr = K x + b`` with ``K`` made of constants; None otherwise."""
    terms = _linear_terms(expr, var)
    if terms is None or any(right for _, _, right in terms):
        return None
    per_sample = {ns.tensors[n].expr for n, role in ns.roles.items() if role in ("input", "variable")}
    if any(f.has(s) for _, left, _ in terms for f in left for s in per_sample):
        return None
    matrix = sp.MatAdd(*(c * _product(left, var.shape[0]) for c, left, _ in terms)).doit()
    return _norm(matrix)


def _sup_abs(expr: sp.Expr, t: sp.Symbol) -> sp.Expr | None:
    """``sup_t |expr|`` over the reals (the largest over the branches of a piecewise), or None
    where SymPy cannot find it within its budget."""
    if isinstance(expr, sp.Piecewise):
        sups = [_sup_abs(branch, t) for branch, _ in expr.args]
        return None if any(s is None for s in sups) else sp.Max(*sups)
    if not expr.has(t):
        return sp.Abs(expr)
    shape = expr.rewrite(sp.exp)
    try:
        with time_budget(SUP_BUDGET_S):
            high = maximum(shape, t, sp.S.Reals)
            low = minimum(shape, t, sp.S.Reals)
    except (OverBudget, NotImplementedError, ValueError, TypeError):
        return None
    return sp.Max(sp.Abs(high), sp.Abs(low))
