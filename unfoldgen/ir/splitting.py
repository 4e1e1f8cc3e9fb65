"""Splitting methods for ``min f(x) + h(x)`` with a quadratic ``f``: ADMM and HQS.

Write ``grad f(x) = H x + c`` (``H`` from the constants, ``c`` from the inputs). With the
splitting ``x = z`` and penalty ``rho`` (scaled form, dual ``u``, dual step ``mu``):

- ADMM: ``s = (H + rho I)^{-1} (rho (z - u) - c)``;  ``z = prox_{h/rho}(s + u)``;
  ``u = u + mu (s - z)``
- HQS (ADMM without the dual): ``s = (H + rho I)^{-1} (rho z - c)``;  ``z = prox_{h/rho}(s)``

The spec's variable is ``z`` (it satisfies the constraints and carries the sparsity); ``s``
is a temporary of the layer. The inverse is computed from the constants when the model is
built (per layer, in ``forward``, when the penalty is learned).
"""

from __future__ import annotations

import sympy as sp

from unfoldgen.errors import SpecError
from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.gradient_methods import (
    apply_update,
    initial_value,
    learned_prox_update,
    per_sample_symbols,
    positive_scalar,
    prox_values,
)
from unfoldgen.ir.objective_maps import learned_maps, linear_maps


def quadratic_parts(b: LayerBuilder, var: str) -> tuple[sp.MatrixExpr, sp.MatrixExpr]:
    """``(H, c)`` with ``grad f(x) = H x + c``; an error when ``f`` is not quadratic in ``x``."""
    assert b.smooth is not None
    x = b.variable(var)
    gradient = b.smooth.gradients[var]
    where = b.spec.smooth
    assert where is not None
    per_sample = per_sample_symbols(b)
    try:
        maps, rest = linear_maps(gradient, per_sample, where)
    except SpecError:
        maps, rest = {}, []
    if x not in maps or any(maps[x].has(s) for s in per_sample):
        raise where.error(f"{b.spec.algorithm.method} needs a smooth part that is quadratic in {var} "
                          "(its x-update is a linear solve)", hint="use proximal_gradient or fista")
    hessian = maps.pop(x)
    offset_terms = [coeff * v for v, coeff in maps.items()] + rest
    offset = sp.MatAdd(*offset_terms) if len(offset_terms) > 1 else (
        offset_terms[0] if offset_terms else sp.ZeroMatrix(*x.shape))
    return hessian, offset


def lower_splitting(b: LayerBuilder) -> tuple[str, ...]:
    spec = b.spec
    method = spec.algorithm.method
    if len(spec.variables) != 1:
        raise SpecError(f"{method} splits a single variable; this spec declares {len(spec.variables)}",
                        key_path="variables", line=spec.algorithm.where.line)
    var = next(iter(spec.variables))
    prox = b.proxes.get(var)
    if prox is None:
        raise SpecError(f"{method} needs a nonsmooth term to split off", key_path="objective.nonsmooth",
                        line=spec.algorithm.where.line, hint="without one the problem is a single linear solve")
    if spec.learn.correction is not None:
        raise spec.learn.correction.where.error(f"a learned correction applies to gradient methods, not {method}",
                                                hint="learn the prox (learn.prox) or the linear maps instead")
    z = b.state(b.variable(var), initial_value(b, var), f"the variable {var} (the split copy, after the prox)")
    dual = None
    if method == "admm":
        dual = b.state(sp.MatrixSymbol(b.fresh(f"{var}_dual"), *z.shape), None, "the scaled dual variable u")
    hessian, offset = quadratic_parts(b, var)
    assert spec.algorithm.penalty is not None
    rho_value = positive_scalar(b, spec.algorithm.penalty, "the penalty")
    rho = b.hyperparameter("penalty", rho_value, "penalty rho of the splitting")
    size = z.shape[0]
    rho_in_inverse = rho.symbol if rho.trainable else rho_value
    inverse = b.derive("inverse", sp.Inverse(hessian + rho_in_inverse * sp.Identity(size)),
                       "(H + rho I)^{-1}, the x-update's linear solve", b.shape_of(hessian))
    solve = b.temporary(f"{var}_solve", z, "the linear-solve iterate s = argmin f(s) + rho/2 ||s - z + u||^2")
    pull = z - dual if dual is not None else z
    argument = inverse.symbol * (rho.symbol * pull - offset)
    if spec.learn.objective is not None:
        if spec.learn.objective.text not in ("untied", "tied"):
            raise spec.learn.objective.error(f"{method} learns its linear maps untied or tied",
                                                   hint="coupled and analytic apply to proximal gradient (LISTA)")
        tying = "per_layer" if spec.learn.objective.text == "untied" else "shared"
        argument = learned_maps(b, argument, per_sample_symbols(b), {rho.symbol: rho_value},
                                spec.learn.objective, tying)
    b.assign(solve, argument)
    values = prox_values(b, prox, var, 1 / rho.symbol, 1 / rho_value)
    prox_argument = solve + dual if dual is not None else solve
    if spec.learn.prox is not None:
        learned_prox_update(b, var, z, prox_argument, prox, values)
    else:
        apply_update(b, var, z, prox_argument, prox, values)
    if dual is not None:
        assert spec.algorithm.dual_step is not None
        mu = b.hyperparameter("dual_step", positive_scalar(b, spec.algorithm.dual_step, "the dual step"), "step mu of the dual update")
        b.assign(dual, dual + mu.symbol * (solve - z))
    return (var,)
