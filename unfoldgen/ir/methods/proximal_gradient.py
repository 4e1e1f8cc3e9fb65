"""``x <- P(x - t grad f(x))``, P the prox of the nonsmooth terms (ISTA when P is soft
thresholding)."""

from __future__ import annotations

from unfoldgen.ir.methods.gradient import GradientMethod


class ProximalGradient(GradientMethod):
    name = "proximal_gradient"
    title = "proximal gradient (ISTA)"
    summary = "x <- P(x - t grad f(x))"
