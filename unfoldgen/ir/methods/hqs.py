"""Half-quadratic splitting: ADMM without the dual, ``s = (H + rho I)^{-1} (rho z - c)``;
``z = prox_{h/rho}(s)`` (:mod:`.splitting`)."""

from __future__ import annotations

from unfoldgen.ir.methods.splitting import SplittingMethod


class Hqs(SplittingMethod):
    name = "hqs"
    title = "half-quadratic splitting"
    summary = "s <- (H + rho I)^-1 (rho z - c); z <- P(s)"
    dual = False
