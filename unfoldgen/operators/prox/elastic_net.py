"""``elastic_net(x, a, b)``: a ||x||_1 + b/2 ||x||_2^2. Its prox is soft thresholding, then a
shrinkage. ``norm1`` plus ``sum_squares`` on one variable compose into it (see compose.py)."""

from __future__ import annotations

import sympy as sp

from unfoldgen.operators.prox.base import Helper, ProxFunction, per_entry
from unfoldgen.operators.prox.norm1 import SOFT_THRESHOLD

ELASTIC_NET = Helper("elastic_net", ("threshold", "scale"), elementwise=True, flops=per_entry(4),
                     requires=(SOFT_THRESHOLD,))

FUNCTION = ProxFunction(
    name="elastic_net", summary="w * (a ||x||_1 + b/2 ||x||_2^2)",
    prox_summary="soft thresholding, then scaling",
    helper=ELASTIC_NET, args=("a", "b"), weighted=True,
    hyper=("threshold", "scale"),
    classical_hyper=lambda t, w, a: (t * w * a[0], 1 / (1 + t * w * a[1])),
    definition=r"{w} \left({a0} \|{x}\|_1 + \tfrac{{{a1}}}{{2}} \|{x}\|_2^2\right)",
    closed_form=r"s \operatorname{{sign}}(v) \max(|v| - \theta, 0), \quad \theta = t {w} {a0},\ "
                r"s = \frac{{1}}{{1 + t {w} {a1}}}",
    value=lambda xp, x, a: a[0] * x.abs().flatten(1).sum(1) + a[1] / 2 * x.square().flatten(1).sum(1),
    scalar_penalty=lambda u, w, a: w * (a[0] * sp.Abs(u) + a[1] / 2 * u**2),
)
