"""Combine the nonsmooth terms of each variable into one proximal operator.

The prox of a sum is not the composition of the proxes in general. What is exact, and what we
use: one term alone; several separable terms merged into one scalar penalty (``norm1`` plus
``sum_squares`` is the registered elastic net, anything else is derived); and, in one dimension,
the prox of a convex penalty plus the indicator of an interval is the penalty's prox followed
by the projection on the interval. Any other combination is rejected with a hint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import sympy as sp

from unfoldgen.errors import SpecError
from unfoldgen.operators.prox import Helper, ProxFunction, box, elastic_net, nonneg, norm1, sum_squares
from unfoldgen.symbolic.budget import OverBudget, time_budget
from unfoldgen.symbolic.language import Namespace
from unfoldgen.symbolic.prox.separable import TAU, NotDerivable, V, derive_separable_prox
from unfoldgen.symbolic.prox.terms import ELEMENT, NonsmoothTerm

# The step size t of the iteration, as the classical hyperparameter values are written.
STEP = sp.Symbol("t", positive=True)


@dataclass(frozen=True)
class Hyper:
    """A hyperparameter of a prox, with its classical value for the step ``STEP``."""

    name: str  # as learn.hyperparameters names it
    classical: sp.Expr
    description: str
    local: str  # its spelling inside the emitted prox function (name, unless a spec name has it)

    @property
    def symbol(self) -> sp.Symbol:
        return sp.Symbol(self.local, real=True)


@dataclass(frozen=True)
class ProxStage:
    """One step applied to the running value: ``v <- helper(v, *args)`` with a registered helper
    of the emitted code, or, for a derived separable prox (``helper`` None), ``v <- formula``
    with ``formula`` an expression of ``V``."""

    helper: Helper | None
    args: tuple[sp.Expr, ...]
    formula: sp.Expr | None = None


@dataclass(frozen=True)
class ProxOperator:
    """The proximal operator of all nonsmooth terms of one variable."""

    variable: str
    terms: tuple[NonsmoothTerm, ...]
    stages: tuple[ProxStage, ...]
    hypers: tuple[Hyper, ...]
    elementwise: bool
    closed_form: str
    function_name: str  # the emitted function: prox_<variable>, moved around the spec's names

    @property
    def arguments(self) -> tuple[sp.Symbol, ...]:
        """The emitted function's arguments after ``v``: hyperparameters, then spec params."""
        hyper = [h.symbol for h in self.hypers]
        params: set[sp.Symbol] = set()
        for stage in self.stages:
            for expr in (*stage.args, stage.formula if stage.formula is not None else sp.S.Zero):
                params |= {s for s in expr.free_symbols if s not in hyper and s != V}
        return (*hyper, *sorted(params, key=lambda s: s.name))

    @property
    def is_indicator(self) -> bool:
        return all(t.entry is not None and not t.entry.weighted for t in self.terms)

    def definition(self) -> str:
        return " + ".join(t.latex() for t in self.terms)


def build_prox_operators(ns: Namespace, terms: list[NonsmoothTerm]) -> dict[str, ProxOperator]:
    by_variable: dict[str, list[NonsmoothTerm]] = {}
    for term in terms:
        by_variable.setdefault(term.variable, []).append(term)
    return {var: _compose(ns, var, tuple(group)) for var, group in by_variable.items()}


def _compose(ns: Namespace, variable: str, terms: tuple[NonsmoothTerm, ...]) -> ProxOperator:
    others = [t for t in terms if not t.is_separable and not t.is_interval]
    if others:
        if len(terms) > 1:
            names = ", ".join(f"'{t.where.text}'" for t in terms)
            raise terms[1].where.error(
                f"no closed-form prox for the sum of {names} on '{variable}'",
                hint=f"keep {others[0].entry.name if others[0].entry else 'this term'}() as the only "
                     f"nonsmooth term of '{variable}', or split the variable (ADMM)",
            )
        return _single_catalog(ns, variable, others[0])
    separable = [t for t in terms if t.is_separable]
    intervals = [t for t in terms if t.is_interval]
    stages: list[ProxStage] = []
    hypers: list[Hyper] = []
    closed_forms: list[str] = []
    if separable:
        stage, stage_hypers, closed = _separable_stage(ns, variable, separable)
        stages.append(stage)
        hypers.extend(stage_hypers)
        closed_forms.append(closed)
    if intervals:
        stage, closed = _interval_stage(intervals)
        stages.append(stage)
        closed_forms.append(closed)
    closed_form = closed_forms[0] if len(closed_forms) == 1 else (
        rf"\Pi_{{\text{{interval}}}}\left({closed_forms[0]}\right) \text{{ (prox, then projection: exact for separable penalties)}}"
    )
    return ProxOperator(variable, terms, tuple(stages), tuple(hypers), True, closed_form,
                        ns.unused(f"prox_{variable}"))


def composite_prox(ns: Namespace, term: NonsmoothTerm, name: str) -> ProxOperator:
    """The prox of ``h`` in a composite term ``h(K x)``, as a function of ``z = K x``; ``name``
    is the iterate it acts on (the dual variable of a primal-dual method)."""
    plain = dataclasses.replace(term, linear=None, variable=name)
    return dataclasses.replace(_compose(ns, name, (plain,)), terms=(term,))


def _hypers_of(ns: Namespace, entry: ProxFunction, weight: sp.Expr, args: tuple[sp.Expr, ...]) -> list[Hyper]:
    """The prox's hyperparameters; their names in the emitted prox function move around the
    spec's names (a param called ``threshold`` stays the user's)."""
    values = entry.classical_hyper(STEP, weight, args)
    return [Hyper(name, value, f"{name} of the {entry.name} prox", ns.unused(name))
            for name, value in zip(entry.hyper, values)]


def _format_closed_form(entry: ProxFunction, weight: sp.Expr, args: tuple[sp.Expr, ...]) -> str:
    fields = {"w": "" if weight == 1 else sp.latex(weight)}
    fields.update({f"a{i}": sp.latex(a) for i, a in enumerate(args)})
    return entry.closed_form.format(**fields)


def _single_catalog(ns: Namespace, variable: str, term: NonsmoothTerm) -> ProxOperator:
    entry = term.entry
    assert entry is not None
    hypers = _hypers_of(ns, entry, term.weight, term.args)
    stage_args = tuple(h.symbol for h in hypers) + (() if entry.weighted else term.args)
    stage = ProxStage(entry.helper, stage_args)
    return ProxOperator(variable, (term,), (stage,), tuple(hypers), entry.elementwise,
                        _format_closed_form(entry, term.weight, term.args), ns.unused(f"prox_{variable}"))


def _separable_stage(ns: Namespace, variable: str, terms: list[NonsmoothTerm]) -> tuple[ProxStage, list[Hyper], str]:
    entries = [t.entry for t in terms]
    if len(terms) == 1 and terms[0].entry is not None:
        entry, weight, args = terms[0].entry, terms[0].weight, terms[0].args
    elif len(terms) == 2 and {id(e) for e in entries} == {id(norm1.FUNCTION), id(sum_squares.FUNCTION)}:
        l1 = next(t for t in terms if t.entry is norm1.FUNCTION).weight
        l2 = next(t for t in terms if t.entry is sum_squares.FUNCTION).weight
        entry, weight, args = elastic_net.FUNCTION, sp.Integer(1), (l1, 2 * l2)
    else:
        return _derived_stage(ns, variable, terms)
    hypers = _hypers_of(ns, entry, weight, args)
    return ProxStage(entry.helper, tuple(h.symbol for h in hypers)), hypers, _format_closed_form(entry, weight, args)


def _derived_stage(ns: Namespace, variable: str, terms: list[NonsmoothTerm]) -> tuple[ProxStage, list[Hyper], str]:
    penalty = sp.Add(*(t.scalar_penalty() for t in terms))
    values = {ns.params[p]: v for p, v in ns.spec.params.items()}
    shown = penalty.subs(ELEMENT, sp.Symbol(variable))
    try:
        with time_budget(DERIVE_BUDGET_S):
            formula = derive_separable_prox(penalty, ELEMENT, values)
    except OverBudget:
        raise terms[0].where.error(f"deriving the prox of {shown} took more than {DERIVE_BUDGET_S:g} s, so it "
                                   "is refused", hint=_derived_hint(penalty)) from None
    except NotDerivable as exc:
        raise terms[0].where.error(f"cannot derive the prox of {shown}: {exc}", hint=_derived_hint(penalty)) from None
    hyper = Hyper("prox_step", STEP, "step size inside the derived prox", ns.unused("prox_step"))
    formula = formula.xreplace({TAU: hyper.symbol})
    closed = sp.latex(formula.xreplace({V: sp.Symbol("v")}))
    return ProxStage(None, (hyper.symbol,), formula), [hyper], closed


DERIVE_BUDGET_S = 20.0  # seconds for the symbolic derivation of one separable prox


def _derived_hint(penalty: sp.Expr) -> str:
    """What to do instead: a penalty without kinks is smooth, and belongs in objective.smooth."""
    if not penalty.atoms(sp.Abs, sp.Max, sp.Min, sp.sign):
        return ("this penalty has no kinks, so it is smooth: move it to objective.smooth (e.g. "
                "lam * sum(sqrt(1 + x**2))), where its gradient is used instead of a prox")
    return ("use a convex penalty built from abs, max, min and polynomials of degree <= 2, "
            "or a registered function (norm1, sum_squares, elastic_net, ...)")


def _interval_stage(terms: list[NonsmoothTerm]) -> tuple[ProxStage, str]:
    lows, highs = [], []
    for term in terms:
        assert term.entry is not None and term.entry.interval is not None
        lo, hi = term.entry.interval(term.args)
        if lo is not None:
            lows.append(lo)
        if hi is not None:
            highs.append(hi)
    lo_expr = sp.Max(*lows) if lows else None
    if not highs:
        if lo_expr == 0:
            return ProxStage(nonneg.PROJECT_NONNEG, ()), r"\max(\cdot, 0)"
        assert lo_expr is not None
        highs = [sp.S.Infinity]
    hi_expr = sp.Min(*highs)
    lo_expr = lo_expr if lo_expr is not None else sp.S.NegativeInfinity
    return ProxStage(box.PROJECT_BOX, (lo_expr, hi_expr)), rf"\min(\max(\cdot, {sp.latex(lo_expr)}), {sp.latex(hi_expr)})"


def check_interval_nonempty(ns: Namespace, operator: ProxOperator) -> None:
    """A box whose lower bound exceeds its upper bound (with the spec's params) is an error."""
    values = {ns.params[p]: v for p, v in ns.spec.params.items()}
    for stage in operator.stages:
        if stage.helper is box.PROJECT_BOX:
            lo, hi = (a.subs(values) for a in stage.args)
            if lo.is_number and hi.is_number and float(lo) > float(hi):
                raise SpecError(f"the box constraint on '{operator.variable}' is empty ({lo} > {hi})",
                                key_path=operator.terms[-1].where.key_path,
                                line=operator.terms[-1].where.line, hint="swap the bounds")
