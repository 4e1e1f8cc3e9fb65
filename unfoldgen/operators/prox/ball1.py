"""``ball1(x, r)``: the constraint ||x||_1 <= r. Its prox is the projection onto the l1 ball:
soft thresholding at the level where the l1 norm is r (sort-based; Duchi et al. 2008)."""

from __future__ import annotations

from unfoldgen.operators.prox.base import Helper, ProxFunction, constraint_value, no_hyper, sorting

PROJECT_BALL1 = Helper("project_ball1", ("radius",), elementwise=False, flops=sorting(5), axes=True)

FUNCTION = ProxFunction(
    name="ball1", summary="the constraint ||x||_1 <= r",
    prox_summary="sort-based soft thresholding onto the l1 ball",
    helper=PROJECT_BALL1, args=("r",), weighted=False,
    hyper=(), classical_hyper=no_hyper,
    definition=r"\iota_{{\{{\|{x}\|_1 \le {a0}\}}}}",
    closed_form=r"\operatorname{{sign}}(v) \max(|v| - \theta, 0), \quad \theta \ge 0 \text{{ the least with }} "
                r"\textstyle\sum_i \max(|v_i| - \theta, 0) \le {a0}",
    value=constraint_value,
)
