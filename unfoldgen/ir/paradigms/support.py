"""Support selection (LISTA-CPSS): at layer k the ``min(fraction*(k+1), max_fraction)`` share
of entries of largest magnitude pass the soft threshold untouched."""

from __future__ import annotations

import math

from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.update import Role, Update
from unfoldgen.operators.prox import norm1


def select_support(b: LayerBuilder) -> None:
    selection = b.spec.learn.support_selection
    if selection is None:
        return

    def rewrite(update: Update) -> None:
        if update.prox is not None or update.role is Role.GRADIENT_STEP:
            if update.prox is None or [s.helper for s in update.prox.stages] != [norm1.SOFT_THRESHOLD]:
                raise selection.where.error("support selection applies to soft thresholding (a norm1 term) only")
            size = math.prod(b.shape_of(update.target))
            update.support = tuple(int(min(selection.fraction * (k + 1), selection.max_fraction) * size)
                                   for k in range(b.spec.algorithm.layers))
        b.update(update)

    b.rewrite_updates(rewrite)
