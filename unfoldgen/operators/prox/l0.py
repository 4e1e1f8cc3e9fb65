"""``l0(x)``: the number of nonzero entries. Not convex: its prox (hard thresholding at
sqrt(2 t w)) is still exact, entry by entry, but proximal gradient with it finds a stationary
point, not a global minimum. Allowed because it is named here; ``sum(...)`` penalties must be
convex. At |v| = sqrt(2 t w) both 0 and v are minimisers; the helper returns 0."""

from __future__ import annotations

import sympy as sp

from unfoldgen.operators.prox.base import Helper, ProxFunction, per_entry

HARD_THRESHOLD = Helper("hard_threshold", ("threshold",), elementwise=True, flops=per_entry(2))

FUNCTION = ProxFunction(
    name="l0", summary="w * (number of nonzero entries); not convex (see below)",
    prox_summary="hard thresholding at sqrt(2 t w)",
    helper=HARD_THRESHOLD, args=(), weighted=True, convex=False,
    hyper=("threshold",), classical_hyper=lambda t, w, a: (sp.sqrt(2 * t * w),),
    definition=r"{w} \|{x}\|_0",
    closed_form=r"v \, [\,|v| > \theta\,], \quad \theta = \sqrt{{2 t {w}}}",
    value=lambda xp, x, a: (x != 0).flatten(1).sum(1).to(x.dtype),
)
