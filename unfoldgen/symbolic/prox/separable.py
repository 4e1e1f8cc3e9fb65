"""Derive the prox of a separable penalty ``sum_i h(x_i)`` that the catalog lacks.

For a convex scalar ``h`` that is smooth except at finitely many kinks (from ``abs``, ``max``,
``min``), the prox ``u*(v) = argmin_u 1/2 (u - v)^2 + tau h(u)`` is found piece by piece:
on each smooth piece solve the optimality condition ``u - v + tau h'(u) = 0`` for ``u``; at a
kink ``c`` the prox sticks at ``c`` for a whole interval of ``v`` (the subdifferential). Since
``v = u + tau h'(u)`` is increasing in ``u``, each piece maps to an interval of ``v`` whose ends
are the images of the piece's ends: the result is a Piecewise in ``v``.

Whatever is derived is then checked numerically against a direct minimisation; a penalty that
is not convex, or whose condition SymPy cannot solve in closed form, is rejected.
"""

from __future__ import annotations

import itertools
import math

import sympy as sp

V = sp.Dummy("v", real=True)
TAU = sp.Dummy("tau", positive=True)


class NotDerivable(Exception):
    """The prox has no closed form we can derive; the message says why, for the user."""


def derive_separable_prox(h: sp.Expr, u: sp.Symbol, param_values: dict[sp.Symbol, float]) -> sp.Expr:
    """The prox of ``tau * h`` as an expression of ``V`` and ``TAU`` (and the params)."""
    domain = _domain_start(h, u)  # -oo, or 0 where h has log(u) (a barrier: the prox stays inside)
    kinks = [k for k in _kinks(h, u, param_values) if float(k.subs(param_values)) > float(domain)]
    bounds: list[sp.Expr] = [domain, *kinks, sp.S.Infinity]
    pieces: list[tuple[sp.Expr, sp.Expr]] = []
    for lo, hi in itertools.pairwise(bounds):
        smooth = _smooth_piece(h, u, lo, hi, param_values)
        slope = sp.diff(smooth, u)
        _check_convex_piece(smooth, u, lo, hi, param_values)
        solution = _solve_piece(u - V + TAU * slope, u, lo, hi, param_values)
        if lo.is_finite and lo is not domain:
            pieces.append((lo, V <= lo + TAU * slope.subs(u, lo)))
        hi_cond = V < hi + TAU * slope.subs(u, hi) if hi.is_finite else sp.true
        pieces.append((solution, hi_cond))
    result = sp.Piecewise(*pieces)
    check_prox_numerically(result, h, u, param_values)
    return result


def _kinks(h: sp.Expr, u: sp.Symbol, param_values: dict[sp.Symbol, float]) -> list[sp.Expr]:
    """Where ``h`` has kinks, in increasing order at the spec's params (a kink may depend on
    params, as ``delta`` in ``min(abs(x), delta)``: the order is the one at their values)."""
    points: set[sp.Expr] = set()
    for atom in h.atoms(sp.Abs, sp.Max, sp.Min, sp.sign, sp.Heaviside):
        if isinstance(atom, (sp.Max, sp.Min)):
            if len(atom.args) != 2:
                raise NotDerivable("max/min of more than two expressions is not supported")
            equation = atom.args[0] - atom.args[1]
        else:
            equation = atom.args[0]
        if not equation.has(u):
            continue
        roots = [r for r in (_branch_at(root, param_values) for root in sp.solve(equation, u)) if r is not None]
        if not roots or any(not r.subs(param_values).is_number or not r.subs(param_values).is_real for r in roots):
            raise NotDerivable(f"cannot locate the kinks of {atom} (they must be numbers or expressions of params)")
        points.update(sp.nsimplify(r) if r.is_number else r for r in roots)
    ordered = sorted(points, key=lambda r: float(r.subs(param_values)))
    values = [float(r.subs(param_values)) for r in ordered]
    if len(set(values)) != len(values):
        raise NotDerivable("two kinks coincide at the spec's params")
    return ordered


def _branch_at(root: sp.Expr, param_values: dict[sp.Symbol, float]) -> sp.Expr | None:
    """A root SymPy gives as a Piecewise in the params: its branch at the spec's values."""
    if not isinstance(root, sp.Piecewise):
        return root
    for value, condition in root.args:
        if bool(condition.subs(param_values)):
            return None if value is sp.nan else value
    return None


def _smooth_piece(h: sp.Expr, u: sp.Symbol, lo: sp.Expr, hi: sp.Expr, param_values: dict[sp.Symbol, float]) -> sp.Expr:
    """``h`` with every kinked function replaced by its branch on the open interval (lo, hi)."""
    if lo.is_infinite and hi.is_infinite:
        probe = sp.Integer(0)
    elif lo.is_infinite:
        probe = hi - 1
    elif hi.is_infinite:
        probe = lo + 1
    else:
        probe = (lo + hi) / 2
    return _branch(h, u, probe, param_values)


def _branch(expr: sp.Expr, u: sp.Symbol, probe: sp.Expr, values: dict[sp.Symbol, float]) -> sp.Expr:
    """``expr`` with each kinked function replaced, innermost first, by the branch it takes at
    ``probe`` with the params at ``values`` (so ``max(abs(x) - 1, 0)`` on (1, oo) becomes
    ``x - 1``, not ``abs(x) - 1``)."""
    if not expr.args or not expr.has(u):
        return expr
    args = [_branch(a, u, probe, values) for a in expr.args]

    def at_probe(e: sp.Expr) -> float:
        return float(e.subs(u, probe).subs(values))

    if isinstance(expr, sp.Abs):
        return (1 if at_probe(args[0]) >= 0 else -1) * args[0]
    if isinstance(expr, (sp.Max, sp.Min)):
        if len(args) != 2:
            raise NotDerivable("max/min of more than two expressions is not supported")
        a, b = args
        larger, smaller = (a, b) if at_probe(a - b) > 0 else (b, a)
        return larger if isinstance(expr, sp.Max) else smaller
    return expr.func(*args)


def _domain_start(h: sp.Expr, u: sp.Symbol) -> sp.Expr:
    """``0`` where ``h`` takes the log of the variable itself (defined for ``u > 0``), else ``-oo``."""
    if any(atom.args[0] == u for atom in h.atoms(sp.log)):
        return sp.Integer(0)
    return sp.S.NegativeInfinity


def _solve_piece(condition: sp.Expr, u: sp.Symbol, lo: sp.Expr = sp.S.NegativeInfinity,
                 hi: sp.Expr = sp.S.Infinity, param_values: dict[sp.Symbol, float] | None = None) -> sp.Expr:
    try:
        solutions = sp.solve(condition, u, rational=True)
    except (NotImplementedError, ValueError):
        solutions = []
    if len(solutions) > 1:  # a quadratic's two roots: keep the one inside the piece for every v and tau
        solutions = [s for s in solutions if _inside(s, lo, hi, param_values or {})]
    if len(solutions) != 1:
        raise NotDerivable(
            "the optimality condition u - v + tau h'(u) = 0 has no unique closed-form solution"
        )
    solution = sp.simplify(solutions[0])
    if solution.has(sp.LambertW, sp.I, sp.RootOf, sp.CRootOf):
        raise NotDerivable("the solution of the optimality condition needs special functions")
    return solution


def _inside(root: sp.Expr, lo: sp.Expr, hi: sp.Expr, param_values: dict[sp.Symbol, float]) -> bool:
    """Whether ``root`` (of ``v`` and ``tau``) is real and in ``(lo, hi)`` at sample points."""
    low, high = float(lo.subs(param_values)), float(hi.subs(param_values))
    for tau in (0.3, 1.0):
        for v in (-3.0, -0.5, 0.0, 0.5, 3.0):
            value = complex(root.subs(param_values).subs({V: v, TAU: tau}).evalf())
            if abs(value.imag) > 1e-12 or not low < value.real < high:
                return False
    return True


def _check_convex_piece(smooth: sp.Expr, u: sp.Symbol, lo: sp.Expr, hi: sp.Expr,
                        param_values: dict[sp.Symbol, float]) -> None:
    curvature = sp.diff(smooth, u, 2).subs(param_values)
    lo, hi = lo.subs(param_values), hi.subs(param_values)
    a = float(lo) if lo.is_finite else (float(hi) - 10 if hi.is_finite else -10.0)
    b = float(hi) if hi.is_finite else a + 20
    for i in range(1, 20):
        point = a + (b - a) * i / 20
        value = complex(curvature.subs(u, point).evalf())
        if abs(value.imag) > 1e-12 or not math.isfinite(value.real) or value.real < -1e-12:
            raise NotDerivable("the penalty is not convex (or not defined everywhere)")


def _objective(h_num, v: float, tau: float):
    return lambda u: 0.5 * (u - v) ** 2 + tau * h_num(u)


def _golden_minimum(f, a: float, b: float, iterations: int = 200) -> float:
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    for _ in range(iterations):
        if f(c) < f(d):
            b, d = d, c
            c = b - ratio * (b - a)
        else:
            a, c = c, d
            d = a + ratio * (b - a)
    return (a + b) / 2


def check_prox_numerically(prox: sp.Expr, h: sp.Expr, u: sp.Symbol, param_values: dict[sp.Symbol, float]) -> None:
    """Compare the derived prox with a golden-section minimisation at a grid of points."""
    h_values = h.subs(param_values)
    prox_values = prox.subs(param_values)

    def h_num(point: float) -> float:
        try:
            value = complex(h_values.subs(u, point).evalf())
        except TypeError:  # complex infinity (log(0)): outside the domain
            return math.inf
        return value.real if abs(value.imag) < 1e-12 and math.isfinite(value.real) else math.inf

    for tau in (0.3, 1.0):
        for v in (-3.0, -1.1, -0.4, -0.05, 0.0, 0.07, 0.5, 1.3, 2.9):
            expected = _golden_minimum(_objective(h_num, v, tau), v - 50.0, v + 50.0)
            got = complex(prox_values.subs({V: v, TAU: tau}).evalf())
            if abs(got.imag) > 1e-9 or not math.isclose(got.real, expected, rel_tol=1e-5, abs_tol=1e-5):
                raise NotDerivable(
                    f"the derived prox does not minimise the prox objective (at v={v}, tau={tau}: "
                    f"derived {got.real:.6g}, numerical {expected:.6g}); is the penalty convex?"
                )
