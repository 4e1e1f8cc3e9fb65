"""``norm1(x)``: the l1 norm, the lasso's penalty. Its prox is soft thresholding."""

from __future__ import annotations

import sympy as sp

from unfoldgen.operators.prox.base import Helper, ProxFunction, per_entry

SOFT_THRESHOLD = Helper("soft_threshold", ("threshold",), elementwise=True, flops=per_entry(3))

FUNCTION = ProxFunction(
    name="norm1", summary="w * sum |x_i|, the l1 norm (sparsity)",
    prox_summary="soft thresholding",
    helper=SOFT_THRESHOLD, args=(), weighted=True,
    hyper=("threshold",), classical_hyper=lambda t, w, a: (t * w,),
    definition=r"{w} \|{x}\|_1",
    closed_form=r"\operatorname{{sign}}(v) \max(|v| - \theta, 0), \quad \theta = t {w}",
    value=lambda xp, x, a: x.abs().flatten(1).sum(1),
    scalar_penalty=lambda u, w, a: w * sp.Abs(u),
)
