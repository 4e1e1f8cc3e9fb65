"""``nuclear(X)``: the nuclear norm of a matrix (sum of singular values, low rank). Its prox
thresholds the singular values."""

from __future__ import annotations

import math

from unfoldgen.operators.prox.base import Helper, ProxFunction, svd_flops

SINGULAR_VALUE_THRESHOLD = Helper(
    "singular_value_threshold", ("threshold",), elementwise=False,
    flops=lambda shape: svd_flops(*shape) + 2 * math.prod(shape) * min(shape),  # factor, then U S V^T
    svd_workspace=True, matrix_only=True,
    onnx_missing="a singular value decomposition (the prox of the nuclear norm)",
)

FUNCTION = ProxFunction(
    name="nuclear", summary="w * sum of the singular values of a matrix (low rank)",
    prox_summary="singular value thresholding",
    helper=SINGULAR_VALUE_THRESHOLD, args=(), weighted=True, matrix_only=True,
    hyper=("threshold",), classical_hyper=lambda t, w, a: (t * w,),
    definition=r"{w} \|{x}\|_*",
    closed_form=r"U \max(\Sigma - \theta, 0) V^T \text{{ where }} v = U \Sigma V^T, \quad \theta = t {w}",
    value=lambda xp, x, a: xp.linalg.svdvals(x).sum(-1),
)
