"""``ball2(x, r)``: the constraint ||x||_2 <= r. Its prox scales v back onto the ball."""

from __future__ import annotations

from unfoldgen.operators.prox.base import Helper, ProxFunction, constraint_value, no_hyper, per_entry

PROJECT_BALL2 = Helper("project_ball2", ("radius",), elementwise=False, flops=per_entry(3), axes=True)

FUNCTION = ProxFunction(
    name="ball2", summary="the constraint ||x||_2 <= r",
    prox_summary="scaling back onto the l2 ball",
    helper=PROJECT_BALL2, args=("r",), weighted=False,
    hyper=(), classical_hyper=no_hyper,
    definition=r"\iota_{{\{{\|{x}\|_2 \le {a0}\}}}}",
    closed_form=r"v \min\left(1, \frac{{{a0}}}{{\|v\|_2}}\right)",
    value=constraint_value,
)
