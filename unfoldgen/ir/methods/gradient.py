"""What the gradient methods share: the step from ``algorithm.step``, the prox's arguments,
and the proximal-gradient update ``x <- P(x - t grad f(x))`` as an :class:`Update`.

Step bounds (as multiples of 1/L, L the Lipschitz constant of the gradient): gradient and
proximal gradient steps decrease the objective for t < 2/L (descent lemma); a method whose
rate needs less (FISTA: t <= 1/L) says so in :attr:`GradientMethod.step_bound`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import sympy as sp

from unfoldgen.errors import warn
from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.methods.base import Method
from unfoldgen.ir.program import Parameter
from unfoldgen.ir.update import Role, Update
from unfoldgen.spec.model import Located
from unfoldgen.symbolic.language import parse_init, parse_scalar
from unfoldgen.symbolic.objective import require_lipschitz
from unfoldgen.symbolic.prox import ProxOperator
from unfoldgen.symbolic.prox.compose import STEP

STEP_KEY = {"step": "the step size, e.g. 1/L (L: Lipschitz constant of the smooth gradient)"}


class GradientMethod(Method):
    """A method whose layer is one proximal-gradient update per variable."""

    keys: ClassVar[dict[str, str]] = STEP_KEY
    defaults: ClassVar[dict[str, Any]] = {"step": "1/L"}
    step_bound: ClassVar[tuple[int, str]] = (2, "<")

    def lower(self, b: LayerBuilder) -> tuple[str, ...]:
        var = self.single_variable(b.spec, hint="a method that updates one variable per block handles several")
        x = b.state(b.variable(var), initial_value(b, var), f"the variable {var}")
        gradient_update(b, var, x, x, self.step_parameter(b, var))
        return (var,)

    def step_parameter(self, b: LayerBuilder, var: str) -> Parameter:
        """The step of ``var``'s gradient step, from ``algorithm.step`` (``L``: its Lipschitz constant)."""
        where = self.option(b.spec, "step")
        placeholder = sp.Dummy("L", positive=True)
        value = positive_scalar(b, where, "the step", {"L": placeholder})
        if value.has(placeholder):
            assert b.smooth is not None
            lipschitz = require_lipschitz(b.smooth, var, where)
            kind = "" if lipschitz.exact else " (upper bound)"
            derived = b.derive(b.suffix("lipschitz", var), lipschitz.value,
                               f"Lipschitz constant of the gradient in {var}{kind}")
            symbol = sp.Symbol(derived.name, positive=True)  # lipschitz, moved around the spec's names
            value = value.xreplace({placeholder: symbol})
            self.warn_beyond_step_bound(b, where, value * symbol)
        return b.hyperparameter(b.suffix("step", var), value, f"step size t of the gradient step in {var}")

    def warn_beyond_step_bound(self, b: LayerBuilder, where: Located, step_times_lipschitz: sp.Expr) -> None:
        """A build-time warning where the step, at the spec's params, is beyond the method's
        bound (the untrained network then diverges, and training starts from there)."""
        bound, relation = self.step_bound
        ratio = sp.nsimplify(step_times_lipschitz.subs({b.ns.params[p]: v for p, v in b.spec.params.items()}))
        if not ratio.is_number:
            return
        beyond = float(ratio) > bound if relation == "<=" else float(ratio) >= bound
        if beyond:
            limit = f"below {bound}/L" if relation == "<" else f"of at most {bound}/L"
            warn(where.error(f"warning: the step is {float(ratio):g}/L; {self.name} needs t {relation} {bound}/L to "
                             "converge, so the untrained network (the classical algorithm) may diverge",
                             hint=f"use a step {limit}, e.g. 1/L"), b.spec.file)


def gradient_update(b: LayerBuilder, var: str, point: sp.MatrixSymbol, target: sp.MatrixSymbol,
                    step: Parameter) -> None:
    """``grad = grad f(point)``; ``target = P(point - t grad)``, with P the prox of ``var``'s
    nonsmooth terms (none: ``target = point - t grad``)."""
    assert b.smooth is not None
    gradient = b.smooth.gradients[var].xreplace({b.variable(var): point})
    grad = b.temporary(f"grad_{var}", point, "gradient of the smooth part at the current point")
    b.assign(grad, gradient)
    prox = b.proxes.get(var)
    values = prox_values(b, prox, var, step.symbol, step.init) if prox else ()
    assert not isinstance(step.init, tuple)
    b.update(Update(var, Role.GRADIENT_STEP, target, point - step.symbol * grad, prox, values,
                    point=point, gradient=gradient, grad=grad, step=step, initial={step.symbol: step.init}))


def positive_scalar(b: LayerBuilder, where: Located, what: str, extra: dict[str, sp.Expr] | None = None) -> sp.Expr:
    """A scalar of params (and ``extra`` names, known only when the model is built) that must
    be positive with the spec's params."""
    value = parse_scalar(b.ns, where, extra or {})
    if extra and any(value.has(s) for s in extra.values()):
        return value
    numeric = value.subs({b.ns.params[p]: v for p, v in b.spec.params.items()})
    if not numeric.is_number or not float(numeric) > 0:
        raise where.error(f"{what} must be positive, got {numeric}",
                          hint="e.g. 1/L (L: the Lipschitz constant the compiler derives) or a positive number")
    return value


def prox_values(b: LayerBuilder, prox: ProxOperator, var: str, step: sp.Expr, step_init: sp.Expr) -> tuple[sp.Expr, ...]:
    """Bind the prox's arguments: learned hyperparameters become parameters, fixed ones follow
    the (possibly learned) step through their classical formula."""
    bound: dict[sp.Symbol, sp.Expr] = {}
    for hyper in prox.hypers:
        name = b.suffix(hyper.name, var)
        where = b.learn.get(name)
        if where is not None and where.text != "fixed":
            parameter = b.hyperparameter(name, hyper.classical.subs(STEP, step_init), hyper.description)
            bound[hyper.symbol] = parameter.symbol
        else:
            b.tying(name)
            bound[hyper.symbol] = hyper.classical.subs(STEP, step)
    return tuple(bound.get(arg, arg) for arg in prox.arguments)


def initial_value(b: LayerBuilder, var: str) -> sp.MatrixExpr | None:
    decl = b.spec.variables[var]
    init = parse_init(b.ns, decl.init, decl.shape)
    return init.expr if init is not None else None
