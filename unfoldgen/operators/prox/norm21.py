"""``norm21(X)``: the sum of the l2 norms of the rows of a matrix variable (group lasso with one
group per row; joint sparsity of multiple measurement vectors). Its prox shrinks each row."""

from __future__ import annotations

from unfoldgen.operators.prox.base import Helper, ProxFunction, per_entry

ROW_SHRINK = Helper("row_shrink", ("threshold",), elementwise=False, flops=per_entry(3), matrix_only=True)

FUNCTION = ProxFunction(
    name="norm21", summary="w * sum over rows of ||X_i||_2 (row sparsity of a matrix)",
    prox_summary="block shrinkage of each row",
    helper=ROW_SHRINK, args=(), weighted=True, matrix_only=True,
    hyper=("threshold",), classical_hyper=lambda t, w, a: (t * w,),
    definition=r"{w} \|{x}\|_{{2,1}}",
    closed_form=r"\max\left(1 - \frac{{\theta}}{{\|v_i\|_2}}, 0\right) v_i \text{{ for each row }} v_i, "
                r"\quad \theta = t {w}",
    value=lambda xp, x, a: x.norm(dim=-1).sum(-1),
)
