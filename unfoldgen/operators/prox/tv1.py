"""``tv1(X)``: anisotropic total variation, ``sum_ij |dx_ij| + |dy_ij|``, the l1 norm of
``grad2d(X)`` (``norm1(grad2d(X))`` says the same); split off by ``primal_dual`` or ``admm``."""

from __future__ import annotations

from unfoldgen.operators.prox.base import ProxFunction
from unfoldgen.operators.prox.norm1 import SOFT_THRESHOLD

FUNCTION = ProxFunction(
    name="tv1", summary="w * sum_ij |dx_ij| + |dy_ij|, [dx; dy] = grad2d(X): anisotropic total variation",
    prox_summary="of the l1 norm (by primal_dual or admm): soft thresholding of the differences",
    helper=SOFT_THRESHOLD, args=(), weighted=True,
    hyper=("threshold",), classical_hyper=lambda t, w, a: (t * w,),
    definition=r"{w} \operatorname{{TV}}_1({x})",
    closed_form=r"\operatorname{{sign}}(v) \max(|v| - \theta, 0), \quad \theta = t {w}",
    value=lambda xp, z, a: z.abs().flatten(1).sum(1),
    matrix_only=True, linear="grad2d",
)
