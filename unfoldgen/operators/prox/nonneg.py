"""``nonneg(x)``: the constraint x >= 0. Its prox is the projection max(v, 0)."""

from __future__ import annotations

import sympy as sp

from unfoldgen.operators.prox.base import Helper, ProxFunction, constraint_value, no_hyper, per_entry

PROJECT_NONNEG = Helper("project_nonneg", (), elementwise=True, flops=per_entry(1))

FUNCTION = ProxFunction(
    name="nonneg", summary="the constraint x >= 0",
    prox_summary="max(v, 0)",
    helper=PROJECT_NONNEG, args=(), weighted=False,
    hyper=(), classical_hyper=no_hyper,
    definition=r"\iota_{{\{{{x} \ge 0\}}}}",
    closed_form=r"\max(v, 0)",
    value=constraint_value,
    interval=lambda a: (sp.Integer(0), None),
)
