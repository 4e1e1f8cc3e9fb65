"""``simplex(x, r=1)``: the constraint x >= 0, sum(x) = r on a vector. Its prox is the
sort-based projection (Held, Wolfe and Crowder; Duchi et al.)."""

from __future__ import annotations

import sympy as sp

from unfoldgen.operators.prox.base import Helper, ProxFunction, constraint_value, no_hyper, sorting

PROJECT_SIMPLEX = Helper("project_simplex", ("radius",), elementwise=False, flops=sorting(4),  # sort, sums, shift
                         vector_only=True)

FUNCTION = ProxFunction(
    name="simplex", summary="the constraint x >= 0, sum(x) = r (r = 1 by default), on a vector",
    prox_summary="sort-based projection",
    helper=PROJECT_SIMPLEX, args=("r",), weighted=False, vector_only=True, defaults=(sp.Integer(1),),
    hyper=(), classical_hyper=no_hyper,
    definition=r"\iota_{{\{{{x} \ge 0,\ \mathbf{{1}}^T {x} = {a0}\}}}}",
    closed_form=r"\max(v - \nu, 0), \quad \nu \text{{ such that }} \textstyle\sum_i \max(v_i - \nu, 0) = {a0}",
    value=constraint_value,
)
