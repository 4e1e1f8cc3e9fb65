"""``x <- P_C(x - t grad f(x))``: proximal gradient where every nonsmooth term is a constraint."""

from __future__ import annotations

from unfoldgen.errors import SpecError
from unfoldgen.ir.methods.gradient import GradientMethod
from unfoldgen.spec.model import Spec
from unfoldgen.symbolic.prox import ProxOperator


class ProjectedGradient(GradientMethod):
    name = "projected_gradient"
    title = "projected gradient"
    summary = "x <- P_C(x - t grad f(x)), C the constraints"

    def check(self, spec: Spec, proxes: dict[str, ProxOperator]) -> None:
        where = spec.algorithm.where
        if not proxes:
            raise SpecError(f"{self.name} needs a constraint in objective.nonsmooth", key_path="algorithm.method",
                            line=where.line, hint="e.g. nonneg(x), box(x, 0, 1), ball2(x, 1), simplex(x)")
        for prox in proxes.values():
            if not prox.is_indicator:
                raise SpecError(
                    f"{self.name} projects onto constraints, but '{prox.terms[0].where.text}' is a penalty",
                    key_path="algorithm.method", line=where.line, hint="use a proximal method for penalties",
                )
