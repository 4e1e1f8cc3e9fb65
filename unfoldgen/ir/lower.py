"""Lower a validated spec to a :class:`Program`: derive, then lay out one layer per method.

Methods (x one variable, g its gradient, P the prox of its nonsmooth terms, t the step):
- ``gradient_descent``:   x <- x - t g(x)
- ``proximal_gradient``:  x <- P(x - t g(x))                (ISTA when P is soft thresholding)
- ``projected_gradient``: as proximal_gradient, with P a projection (only constraints allowed)
- ``fista``:              x+ <- P(z - t g(z)); z <- x+ + beta_k (x+ - x); x <- x+
"""

from __future__ import annotations

import hashlib
import math

import sympy as sp

from unfoldgen.errors import SpecError
from unfoldgen.ir.mathtext import math_text
from unfoldgen.ir.program import ApplyProx, Assign, Derived, Parameter, Program, State, Step
from unfoldgen.spec.model import Spec
from unfoldgen.symbolic.language import Namespace, parse_init, parse_scalar
from unfoldgen.symbolic.objective import SmoothPart, derive_smooth, require_lipschitz
from unfoldgen.symbolic.prox import ProxOperator, build_prox_operators, parse_nonsmooth_term
from unfoldgen.symbolic.prox.compose import STEP, check_interval_nonempty

LIPSCHITZ = "lipschitz"


def lower(spec: Spec) -> Program:
    ns = Namespace(spec)
    smooth = derive_smooth(ns, spec.smooth)
    terms = [parse_nonsmooth_term(ns, where) for where in spec.nonsmooth]
    proxes = build_prox_operators(ns, terms)
    for prox in proxes.values():
        check_interval_nonempty(ns, prox)
    if len(spec.variables) != 1:
        raise SpecError(
            f"{spec.algorithm.method} unrolls a single variable; this spec declares "
            f"{len(spec.variables)}", key_path="variables", line=spec.algorithm.where.line,
            hint="declare one variable (block methods over several variables are planned)",
        )
    variable = next(iter(spec.variables.values()))
    _check_method(spec, proxes)
    return _Lowering(spec, ns, smooth, proxes.get(variable.name), variable.name).program()


def _check_method(spec: Spec, proxes: dict[str, ProxOperator]) -> None:
    method = spec.algorithm.method
    where = spec.algorithm.where
    key = "algorithm.method"
    if method == "gradient_descent" and proxes:
        raise SpecError("gradient_descent cannot handle nonsmooth terms", key_path=key, line=where.line,
                        hint="use proximal_gradient, fista or projected_gradient")
    if method == "projected_gradient":
        if not proxes:
            raise SpecError("projected_gradient needs a constraint in objective.nonsmooth", key_path=key,
                            line=where.line, hint="e.g. nonneg(x), box(x, 0, 1), ball2(x, 1), simplex(x)")
        for prox in proxes.values():
            if not prox.is_indicator:
                raise SpecError(
                    f"projected_gradient projects onto constraints, but '{prox.terms[0].where.text}' is a penalty",
                    key_path=key, line=where.line, hint="use proximal_gradient for penalties",
                )


def fista_momentum(layers: int) -> tuple[sp.Expr, ...]:
    """beta_k = (t_k - 1) / t_{k+1} with t_1 = 1 and t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2."""
    values = []
    t = 1.0
    for _ in range(layers):
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        values.append(sp.Float((t - 1) / t_next, 17))
        t = t_next
    return tuple(values)


class _Lowering:
    def __init__(self, spec: Spec, ns: Namespace, smooth: SmoothPart, prox: ProxOperator | None, var: str) -> None:
        self.spec = spec
        self.ns = ns
        self.smooth = smooth
        self.prox = prox
        self.var = var
        self.x = ns.matrix_symbol(var)
        self.shape = ns.size(spec.variables[var].shape)
        self.taken = set(spec.dims) | set(ns.roles) | set(spec.params)
        self.derived: list[Derived] = []
        self.parameters: list[Parameter] = []
        self.learn = dict(spec.learn.hyperparameters)

    def fresh(self, name: str) -> str:
        while name in self.taken:
            name += "_"
        self.taken.add(name)
        return name

    def tensor(self, name: str) -> sp.MatrixSymbol:
        return sp.MatrixSymbol(self.fresh(name), *self.x.shape)

    # -- parameters -----------------------------------------------------------------------
    def tying(self, name: str) -> str:
        located = self.learn.pop(name, None)
        return located.text if located is not None else "fixed"

    def add_parameter(self, name: str, init: sp.Expr | tuple[sp.Expr, ...], description: str,
                      varies_per_layer: bool = False) -> Parameter:
        where = self.spec.learn.hyperparameters.get(name)
        tying = self.tying(name)
        if varies_per_layer and tying == "shared":
            assert where is not None
            raise where.error(f"'{name}' differs from layer to layer in the classical algorithm, so it cannot be shared",
                              hint="use per_layer or fixed")
        stored = "per_layer" if (tying == "per_layer" or varies_per_layer) else "shared"
        parameter = Parameter(name, (), stored, tying != "fixed", init, description)
        self.parameters.append(parameter)
        return parameter

    def step_parameter(self) -> Parameter:
        where = self.spec.algorithm.step
        lipschitz_symbol = sp.Symbol(LIPSCHITZ, positive=True)
        value = parse_scalar(self.ns, where, {"L": lipschitz_symbol})
        if value.has(lipschitz_symbol):
            lipschitz = require_lipschitz(self.smooth, self.var, where)
            self.derived.append(Derived(LIPSCHITZ, lipschitz.value,
                                        "Lipschitz constant of the smooth gradient" + ("" if lipschitz.exact else " (upper bound)")))
        else:
            numeric = value.subs({self.ns.params[p]: v for p, v in self.spec.params.items()})
            if not numeric.is_number or not float(numeric) > 0:
                raise where.error(f"the step must be positive, got {numeric}")
        return self.add_parameter("step", value, "step size t of the gradient step")

    def prox_values(self, prox: ProxOperator, step: Parameter) -> tuple[sp.Expr, ...]:
        """Bind the prox's arguments: learned hyperparameters become parameters, fixed ones
        follow the (possibly learned) step through their classical formula."""
        bound: dict[sp.Symbol, sp.Expr] = {}
        for hyper in prox.hypers:
            learned = hyper.name in self.learn and self.learn[hyper.name].text != "fixed"
            if learned:
                parameter = self.add_parameter(hyper.name, hyper.classical.subs(STEP, step.init), hyper.description)
                bound[hyper.symbol] = parameter.symbol
            else:
                self.learn.pop(hyper.name, None)
                bound[hyper.symbol] = hyper.classical.subs(STEP, step.symbol)
        return tuple(bound.get(arg, arg) for arg in prox.arguments)

    # -- layer ----------------------------------------------------------------------------
    def program(self) -> Program:
        spec = self.spec
        step = self.step_parameter()
        init = parse_init(self.ns, spec.variables[self.var].init, spec.variables[self.var].shape)
        init_expr = init.expr if init is not None else None
        states = [State(self.x, self.shape, init_expr, f"the variable {self.var}")]
        temporaries: list[State] = []
        grad = self.tensor(f"grad_{self.var}")
        temporaries.append(State(grad, self.shape, None, f"gradient of the smooth part at the current point"))
        gradient = self.smooth.gradients[self.var]
        steps: list[Step]
        if spec.algorithm.method == "fista":
            z = self.tensor(f"{self.var}_momentum")
            x_next = self.tensor(f"{self.var}_next")
            states.append(State(z, self.shape, init_expr, "the extrapolated point where FISTA takes its gradient"))
            temporaries.append(State(x_next, self.shape, None, f"the new iterate of {self.var}"))
            momentum = self.add_parameter("momentum", fista_momentum(spec.algorithm.layers),
                                          "FISTA extrapolation weight beta_k = (t_k - 1)/t_{k+1}", varies_per_layer=True)
            g_at_z = gradient.xreplace({self.x: z})
            steps = [
                Assign(grad, g_at_z, f"{grad.name} = {math_text(g_at_z)}"),
                self.update(x_next, z - step.symbol * grad, step),
                Assign(z, x_next + momentum.symbol * (x_next - self.x),
                       f"{z.name} = {x_next.name} + momentum*({x_next.name} - {self.var})"),
                Assign(self.x, x_next, f"{self.var} = {x_next.name}"),
            ]
        else:
            steps = [
                Assign(grad, gradient, f"{grad.name} = {math_text(gradient)}"),
                self.update(self.x, self.x - step.symbol * grad, step),
            ]
        self.reject_unknown_learn_keys()
        return Program(
            name=spec.name, description=spec.description, method=spec.algorithm.method,
            layers=spec.algorithm.layers, dims=dict(spec.dims),
            inputs={n: self.ns.size(d.shape) for n, d in spec.inputs.items()},
            constants={n: self.ns.size(d.shape) for n, d in spec.constants.items()},
            params=dict(spec.params), states=tuple(states), temporaries=tuple(temporaries),
            derived=tuple(self.derived), parameters=tuple(self.parameters), steps=tuple(steps),
            outputs=(self.var,), proxes=(self.prox,) if self.prox else (),
            derivation=self.derivation(steps),
            spec_hash=hashlib.sha256(spec.text.encode()).hexdigest(),
        )

    def update(self, target: sp.MatrixSymbol, argument: sp.MatrixExpr, step: Parameter) -> Step:
        if self.prox is None:
            return Assign(target, argument, f"{target.name} = {math_text(argument)}")
        values = self.prox_values(self.prox, step)
        call = ", ".join([math_text(argument)] + [math_text(v) for v in values])
        return ApplyProx(target, self.prox, argument, values, f"{target.name} = {self.prox.function_name}({call})")

    def reject_unknown_learn_keys(self) -> None:
        if not self.learn:
            return
        name, where = next(iter(self.learn.items()))
        available = [p.name for p in self.parameters] + [h.name for h in (self.prox.hypers if self.prox else ())]
        raise where.error(f"'{name}' is not a hyperparameter of this network",
                          hint="hyperparameters here: " + ", ".join(sorted(set(available))))

    def derivation(self, steps: list[Step]) -> dict[str, object]:
        ns = self.ns
        lipschitz = self.smooth.lipschitz[self.var]
        return {
            "smooth": sp.latex(self.smooth.expr),
            "nonsmooth": [t.latex() for t in (self.prox.terms if self.prox else ())],
            "gradient": sp.latex(self.smooth.gradients[self.var]),
            "hessian": sp.latex(lipschitz.hessian) if lipschitz and lipschitz.hessian is not None else None,
            "lipschitz": sp.latex(lipschitz.value) if lipschitz else None,
            "lipschitz_exact": bool(lipschitz and lipschitz.exact),
            "variable": self.var,
            "params": {p: v for p, v in ns.spec.params.items()},
        }

