"""``sum_squares(x)``: the squared l2 norm (ridge, Tikhonov). Its prox shrinks towards 0."""

from __future__ import annotations

from unfoldgen.operators.prox.base import Helper, ProxFunction, per_entry

RIDGE_SHRINK = Helper("ridge_shrink", ("scale",), elementwise=True, flops=per_entry(1))

FUNCTION = ProxFunction(
    name="sum_squares", summary="w * sum x_i^2, the squared l2 norm (ridge)",
    prox_summary="scaling by 1/(1 + 2 t w)",
    helper=RIDGE_SHRINK, args=(), weighted=True,
    hyper=("scale",), classical_hyper=lambda t, w, a: (1 / (1 + 2 * t * w),),
    definition=r"{w} \|{x}\|_2^2",
    closed_form=r"s\, v, \quad s = \frac{{1}}{{1 + 2 t {w}}}",
    value=lambda xp, x, a: x.square().flatten(1).sum(1),
    scalar_penalty=lambda u, w, a: w * u**2,
)
