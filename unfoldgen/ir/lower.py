"""Lower a validated spec to a :class:`Program`: derive the math, lay out one layer, then let
the learn section's paradigms rewrite it.

The method (:mod:`unfoldgen.ir.methods`) lays out the classical layer; the paradigm passes
(:mod:`unfoldgen.ir.paradigms`) apply paradigms 2-4 to the updates it emitted; paradigm 1
enters through :meth:`LayerBuilder.hyperparameter`.
"""

from __future__ import annotations

from collections import OrderedDict

import sympy as sp

from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.mathtext import math_text
from unfoldgen.ir.methods import method_of
from unfoldgen.ir.paradigms import apply_paradigms
from unfoldgen.ir.program import Program
from unfoldgen.operators.linear import LinearOperator
from unfoldgen.spec.model import Spec
from unfoldgen.symbolic.language import Namespace
from unfoldgen.symbolic.nodes import EntrySum
from unfoldgen.symbolic.objective import SmoothPart, derive_smooth, linear_map
from unfoldgen.symbolic.prox import NonsmoothTerm, ProxOperator, build_prox_operators, parse_nonsmooth_term
from unfoldgen.symbolic.prox.compose import check_interval_nonempty

# Lowered programs by the spec's repr (every field that lowering reads, the spec's text included).
_LOWERED: OrderedDict[str, Program] = OrderedDict()
_LOWERED_KEPT = 32


def lower(spec: Spec) -> Program:
    """The spec's program. Lowering is a pure function of the spec and its SymPy derivations take
    a while (up to a second), while training, evaluation and the studies lower the same spec
    many times in one process: the last few programs are kept (they are frozen; an error is
    raised again, not kept)."""
    key = repr(spec)
    program = _LOWERED.get(key)
    if program is None:
        program = _LOWERED[key] = _lower(spec)
        if len(_LOWERED) > _LOWERED_KEPT:
            _LOWERED.popitem(last=False)
    _LOWERED.move_to_end(key)
    return program


def _lower(spec: Spec) -> Program:
    method = method_of(spec)
    ns = Namespace(spec)
    if not method.uses_objective:
        builder = LayerBuilder(spec, ns, None, {})
        outputs = method.lower(builder)
        apply_paradigms(builder)
        variables = [{"name": v, "gradient": None} for v in spec.variables]
        return builder.program(outputs, {"variables": variables}, method.title)
    if spec.smooth is None:
        raise spec.algorithm.reader.error((), "missing key 'objective'",
                                          hint=f"{method.name} derives its steps from the objective: "
                                               "give objective.smooth (and objective.nonsmooth)")
    smooth = derive_smooth(ns, spec.smooth)
    terms = [parse_nonsmooth_term(ns, where) for where in spec.nonsmooth]
    composites = [t for t in terms if t.is_composite]
    if composites and not method.splits_linear_maps:
        term = composites[0]
        raise term.where.error(f"'{term.where.text}' penalises a linear map of '{term.variable}', whose prox has "
                               f"no closed form, so {method.name} cannot apply it",
                               hint="use algorithm.method: primal_dual, which splits the linear map off")
    proxes = build_prox_operators(ns, [t for t in terms if not t.is_composite])
    for prox in proxes.values():
        check_interval_nonempty(ns, prox)
    method.check(spec, proxes)
    builder = LayerBuilder(spec, ns, smooth, proxes, composites)
    outputs = method.lower(builder)
    apply_paradigms(builder)
    return builder.program(outputs, _derivation(spec, smooth, proxes, composites), method.title)


def _has_sums(smooth: SmoothPart) -> bool:
    return smooth.expr.has(EntrySum)


def _derivation(spec: Spec, smooth: SmoothPart, proxes: dict[str, ProxOperator],
                composites: list[NonsmoothTerm]) -> dict[str, object]:
    variables = []
    for var in spec.variables:
        # shown where derived already (the step uses L): a bound costs a symbolic supremum
        lipschitz = smooth.lipschitz[var] if var in smooth.lipschitz.known or not _has_sums(smooth) else None
        variables.append({
            "name": var,
            "gradient": sp.latex(smooth.gradients[var]),
            "gradient_text": math_text(smooth.gradients[var]),
            "hessian": sp.latex(lipschitz.hessian) if lipschitz and lipschitz.hessian is not None else None,
            "lipschitz": sp.latex(lipschitz.value) if lipschitz else None,
            "lipschitz_exact": bool(lipschitz and lipschitz.exact),
            "no_bound": smooth.no_bound.get(var, ""),
            "lipschitz_terms": smooth.lipschitz.terms.get(var, []),
        })
    maps = [(t, linear_map(t.linear, smooth.lipschitz.variables[t.variable])) for t in composites if t.linear is not None]
    operators = sorted({op for expr in (smooth.expr, *(k for _, k in maps)) for op in expr.atoms(LinearOperator)}, key=str)
    return {
        "operators": [{"latex": sp.latex(op), "text": str(op), "norm": op.norm_text()} for op in operators],
        "composites": [{"term": t.where.text, "map": sp.latex(k)} for t, k in maps],
        "smooth": sp.latex(smooth.expr),
        "nonsmooth": [t.latex() for prox in proxes.values() for t in prox.terms] + [t.latex() for t in composites],
        "variables": variables,
        "params": dict(spec.params),
    }
