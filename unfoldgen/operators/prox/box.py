"""``box(x, lo, hi)``: the constraint lo <= x <= hi. Its prox is the clipping to [lo, hi]; it
also serves any intersection of intervals on one variable (see compose.py)."""

from __future__ import annotations

from unfoldgen.operators.prox.base import Helper, ProxFunction, constraint_value, no_hyper, per_entry

PROJECT_BOX = Helper("project_box", ("lower", "upper"), elementwise=True, flops=per_entry(2))

FUNCTION = ProxFunction(
    name="box", summary="the constraint lo <= x <= hi, entry by entry",
    prox_summary="clipping to [lo, hi]",
    helper=PROJECT_BOX, args=("lo", "hi"), weighted=False,
    hyper=(), classical_hyper=no_hyper,
    definition=r"\iota_{{\{{{a0} \le {x} \le {a1}\}}}}",
    closed_form=r"\min(\max(v, {a0}), {a1})",
    value=constraint_value,
    interval=lambda a: (a[0], a[1]),
)
