"""``tv(X)``: isotropic total variation, ``sum_ij sqrt(dx_ij^2 + dy_ij^2)`` with ``[dx; dy] =
grad2d(X)``. A penalty of a linear map of the image: ``primal_dual`` and ``admm`` split it off,
and apply the prox of the pair norm, which shrinks each pixel's ``(dx, dy)`` as one vector."""

from __future__ import annotations

from unfoldgen.operators.prox.base import Helper, ProxFunction, per_entry

PAIR_SHRINK = Helper("pair_shrink", ("threshold",), elementwise=False, flops=per_entry(4), matrix_only=True)

FUNCTION = ProxFunction(
    name="tv", summary="w * sum_ij sqrt(dx_ij^2 + dy_ij^2), [dx; dy] = grad2d(X): isotropic total variation",
    prox_summary="of the pair norm (by primal_dual or admm): each pixel's (dx, dy) shrunk as one vector",
    helper=PAIR_SHRINK, args=(), weighted=True,
    hyper=("threshold",), classical_hyper=lambda t, w, a: (t * w,),
    definition=r"{w} \operatorname{{TV}}({x})",
    closed_form=r"\max\left(1 - \frac{{\theta}}{{\|(v^x_{{ij}}, v^y_{{ij}})\|_2}}, 0\right) (v^x_{{ij}}, v^y_{{ij}}), "
                r"\quad \theta = t {w}",
    value=lambda xp, z, a: (z[:, : z.shape[1] // 2] ** 2 + z[:, z.shape[1] // 2:] ** 2).sqrt().flatten(1).sum(1),
    matrix_only=True, linear="grad2d",
)
