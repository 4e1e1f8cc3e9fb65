"""Primal-dual splitting for ``min_x f(x) + g(x) + sum_i h_i(K_i x)``: Chambolle-Pock (PDHG),
and Condat-Vu when the smooth part ``f`` is present (its gradient replaces a prox of ``f``).

One layer, with a dual variable ``y_i`` per composite term and the extrapolated point ``xbar``:

- ``y_i <- prox_{s h_i*}(y_i + s K_i xbar)``, by Moreau's identity
  ``prox_{s h*}(u) = u - s prox_{h/s}(u / s)``, so only the catalog prox of ``h_i`` is needed;
- ``x+ <- prox_{t g}(x - t (grad f(x) + sum_i K_i^T y_i))``;
- ``xbar <- 2 x+ - x``; ``x <- x+``.

It converges when ``1/t - s ||K||^2 >= L/2`` (Condat 2013; ``t s ||K||^2 < 1`` without ``f``),
``||K||^2 = sum_i ||K_i||^2``. The defaults ``s = 1/||K||`` and ``t = 0.99/(L/2 + ||K||)`` satisfy
it strictly; both are hyperparameters (paradigm 1), the kernels of the operators can be learned
(paradigm 2: learn.objective untied or tied), and each prox can get a network (paradigm 4: with
both, the learned primal-dual of Adler and Oktem 2018).
"""

from __future__ import annotations

from typing import Any, ClassVar

import sympy as sp

from unfoldgen.errors import SpecError
from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.methods.base import Method
from unfoldgen.ir.methods.gradient import initial_value, positive_scalar, prox_values
from unfoldgen.ir.paradigms import Paradigm
from unfoldgen.ir.program import Parameter
from unfoldgen.ir.update import Role, Update
from unfoldgen.spec.model import Spec
from unfoldgen.symbolic.objective import apply_map, linear_map, operator_norm, require_lipschitz
from unfoldgen.symbolic.prox import ProxOperator
from unfoldgen.symbolic.prox.compose import composite_prox
from unfoldgen.symbolic.prox.terms import NonsmoothTerm


class PrimalDual(Method):
    name = "primal_dual"
    title = "primal-dual (Chambolle-Pock / Condat-Vu)"
    summary = "y <- prox_{s h*}(y + s K xbar); x+ <- prox_{t g}(x - t (grad f(x) + K^T y)); xbar <- 2 x+ - x"
    keys: ClassVar[dict[str, str]] = {
        "primal_step": "the primal step t (L: Lipschitz constant of grad f, normK: ||K||)",
        "dual_step": "the dual step s",
    }
    defaults: ClassVar[dict[str, Any]] = {"primal_step": "0.99/(L/2 + normK)", "dual_step": "1/normK"}
    paradigms = frozenset({Paradigm.HYPERPARAMETERS, Paradigm.MAPS, Paradigm.LEARNED_PROX})
    splits_linear_maps = True

    def check(self, spec: Spec, proxes: dict[str, ProxOperator]) -> None:
        self.single_variable(spec, hint="split the penalties of one variable")

    def lower(self, b: LayerBuilder) -> tuple[str, ...]:
        var = next(iter(b.spec.variables))
        if not b.composites:
            raise SpecError(f"{self.name} needs a penalty of a linear map in objective.nonsmooth",
                            key_path="objective.nonsmooth", line=b.spec.algorithm.where.line,
                            hint="e.g. lam * norm1(diff(x)) or lam * tv(X); without one use proximal_gradient")
        x = b.state(b.variable(var), initial_value(b, var), f"the variable {var}")
        xbar = b.state(sp.MatrixSymbol(b.fresh(f"{var}_bar"), *x.shape), b.states[0].init,
                       "the extrapolated point 2 x+ - x where the dual step reads K")
        duals = [self.dual_state(b, var, i, term) for i, term in enumerate(b.composites)]
        norm = self.norm_parameter(b, var)
        dual_step, primal_step = self.steps(b, var, norm)
        s, t = dual_step.symbol, primal_step.symbol
        adjoints: list[sp.MatrixExpr] = []
        for term, dual in zip(b.composites, duals, strict=True):
            operator = linear_map(term.linear, x)
            lifted = b.temporary(f"{dual.name}_ascent", dual, "u = y + s K xbar, the dual ascent step")
            b.update(Update(dual.name, Role.LINEAR_STEP, lifted, dual + s * apply_map(operator, xbar),
                            initial={s: dual_step.init}))
            conjugate = composite_prox(b.ns, term, dual.name)
            scaled = b.temporary(f"{dual.name}_prox", dual, "prox_{h/s}(u/s), Moreau's half of prox_{s h*}(u)")
            values = prox_values(b, conjugate, dual.name, 1 / s, 1 / _scalar(dual_step))
            b.update(Update(dual.name, Role.PROX_STEP, scaled, lifted / s, conjugate, values))
            b.assign(dual, lifted - s * scaled, f"{dual.name} = prox_(s h*)(u) = u - s prox_(h/s)(u/s)")
            adjoints.append(apply_map(operator.T, dual))
        assert b.smooth is not None
        gradient = b.smooth.gradients[var]
        x_next = b.temporary(f"{var}_next", x, f"the new iterate of {var}")
        prox = b.proxes.get(var)
        values = prox_values(b, prox, var, t, _scalar(primal_step)) if prox else ()
        descent = sp.MatAdd(gradient, *adjoints).doit() if not gradient.is_ZeroMatrix else sp.MatAdd(*adjoints).doit()
        b.update(Update(var, Role.PROX_STEP, x_next, x - t * descent, prox, values))
        b.assign(xbar, 2 * x_next - x, f"{xbar.name} = 2 {x_next.name} - {var}")
        b.assign(x, x_next, f"{var} = {x_next.name}")
        return (var,)

    def dual_state(self, b: LayerBuilder, var: str, index: int, term: NonsmoothTerm) -> sp.MatrixSymbol:
        assert term.linear is not None
        name = b.fresh(f"{var}_dual" if len(b.composites) == 1 else f"{var}_dual{index}")
        return b.state(sp.MatrixSymbol(name, *term.linear.shape), None, f"the dual variable of '{term.where.text}'")

    def norm_parameter(self, b: LayerBuilder, var: str) -> sp.Symbol:
        """``||K|| = sqrt(sum_i ||K_i||^2)``, derived from the constants when the model is built."""
        x = b.variable(var)
        norms = [operator_norm(linear_map(term.linear, x)) for term in b.composites]
        exact = len(norms) == 1 and norms[0][1]
        value = norms[0][0] if len(norms) == 1 else sp.sqrt(sp.Add(*(n**2 for n, _ in norms)))
        derived = b.derive("operator_norm", value, "||K||, the norm of the linear maps" + ("" if exact else " (upper bound)"))
        return sp.Symbol(derived.name, positive=True)

    def steps(self, b: LayerBuilder, var: str, norm: sp.Symbol) -> tuple[Parameter, Parameter]:
        lipschitz = sp.Dummy("L", positive=True)
        names = {"L": lipschitz, "normK": sp.Dummy("normK", positive=True)}
        values = {}
        for key in ("dual_step", "primal_step"):
            where = self.option(b.spec, key)
            value = positive_scalar(b, where, f"the {key.replace('_', ' ')}", names)
            if value.has(lipschitz):
                assert b.smooth is not None
                bound = b.smooth.lipschitz[var]
                if bound is None:
                    require_lipschitz(b.smooth, var, where)
                assert bound is not None
                derived = b.derive("lipschitz", bound.value, f"Lipschitz constant of the gradient in {var}"
                                   + ("" if bound.exact else " (upper bound)"))
                value = value.xreplace({lipschitz: sp.Symbol(derived.name, positive=True)})
            values[key] = value.xreplace({names["normK"]: norm})
        dual = b.hyperparameter("dual_step", values["dual_step"], "the dual step s")
        primal = b.hyperparameter("primal_step", values["primal_step"], "the primal step t")
        return dual, primal


def _scalar(parameter: Parameter) -> sp.Expr:
    """A step's classical value (one for every layer)."""
    assert isinstance(parameter.init, sp.Expr)
    return parameter.init
