"""``norm_inf(x)``: the largest magnitude of an entry. Its prox follows from Moreau's identity:
the conjugate of w ||.||_inf is the indicator of the l1 ball of radius w, so
prox_{t w ||.||_inf}(v) = v - (projection of v onto the l1 ball of radius t w)."""

from __future__ import annotations

from unfoldgen.operators.prox.ball1 import PROJECT_BALL1
from unfoldgen.operators.prox.base import Helper, ProxFunction, sorting

NORM_INF_SHRINK = Helper("norm_inf_shrink", ("threshold",), elementwise=False, flops=sorting(6), axes=True,
                         requires=(PROJECT_BALL1,))

FUNCTION = ProxFunction(
    name="norm_inf", summary="w * max |x_i|, the l_inf norm",
    prox_summary="v minus its projection onto the l1 ball of radius t w (Moreau)",
    helper=NORM_INF_SHRINK, args=(), weighted=True,
    hyper=("threshold",), classical_hyper=lambda t, w, a: (t * w,),
    definition=r"{w} \|{x}\|_\infty",
    closed_form=r"v - \Pi_{{\{{\|u\|_1 \le \theta\}}}}(v), \quad \theta = t {w}",
    value=lambda xp, x, a: x.abs().flatten(1).amax(1),
)
