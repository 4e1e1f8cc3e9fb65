"""ADMM (scaled form).

With a penalty of the variable itself (``x = z``, :mod:`.splitting`): ``s = (H + rho I)^{-1}
(rho (z - u) - c)``; ``z = prox_{h/rho}(s + u)``; ``u = u + mu (s - z)``.

With a penalty of a linear map, ``h(K x)`` (the constraint ``z = K x``):
``x = (H + rho K^T K)^{-1} (rho K^T (z - u) - c)``; ``z = prox_{h/rho}(K x + u)``;
``u = u + mu (K x - z)``. The x-update is solved exactly, never by inverting per sample:

- for an image with ``H = a I`` and ``K = grad2d`` (TV denoising), in the 2-D DCT basis, which
  diagonalises ``G^T G`` (Neumann boundary): ``x = C^T ((C r C^T) / (a + rho Lambda)) C``;
- for a vector, ``H + rho K^T K`` is formed from the operators and inverted once when the model
  is built (in ``forward``, per layer, when the penalty is learned).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import sympy as sp

from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.methods.gradient import initial_value, positive_scalar, prox_values
from unfoldgen.ir.methods.splitting import PENALTY_KEY, SplittingMethod
from unfoldgen.ir.objective_maps import split_factors
from unfoldgen.ir.update import Role, Update
from unfoldgen.operators.linear import Materialized
from unfoldgen.operators.linear.dct import DctMatrix
from unfoldgen.operators.linear.grad2d import Gradient2D, NeumannSpectrum
from unfoldgen.spec.model import Spec
from unfoldgen.symbolic.nodes import Map
from unfoldgen.symbolic.objective import apply_map, linear_map
from unfoldgen.symbolic.prox import ProxOperator
from unfoldgen.symbolic.prox.compose import composite_prox

MAX_DENSE_UNKNOWNS = 2048  # the x-update's system is formed densely: n x n for n unknowns


class Admm(SplittingMethod):
    name = "admm"
    title = "ADMM"
    summary = "s <- (H + rho I)^-1 (rho (z - u) - c); z <- P(s + u); u <- u + mu (s - z)"
    keys: ClassVar[dict[str, str]] = {**PENALTY_KEY, "dual_step": "the step mu of the dual update (1 is classical ADMM)"}
    defaults: ClassVar[dict[str, Any]] = {"penalty": 1.0, "dual_step": 1.0}
    dual = True
    splits_linear_maps = True

    def check(self, spec: Spec, proxes: dict[str, ProxOperator]) -> None:
        """Which splitting applies depends on the penalties of linear maps: checked in ``lower``."""

    def lower(self, b: LayerBuilder) -> tuple[str, ...]:
        if not b.composites:
            super().check(b.spec, b.proxes)
            return super().lower(b)
        return self.lower_linear_constraint(b)

    def dual_update(self, b: LayerBuilder, dual: sp.MatrixSymbol, solve: sp.MatrixSymbol, z: sp.MatrixSymbol) -> None:
        mu = b.hyperparameter("dual_step", positive_scalar(b, self.option(b.spec, "dual_step"), "the dual step"),
                              "step mu of the dual update")
        b.assign(dual, dual + mu.symbol * (solve - z))

    def lower_linear_constraint(self, b: LayerBuilder) -> tuple[str, ...]:
        """``z = K x``: x by a linear solve, z by the prox of ``h``, then the scaled dual."""
        var = self.single_variable(b.spec, hint="split the penalty of one variable")
        where = b.composites[0].where
        if len(b.composites) > 1 or var in b.proxes:
            raise where.error(f"{self.name} splits one penalty of a linear map off a variable with no other "
                              "nonsmooth term", hint="use primal_dual, which takes several")
        x = b.state(b.variable(var), initial_value(b, var), f"the variable {var}")
        shape = b.shape_of(x)
        term = b.composites[0]
        assert term.linear is not None
        operator = linear_map(term.linear, x)
        z = b.state(sp.MatrixSymbol(b.fresh(f"{var}_split"), *term.linear.shape), None,
                    f"z = K {var}, the split copy (after the prox)")
        u = b.state(sp.MatrixSymbol(b.fresh(f"{var}_dual"), *term.linear.shape), None, "the scaled dual variable u")
        hessian, offset = self.quadratic_parts(b, var)
        rho_value = positive_scalar(b, self.option(b.spec, "penalty"), "the penalty")
        rho = b.hyperparameter("penalty", rho_value, "penalty rho of the splitting")
        right_side = rho.symbol * apply_map(operator.T, z - u) - offset
        spectral = _dct_solve(hessian, operator, rho.symbol)
        if spectral is not None:
            rhs = b.temporary(f"{var}_rhs", x, "r = rho K^T (z - u) - c, the x-update's right side")
            b.assign(rhs, right_side)
            b.update(Update(var, Role.LINEAR_STEP, x, spectral(rhs), initial={rho.symbol: rho_value}))
        elif len(shape) == 1 and shape[0] <= MAX_DENSE_UNKNOWNS:
            system = hessian + (rho.symbol if rho.trainable else rho_value) * sp.expand(operator.T * operator)
            inverse = b.derive("inverse", sp.Inverse(Materialized(system)), "(H + rho K^T K)^{-1}, the x-update's solve",
                               (shape[0], shape[0]))
            b.update(Update(var, Role.LINEAR_STEP, x, inverse.symbol * right_side, initial={rho.symbol: rho_value}))
        else:
            raise where.error(f"{self.name}'s x-update solves H + rho K^T K exactly: by DCTs for an image with H = a I "
                              f"and K = grad2d, or formed densely for a vector of at most {MAX_DENSE_UNKNOWNS} entries; "
                              f"'{var}' ({list(shape)}) with K = {operator} is neither",
                              hint="use primal_dual, whose layers apply K and K^T only")
        lifted = b.temporary(f"{var}_map", z, f"K {var}, the map the penalty reads")
        b.assign(lifted, apply_map(operator, x))
        prox = composite_prox(b.ns, term, z.name)
        values = prox_values(b, prox, z.name, 1 / rho.symbol, 1 / rho_value)
        b.update(Update(z.name, Role.PROX_STEP, z, lifted + u, prox, values))
        self.dual_update(b, u, lifted, z)
        return (var,)


def _dct_solve(hessian: sp.MatrixExpr, operator: sp.MatrixExpr,
               rho: sp.Expr) -> Callable[[sp.MatrixSymbol], sp.MatrixExpr] | None:
    """``r -> (a I + rho G^T G)^{-1} r`` for images, by the DCT that diagonalises ``G^T G``, when
    ``H = a I`` and ``K = c G`` with ``G = grad2d``; None otherwise."""
    scale, factors = split_factors(operator)
    if len(factors) != 1 or not isinstance(factors[0], Gradient2D):
        return None
    weight, identity = split_factors(hessian)
    if len(identity) != 1 or not isinstance(identity[0], sp.Identity) or not weight.is_positive:
        return None
    rows, cols = factors[0].args
    left, right, spectrum = DctMatrix(rows), DctMatrix(cols), NeumannSpectrum(rows, cols)
    value, eigenvalue = sp.Dummy("r", real=True), sp.Dummy("lambda", nonnegative=True)
    divide = sp.Lambda((value, eigenvalue), value / (weight + rho * scale**2 * eigenvalue))
    return lambda rhs: left.T * Map(divide, left * rhs * right.T, spectrum) * right
