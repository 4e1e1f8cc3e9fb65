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
    kinks = _kinks(h, u)
    bounds: list[sp.Expr] = [sp.S.NegativeInfinity, *kinks, sp.S.Infinity]
    pieces: list[tuple[sp.Expr, sp.Expr]] = []
    for lo, hi in itertools.pairwise(bounds):
        smooth = _smooth_piece(h, u, lo, hi)
        slope = sp.diff(smooth, u)
        _check_convex_piece(smooth, u, lo, hi, param_values)
        solution = _solve_piece(u - V + TAU * slope, u)
        if lo.is_finite:
            pieces.append((lo, V <= lo + TAU * slope.subs(u, lo)))
        hi_cond = V < hi + TAU * slope.subs(u, hi) if hi.is_finite else sp.true
        pieces.append((solution, hi_cond))
    result = sp.Piecewise(*pieces)
    check_prox_numerically(result, h, u, param_values)
    return result


def _kinks(h: sp.Expr, u: sp.Symbol) -> list[sp.Expr]:
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
        roots = sp.solve(equation, u)
        if not roots or any(not r.is_number or not r.is_real for r in roots):
            raise NotDerivable(f"cannot locate the kinks of {atom} (they must be numbers)")
        points.update(sp.nsimplify(r) for r in roots)
    return sorted(points, key=float)


def _smooth_piece(h: sp.Expr, u: sp.Symbol, lo: sp.Expr, hi: sp.Expr) -> sp.Expr:
    """``h`` with every kinked function replaced by its branch on the open interval (lo, hi)."""
    if lo.is_infinite and hi.is_infinite:
        probe = sp.Integer(0)
    elif lo.is_infinite:
        probe = hi - 1
    elif hi.is_infinite:
        probe = lo + 1
    else:
        probe = (lo + hi) / 2
    return _branch(h, u, probe)


def _branch(expr: sp.Expr, u: sp.Symbol, probe: sp.Expr) -> sp.Expr:
    """``expr`` with each kinked function replaced, innermost first, by the branch it takes at
    ``probe`` (so ``max(abs(x) - 1, 0)`` on (1, oo) becomes ``x - 1``, not ``abs(x) - 1``)."""
    if not expr.args or not expr.has(u):
        return expr
    args = [_branch(a, u, probe) for a in expr.args]
    if isinstance(expr, sp.Abs):
        return sp.sign(args[0].subs(u, probe)) * args[0]
    if isinstance(expr, (sp.Max, sp.Min)):
        if len(args) != 2:
            raise NotDerivable("max/min of more than two expressions is not supported")
        a, b = args
        larger, smaller = (a, b) if float((a - b).subs(u, probe)) > 0 else (b, a)
        return larger if isinstance(expr, sp.Max) else smaller
    return expr.func(*args)


def _solve_piece(condition: sp.Expr, u: sp.Symbol) -> sp.Expr:
    try:
        solutions = sp.solve(condition, u, rational=True)
    except (NotImplementedError, ValueError):
        solutions = []
    if len(solutions) != 1:
        raise NotDerivable(
            "the optimality condition u - v + tau h'(u) = 0 has no unique closed-form solution"
        )
    solution = sp.simplify(solutions[0])
    if solution.has(sp.LambertW, sp.I, sp.RootOf, sp.CRootOf):
        raise NotDerivable("the solution of the optimality condition needs special functions")
    return solution


def _check_convex_piece(smooth: sp.Expr, u: sp.Symbol, lo: sp.Expr, hi: sp.Expr,
                        param_values: dict[sp.Symbol, float]) -> None:
    curvature = sp.diff(smooth, u, 2).subs(param_values)
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
        value = complex(h_values.subs(u, point).evalf())
        return value.real if abs(value.imag) < 1e-12 else math.inf

    for tau in (0.3, 1.0):
        for v in (-3.0, -1.1, -0.4, -0.05, 0.0, 0.07, 0.5, 1.3, 2.9):
            expected = _golden_minimum(_objective(h_num, v, tau), v - 50.0, v + 50.0)
            got = complex(prox_values.subs({V: v, TAU: tau}).evalf())
            if abs(got.imag) > 1e-9 or not math.isclose(got.real, expected, rel_tol=1e-5, abs_tol=1e-5):
                raise NotDerivable(
                    f"the derived prox does not minimise the prox objective (at v={v}, tau={tau}: "
                    f"derived {got.real:.6g}, numerical {expected:.6g}); is the penalty convex?"
                )
