"""ADMM (scaled form): ``s = (H + rho I)^{-1} (rho (z - u) - c)``; ``z = prox_{h/rho}(s + u)``;
``u = u + mu (s - z)`` (:mod:`.splitting`)."""

from __future__ import annotations

from typing import Any, ClassVar

import sympy as sp

from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.methods.gradient import positive_scalar
from unfoldgen.ir.methods.splitting import PENALTY_KEY, SplittingMethod


class Admm(SplittingMethod):
    name = "admm"
    title = "ADMM"
    summary = "s <- (H + rho I)^-1 (rho (z - u) - c); z <- P(s + u); u <- u + mu (s - z)"
    keys: ClassVar[dict[str, str]] = {**PENALTY_KEY, "dual_step": "the step mu of the dual update (1 is classical ADMM)"}
    defaults: ClassVar[dict[str, Any]] = {"penalty": 1.0, "dual_step": 1.0}
    dual = True

    def dual_update(self, b: LayerBuilder, dual: sp.MatrixSymbol, solve: sp.MatrixSymbol, z: sp.MatrixSymbol) -> None:
        mu = b.hyperparameter("dual_step", positive_scalar(b, self.option(b.spec, "dual_step"), "the dual step"),
                              "step mu of the dual update")
        b.assign(dual, dual + mu.symbol * (solve - z))
