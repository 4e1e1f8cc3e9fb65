"""``x <- x - t grad f(x)``: for objectives without nonsmooth terms."""

from __future__ import annotations

from unfoldgen.errors import SpecError
from unfoldgen.ir.methods.gradient import GradientMethod
from unfoldgen.spec.model import Spec
from unfoldgen.symbolic.prox import ProxOperator


class GradientDescent(GradientMethod):
    name = "gradient_descent"
    title = "gradient descent"
    summary = "x <- x - t grad f(x)"
    handles_nonsmooth = False

    def check(self, spec: Spec, proxes: dict[str, ProxOperator]) -> None:
        if proxes:
            raise SpecError(f"{self.name} cannot handle nonsmooth terms", key_path="algorithm.method",
                            line=spec.algorithm.where.line, hint="use a proximal method (docs/spec.md, Methods)")
