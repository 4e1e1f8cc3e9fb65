"""Gradient-based methods: one proximal-gradient update per variable and layer.

Methods (x a variable, g its gradient, P the prox of its nonsmooth terms, t the step):
- ``gradient_descent``:   x <- x - t g(x)
- ``proximal_gradient``:  x <- P(x - t g(x))                (ISTA when P is soft thresholding)
- ``projected_gradient``: as proximal_gradient, with P a projection (only constraints allowed)
- ``fista``:              x+ <- P(z - t g(z)); z <- x+ + beta_k (x+ - x); x <- x+
- ``block_proximal_gradient``: one proximal-gradient update per variable, in the order the
  variables are declared, each gradient taken at the latest values (Gauss-Seidel)

:func:`proximal_update` is where the paradigms enter: learned linear maps replace the
argument ``x - t g(x)`` (2), a network adds a correction (3) or joins the prox (4).
"""

from __future__ import annotations

import math

import sympy as sp

from unfoldgen.errors import SpecError, warn
from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.networks import build_network
from unfoldgen.ir.objective_maps import analytic_argument, coupled_argument, learned_maps
from unfoldgen.ir.program import Parameter
from unfoldgen.operators.prox import norm1
from unfoldgen.spec.model import Located
from unfoldgen.symbolic.language import parse_init, parse_scalar
from unfoldgen.symbolic.objective import require_lipschitz
from unfoldgen.symbolic.prox import ProxOperator
from unfoldgen.symbolic.prox.compose import STEP


def fista_momentum(layers: int) -> tuple[sp.Expr, ...]:
    """beta_k = (t_k - 1) / t_{k+1} with t_1 = 1 and t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2."""
    values = []
    t = 1.0
    for _ in range(layers):
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        values.append(sp.Float((t - 1) / t_next, 17))
        t = t_next
    return tuple(values)


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


def step_parameter(b: LayerBuilder, var: str) -> Parameter:
    """The step of ``var``'s gradient step, from ``algorithm.step`` (``L``: its Lipschitz constant)."""
    where = b.spec.algorithm.step
    placeholder = sp.Dummy("L", positive=True)
    value = positive_scalar(b, where, "the step", {"L": placeholder})
    if value.has(placeholder):
        assert b.smooth is not None
        lipschitz = require_lipschitz(b.smooth, var, where)
        kind = "" if lipschitz.exact else " (upper bound)"
        derived = b.derive(b.suffix("lipschitz", var), lipschitz.value, f"Lipschitz constant of the gradient in {var}{kind}")
        symbol = sp.Symbol(derived.name, positive=True)  # lipschitz, moved around the spec's names
        value = value.xreplace({placeholder: symbol})
        warn_beyond_step_bound(b, where, value * symbol)
    return b.hyperparameter(b.suffix("step", var), value, f"step size t of the gradient step in {var}")


# The classical step's convergence bound, as a multiple of 1/L: gradient and proximal gradient
# steps decrease the objective for t < 2/L (descent lemma); FISTA's rate needs t <= 1/L.
STEP_BOUNDS = {"fista": (1, "<="), "default": (2, "<")}


def warn_beyond_step_bound(b: LayerBuilder, where: Located, step_times_lipschitz: sp.Expr) -> None:
    """A build-time warning where the step, at the spec's params, is beyond the method's bound
    (the untrained network then diverges, and training starts from there)."""
    method = b.spec.algorithm.method
    bound, relation = STEP_BOUNDS.get(method, STEP_BOUNDS["default"])
    ratio = sp.nsimplify(step_times_lipschitz.subs({b.ns.params[p]: v for p, v in b.spec.params.items()}))
    if not ratio.is_number:
        return
    beyond = float(ratio) > bound if relation == "<=" else float(ratio) >= bound
    if beyond:
        limit = f"below {bound}/L" if relation == "<" else f"of at most {bound}/L"
        warn(where.error(f"warning: the step is {float(ratio):g}/L; {method} needs t {relation} {bound}/L to "
                         "converge, so the untrained network (the classical algorithm) may diverge",
                         hint=f"use a step {limit}, e.g. 1/L"), b.spec.file)


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


def support_counts(b: LayerBuilder, prox: ProxOperator | None, size: int) -> tuple[int, ...] | None:
    selection = b.spec.learn.support_selection
    if selection is None:
        return None
    if prox is None or [s.helper for s in prox.stages] != [norm1.SOFT_THRESHOLD]:
        raise selection.where.error("support selection applies to soft thresholding (a norm1 term) only")
    return tuple(int(min(selection.fraction * (k + 1), selection.max_fraction) * size)
                 for k in range(b.spec.algorithm.layers))


def per_sample_symbols(b: LayerBuilder) -> set[sp.MatrixSymbol]:
    inputs = {b.ns.matrix_symbol(n) for n in b.spec.inputs if b.spec.inputs[n].shape}
    return inputs | {s.symbol for s in (*b.states, *b.temporaries)}


def apply_update(b: LayerBuilder, var: str, target: sp.MatrixSymbol, argument: sp.MatrixExpr,
                 prox: ProxOperator | None, values: tuple[sp.Expr, ...]) -> None:
    """``target = P(argument)``, or ``target = argument`` without nonsmooth terms."""
    if prox is None:
        b.assign(target, argument)
        return
    size = math.prod(b.shape_of(target))
    b.apply_prox(target, prox, argument, values, support_counts(b, prox, size))


def learned_prox_update(b: LayerBuilder, var: str, target: sp.MatrixSymbol, argument: sp.MatrixExpr,
                        prox: ProxOperator | None, values: tuple[sp.Expr, ...]) -> None:
    """Paradigm 4: ``target = P(v) + N_k(v)`` with ``v = argument``."""
    assert b.spec.learn.prox is not None
    if b.spec.learn.support_selection is not None:
        raise b.spec.learn.support_selection.where.error("support selection and a learned prox do not combine",
                                                         hint="the learned prox replaces the thresholding")
    v = b.temporary(f"{var}_arg", target, "the argument of the learned prox")
    b.assign(v, argument)
    apply_update(b, var, target, v, prox, values)
    network = build_network(b, b.spec.learn.prox, b.suffix("prox_net", var), (v,), target,
                            f"learned part of the prox of {var}: D_k(v) = P(v) + N_k(v)")
    b.apply_network(target, network, (v,), target)


def proximal_update(b: LayerBuilder, var: str, point: sp.MatrixSymbol, target: sp.MatrixSymbol,
                    step: Parameter) -> None:
    """``target <- P(point - t grad(point))``, with the paradigms of the learn section."""
    assert b.smooth is not None
    learn = b.spec.learn
    x = b.variable(var)
    gradient = b.smooth.gradients[var].xreplace({x: point})
    prox = b.proxes.get(var)
    maps = learn.objective is not None and learn.objective.text != "weights"
    grad = None
    if not maps or learn.correction is not None:
        grad = b.temporary(f"grad_{var}", point, "gradient of the smooth part at the current point")
        b.assign(grad, gradient)
    if not maps:
        assert grad is not None
        argument = point - step.symbol * grad
    else:
        argument = objective_argument(b, point, gradient, step)
    values = prox_values(b, prox, var, step.symbol, step.init) if prox else ()
    if learn.objective is not None and not maps:
        weights = learned_weights(b, (argument, *values))
        argument, values = argument.xreplace(weights), tuple(v.xreplace(weights) for v in values)
    if learn.prox is not None:
        if learn.correction is not None:
            raise learn.correction.where.error("use either a correction (paradigm 3) or a learned prox (paradigm 4)")
        learned_prox_update(b, var, target, argument, prox, values)
    elif learn.correction is not None:
        assert grad is not None
        update = b.temporary(f"{var}_update", point, "the classical update, before the correction")
        apply_update(b, var, update, argument, prox, values)
        network = build_network(b, learn.correction, b.suffix("correction", var), (point, grad), target,
                                f"learned correction c_k({point.name}, {grad.name}) of the update of {var}")
        b.apply_network(target, network, (point, grad), update)
    else:
        apply_update(b, var, target, argument, prox, values)


def learned_weights(b: LayerBuilder, exprs: tuple[sp.Basic, ...]) -> dict[sp.Symbol, sp.Symbol]:
    """Paradigm 2 without linear maps (``objective: weights``): every spec param the update reads
    (the weights lam of the objective's terms) becomes a positive per-layer parameter ``lam_layer``
    that starts at the spec's value; thresholds that follow lam follow the learned one."""
    read = set().union(*(e.free_symbols for e in exprs))
    weights = {}
    for name, symbol in b.ns.params.items():
        if symbol not in read:
            continue
        if symbol not in b.learned_weights:  # one per weight, however many blocks read it
            weight = Parameter(b.fresh(f"{name}_layer", raw=True), (), "per_layer", True, symbol,
                               f"the objective's weight {name}, learned per layer", positive=True)
            b.check_positive(weight.name, symbol, b.spec.learn.objective)
            b.parameters.append(weight)
            b.learned_weights[symbol] = weight
        weights[symbol] = b.learned_weights[symbol].symbol
    return weights


def objective_argument(b: LayerBuilder, point: sp.MatrixSymbol, gradient: sp.MatrixExpr,
                       step: Parameter) -> sp.MatrixExpr:
    where = b.spec.learn.objective
    assert where is not None
    policy = where.text
    if policy == "coupled":
        return coupled_argument(b, point, gradient, step, where)
    if policy == "analytic":
        return analytic_argument(b, point, gradient, step, where)
    argument = point - step.symbol * gradient
    tying = "per_layer" if policy == "untied" else "shared"
    assert not isinstance(step.init, tuple)
    return learned_maps(b, argument, per_sample_symbols(b), {step.symbol: step.init}, where, tying)


def initial_value(b: LayerBuilder, var: str) -> sp.MatrixExpr | None:
    decl = b.spec.variables[var]
    init = parse_init(b.ns, decl.init, decl.shape)
    return init.expr if init is not None else None


def lower_gradient_method(b: LayerBuilder) -> tuple[str, ...]:
    """Lay out one layer of a gradient method; returns the outputs."""
    method = b.spec.algorithm.method
    variables = list(b.spec.variables)
    if method != "block_proximal_gradient" and len(variables) != 1:
        raise SpecError(
            f"{method} unrolls a single variable; this spec declares {len(variables)}",
            key_path="algorithm.method", line=b.spec.algorithm.where.line,
            hint="use block_proximal_gradient for several variables (one prox step per variable)",
        )
    for var in variables:
        b.state(b.variable(var), initial_value(b, var), f"the variable {var}")
    if method == "fista":
        lower_fista(b, variables[0])
        return (variables[0],)
    objective = b.spec.learn.objective
    if method == "block_proximal_gradient" and objective is not None and objective.text != "weights":
        raise objective.error("learned linear maps apply to single-variable methods",
                              hint="objective: weights learns the objective's weights per layer instead")
    for var in variables:
        x = b.variable(var)
        proximal_update(b, var, x, x, step_parameter(b, var))
    return tuple(variables)


def lower_fista(b: LayerBuilder, var: str) -> None:
    x = b.variable(var)
    step = step_parameter(b, var)
    z = sp.MatrixSymbol(b.fresh(f"{var}_momentum"), *x.shape)
    b.state(z, b.states[0].init, "the extrapolated point where FISTA takes its gradient")
    x_next = b.temporary(f"{var}_next", x, f"the new iterate of {var}")
    proximal_update(b, var, z, x_next, step)
    momentum = b.hyperparameter("momentum", fista_momentum(b.spec.algorithm.layers),
                                "FISTA extrapolation weight beta_k = (t_k - 1)/t_{k+1}",
                                positive=False, varies_per_layer=True)
    b.assign(z, x_next + momentum.symbol * (x_next - x),
             f"{z.name} = {x_next.name} + momentum*({x_next.name} - {var})")
    b.assign(x, x_next, f"{var} = {x_next.name}")
