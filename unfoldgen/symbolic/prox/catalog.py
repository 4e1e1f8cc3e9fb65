"""The catalog of proximal operators with closed forms.

One entry per spec function. Each entry says what the term is (``definition``, LaTeX of
``h(x)``), what its prox is (``closed_form``, LaTeX of ``prox_{t h}(v)``), which helper of the
emitted code applies it (``operator``; the helpers live in ``templates/``), and which
hyperparameters that helper takes with their classical values for a step ``t``.

``prox_{t h}(v) = argmin_u 1/2 ||u - v||^2 + t h(u)`` throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

Scalars = tuple[sp.Expr, ...]


@dataclass(frozen=True)
class ProxEntry:
    name: str
    operator: str
    arity: int
    weighted: bool
    elementwise: bool
    hyper: tuple[str, ...]
    classical_hyper: Callable[[sp.Expr, sp.Expr, Scalars], Scalars]
    definition: str
    closed_form: str
    # For separable terms: the penalty on one element u, so terms can be merged.
    scalar_penalty: Callable[[sp.Symbol, sp.Expr, Scalars], sp.Expr] | None = None
    # For indicators of an interval: (lower, upper) bounds, None for unbounded.
    interval: Callable[[Scalars], tuple[sp.Expr | None, sp.Expr | None]] | None = None
    matrix_only: bool = False
    vector_only: bool = False
    min_arity: int | None = None

    def accepts(self, count: int) -> bool:
        low = self.arity if self.min_arity is None else self.min_arity
        return low <= count <= self.arity


def _no_hyper(t: sp.Expr, w: sp.Expr, args: Scalars) -> Scalars:
    return ()


CATALOG: dict[str, ProxEntry] = {
    entry.name: entry
    for entry in (
        ProxEntry(
            name="norm1", operator="soft_threshold", arity=0, weighted=True, elementwise=True,
            hyper=("threshold",), classical_hyper=lambda t, w, a: (t * w,),
            definition=r"{w} \|{x}\|_1",
            closed_form=r"\operatorname{{sign}}(v) \max(|v| - \theta, 0), \quad \theta = t {w}",
            scalar_penalty=lambda u, w, a: w * sp.Abs(u),
        ),
        ProxEntry(
            name="sum_squares", operator="ridge_shrink", arity=0, weighted=True, elementwise=True,
            hyper=("scale",), classical_hyper=lambda t, w, a: (1 / (1 + 2 * t * w),),
            definition=r"{w} \|{x}\|_2^2",
            closed_form=r"s\, v, \quad s = \frac{{1}}{{1 + 2 t {w}}}",
            scalar_penalty=lambda u, w, a: w * u**2,
        ),
        ProxEntry(
            name="elastic_net", operator="elastic_net", arity=2, weighted=True, elementwise=True,
            hyper=("threshold", "scale"),
            classical_hyper=lambda t, w, a: (t * w * a[0], 1 / (1 + t * w * a[1])),
            definition=r"{w} \left({a0} \|{x}\|_1 + \tfrac{{{a1}}}{{2}} \|{x}\|_2^2\right)",
            closed_form=r"s \operatorname{{sign}}(v) \max(|v| - \theta, 0), \quad \theta = t {w} {a0},\ "
                        r"s = \frac{{1}}{{1 + t {w} {a1}}}",
            scalar_penalty=lambda u, w, a: w * (a[0] * sp.Abs(u) + a[1] / 2 * u**2),
        ),
        ProxEntry(
            name="norm2", operator="block_shrink", arity=0, weighted=True, elementwise=False,
            hyper=("threshold",), classical_hyper=lambda t, w, a: (t * w,),
            definition=r"{w} \|{x}\|_2",
            closed_form=r"\max\left(1 - \frac{{\theta}}{{\|v\|_2}}, 0\right) v, \quad \theta = t {w}",
        ),
        ProxEntry(
            name="nuclear", operator="singular_value_threshold", arity=0, weighted=True,
            elementwise=False, matrix_only=True,
            hyper=("threshold",), classical_hyper=lambda t, w, a: (t * w,),
            definition=r"{w} \|{x}\|_*",
            closed_form=r"U \max(\Sigma - \theta, 0) V^T \text{{ where }} v = U \Sigma V^T, \quad \theta = t {w}",
        ),
        ProxEntry(
            name="nonneg", operator="project_nonneg", arity=0, weighted=False, elementwise=True,
            hyper=(), classical_hyper=_no_hyper,
            definition=r"\iota_{{\{{{x} \ge 0\}}}}",
            closed_form=r"\max(v, 0)",
            interval=lambda a: (sp.Integer(0), None),
        ),
        ProxEntry(
            name="box", operator="project_box", arity=2, weighted=False, elementwise=True,
            hyper=(), classical_hyper=_no_hyper,
            definition=r"\iota_{{\{{{a0} \le {x} \le {a1}\}}}}",
            closed_form=r"\min(\max(v, {a0}), {a1})",
            interval=lambda a: (a[0], a[1]),
        ),
        ProxEntry(
            name="ball2", operator="project_ball2", arity=1, weighted=False, elementwise=False,
            hyper=(), classical_hyper=_no_hyper,
            definition=r"\iota_{{\{{\|{x}\|_2 \le {a0}\}}}}",
            closed_form=r"v \min\left(1, \frac{{{a0}}}{{\|v\|_2}}\right)",
        ),
        ProxEntry(
            name="simplex", operator="project_simplex", arity=1, min_arity=0, weighted=False,
            elementwise=False, vector_only=True,
            hyper=(), classical_hyper=_no_hyper,
            definition=r"\iota_{{\{{{x} \ge 0,\ \mathbf{{1}}^T {x} = {a0}\}}}}",
            closed_form=r"\max(v - \nu, 0), \quad \nu \text{{ such that }} \textstyle\sum_i \max(v_i - \nu, 0) = {a0}",
        ),
    )
}
