"""``norm2(x)``: the l2 norm of the whole variable (not squared). Its prox shrinks the block."""

from __future__ import annotations

from unfoldgen.operators.prox.base import Helper, ProxFunction, per_entry

BLOCK_SHRINK = Helper("block_shrink", ("threshold",), elementwise=False, flops=per_entry(3), axes=True)

FUNCTION = ProxFunction(
    name="norm2", summary="w * ||x||_2 (Frobenius for a matrix): group sparsity of the whole variable",
    prox_summary="block shrinkage of the whole variable",
    helper=BLOCK_SHRINK, args=(), weighted=True,
    hyper=("threshold",), classical_hyper=lambda t, w, a: (t * w,),
    definition=r"{w} \|{x}\|_2",
    closed_form=r"\max\left(1 - \frac{{\theta}}{{\|v\|_2}}, 0\right) v, \quad \theta = t {w}",
    value=lambda xp, x, a: x.flatten(1).norm(dim=1),
)
