"""FISTA: ``x+ <- P(z - t grad f(z))``; ``z <- x+ + beta_k (x+ - x)``; ``x <- x+``."""

from __future__ import annotations

import math

import sympy as sp

from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.methods.gradient import GradientMethod, gradient_update, initial_value


def fista_momentum(layers: int) -> tuple[sp.Expr, ...]:
    """beta_k = (t_k - 1) / t_{k+1} with t_1 = 1 and t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2."""
    values = []
    t = 1.0
    for _ in range(layers):
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        values.append(sp.Float((t - 1) / t_next, 17))
        t = t_next
    return tuple(values)


class Fista(GradientMethod):
    name = "fista"
    title = "FISTA"
    summary = "x+ <- P(z - t grad f(z)); z <- x+ + beta_k (x+ - x); x <- x+"
    step_bound = (1, "<=")  # its O(1/k^2) rate needs t <= 1/L

    def lower(self, b: LayerBuilder) -> tuple[str, ...]:
        var = self.single_variable(b.spec, hint="a method that updates one variable per block handles several")
        x = b.state(b.variable(var), initial_value(b, var), f"the variable {var}")
        step = self.step_parameter(b, var)
        z = b.state(sp.MatrixSymbol(b.fresh(f"{var}_momentum"), *x.shape), b.states[0].init,
                    "the extrapolated point where FISTA takes its gradient")
        x_next = b.temporary(f"{var}_next", x, f"the new iterate of {var}")
        gradient_update(b, var, z, x_next, step)
        momentum = b.hyperparameter("momentum", fista_momentum(b.spec.algorithm.layers),
                                    "FISTA extrapolation weight beta_k = (t_k - 1)/t_{k+1}",
                                    positive=False, varies_per_layer=True)
        b.assign(z, x_next + momentum.symbol * (x_next - x),
                 f"{z.name} = {x_next.name} + momentum*({x_next.name} - {var})")
        b.assign(x, x_next, f"{var} = {x_next.name}")
        return (var,)
