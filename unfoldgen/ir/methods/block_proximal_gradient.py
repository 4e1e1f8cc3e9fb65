"""One proximal-gradient update per variable, in the order the variables are declared, each
gradient taken at the latest values (Gauss-Seidel)."""

from __future__ import annotations

from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.methods.gradient import GradientMethod, gradient_update, initial_value
from unfoldgen.ir.paradigms import Paradigm


class BlockProximalGradient(GradientMethod):
    name = "block_proximal_gradient"
    title = "block proximal gradient"
    summary = "for each variable x_i in turn: x_i <- P_i(x_i - t_i grad_i f(x))"
    # the maps of paradigm 2 act on one update of one variable
    paradigms = frozenset(Paradigm) - {Paradigm.MAPS, Paradigm.COUPLED_MAPS}

    def lower(self, b: LayerBuilder) -> tuple[str, ...]:
        variables = tuple(b.spec.variables)
        for var in variables:
            b.state(b.variable(var), initial_value(b, var), f"the variable {var}")
        for var in variables:
            x = b.variable(var)
            gradient_update(b, var, x, x, self.step_parameter(b, var))
        return variables
