"""Splitting methods for ``min f(x) + h(x)`` with a quadratic ``f``: what ADMM and HQS share.

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

from typing import Any, ClassVar

import sympy as sp

from unfoldgen.errors import SpecError
from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.methods.base import Method
from unfoldgen.ir.methods.gradient import initial_value, positive_scalar, prox_values
from unfoldgen.ir.objective_maps import linear_maps
from unfoldgen.ir.paradigms import Paradigm
from unfoldgen.ir.update import Role, Update
from unfoldgen.spec.model import Spec
from unfoldgen.symbolic.prox import ProxOperator

PENALTY_KEY = {"penalty": "the penalty rho of the splitting"}


class SplittingMethod(Method):
    """A layer of a linear solve, a prox, and (with ``dual``) a dual update."""

    keys: ClassVar[dict[str, str]] = PENALTY_KEY
    defaults: ClassVar[dict[str, Any]] = {"penalty": 1.0}
    # the linear solve's maps are learned (untied or tied); its prox may be learned; there is no
    # gradient step for a correction, nor one whose maps couple (LISTA-CP)
    paradigms = frozenset({Paradigm.HYPERPARAMETERS, Paradigm.MAPS, Paradigm.SUPPORT_SELECTION,
                           Paradigm.LEARNED_PROX})
    dual: ClassVar[bool]

    def check(self, spec: Spec, proxes: dict[str, ProxOperator]) -> None:
        var = self.single_variable(spec, hint="split one variable; a gradient method updates several by blocks")
        if var not in proxes:
            raise SpecError(f"{self.name} needs a nonsmooth term to split off", key_path="objective.nonsmooth",
                            line=spec.algorithm.where.line, hint="without one the problem is a single linear solve")

    def lower(self, b: LayerBuilder) -> tuple[str, ...]:
        var = next(iter(b.spec.variables))
        prox = b.proxes[var]
        z = b.state(b.variable(var), initial_value(b, var), f"the variable {var} (the split copy, after the prox)")
        dual = None
        if self.dual:
            dual = b.state(sp.MatrixSymbol(b.fresh(f"{var}_dual"), *z.shape), None, "the scaled dual variable u")
        hessian, offset = self.quadratic_parts(b, var)
        rho_value = positive_scalar(b, self.option(b.spec, "penalty"), "the penalty")
        rho = b.hyperparameter("penalty", rho_value, "penalty rho of the splitting")
        rho_in_inverse = rho.symbol if rho.trainable else rho_value
        inverse = b.derive("inverse", sp.Inverse(hessian + rho_in_inverse * sp.Identity(z.shape[0])),
                           "(H + rho I)^{-1}, the x-update's linear solve", b.shape_of(hessian))
        solve = b.temporary(f"{var}_solve", z, "the linear-solve iterate s = argmin f(s) + rho/2 ||s - z + u||^2")
        pull = z - dual if dual is not None else z
        b.update(Update(var, Role.LINEAR_STEP, solve, inverse.symbol * (rho.symbol * pull - offset),
                        initial={rho.symbol: rho_value}))
        values = prox_values(b, prox, var, 1 / rho.symbol, 1 / rho_value)
        b.update(Update(var, Role.PROX_STEP, z, solve + dual if dual is not None else solve, prox, values))
        if dual is not None:
            self.dual_update(b, dual, solve, z)
        return (var,)

    def dual_update(self, b: LayerBuilder, dual: sp.MatrixSymbol, solve: sp.MatrixSymbol, z: sp.MatrixSymbol) -> None:
        raise NotImplementedError

    def quadratic_parts(self, b: LayerBuilder, var: str) -> tuple[sp.MatrixExpr, sp.MatrixExpr]:
        """``(H, c)`` with ``grad f(x) = H x + c``; an error when ``f`` is not quadratic in ``x``."""
        assert b.smooth is not None and b.spec.smooth is not None
        x = b.variable(var)
        per_sample = b.per_sample_symbols()
        try:
            maps, rest = linear_maps(b.smooth.gradients[var], per_sample, b.spec.smooth)
        except SpecError:
            maps, rest = {}, []
        if x not in maps or any(maps[x].has(s) for s in per_sample):
            raise b.spec.smooth.error(f"{self.name} needs a smooth part that is quadratic in {var} "
                                      "(its x-update is a linear solve)", hint="use a gradient method")
        hessian = maps.pop(x)
        offset_terms = [coeff * v for v, coeff in maps.items()] + rest
        offset = sp.MatAdd(*offset_terms) if len(offset_terms) > 1 else (
            offset_terms[0] if offset_terms else sp.ZeroMatrix(*x.shape))
        return hessian, offset
