"""Lower a validated spec to a :class:`Program`: derive the math, then lay out one layer.

The method picks the layout (:mod:`gradient_methods`, :mod:`splitting`, :mod:`custom`); the
learn section's paradigms enter through the shared :class:`LayerBuilder`.
"""

from __future__ import annotations

import sympy as sp

from unfoldgen.errors import SpecError
from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.custom import lower_custom
from unfoldgen.ir.gradient_methods import lower_gradient_method
from unfoldgen.ir.mathtext import math_text
from unfoldgen.ir.program import Program
from unfoldgen.ir.splitting import lower_splitting
from unfoldgen.spec.model import Spec
from unfoldgen.symbolic.language import Namespace
from unfoldgen.symbolic.objective import SmoothPart, derive_smooth
from unfoldgen.symbolic.prox import ProxOperator, build_prox_operators, parse_nonsmooth_term
from unfoldgen.symbolic.prox.compose import check_interval_nonempty


def lower(spec: Spec) -> Program:
    ns = Namespace(spec)
    if spec.algorithm.method == "custom":
        builder = LayerBuilder(spec, ns, None, {})
        outputs = lower_custom(builder)
        return builder.program(outputs, {"variables": [{"name": v, "gradient": None} for v in spec.variables]})
    assert spec.smooth is not None
    smooth = derive_smooth(ns, spec.smooth)
    terms = [parse_nonsmooth_term(ns, where) for where in spec.nonsmooth]
    proxes = build_prox_operators(ns, terms)
    for prox in proxes.values():
        check_interval_nonempty(ns, prox)
    _check_method(spec, proxes)
    builder = LayerBuilder(spec, ns, smooth, proxes)
    if spec.algorithm.method in ("admm", "hqs"):
        outputs = lower_splitting(builder)
    else:
        outputs = lower_gradient_method(builder)
    return builder.program(outputs, _derivation(spec, smooth, proxes))


def _check_method(spec: Spec, proxes: dict[str, ProxOperator]) -> None:
    method = spec.algorithm.method
    where = spec.algorithm.where
    key = "algorithm.method"
    if method == "gradient_descent" and proxes:
        raise SpecError("gradient_descent cannot handle nonsmooth terms", key_path=key, line=where.line,
                        hint="use proximal_gradient, fista or projected_gradient")
    if method == "projected_gradient":
        if not proxes:
            raise SpecError("projected_gradient needs a constraint in objective.nonsmooth", key_path=key,
                            line=where.line, hint="e.g. nonneg(x), box(x, 0, 1), ball2(x, 1), simplex(x)")
        for prox in proxes.values():
            if not prox.is_indicator:
                raise SpecError(
                    f"projected_gradient projects onto constraints, but '{prox.terms[0].where.text}' is a penalty",
                    key_path=key, line=where.line, hint="use proximal_gradient for penalties",
                )


def _derivation(spec: Spec, smooth: SmoothPart, proxes: dict[str, ProxOperator]) -> dict[str, object]:
    variables = []
    for var in spec.variables:
        lipschitz = smooth.lipschitz[var]
        variables.append({
            "name": var,
            "gradient": sp.latex(smooth.gradients[var]),
            "gradient_text": math_text(smooth.gradients[var]),
            "hessian": sp.latex(lipschitz.hessian) if lipschitz and lipschitz.hessian is not None else None,
            "lipschitz": sp.latex(lipschitz.value) if lipschitz else None,
            "lipschitz_exact": bool(lipschitz and lipschitz.exact),
        })
    return {
        "smooth": sp.latex(smooth.expr),
        "nonsmooth": [t.latex() for prox in proxes.values() for t in prox.terms],
        "variables": variables,
        "params": dict(spec.params),
    }
