"""What both code backends need to know about a program, computed once."""

from __future__ import annotations

import sympy as sp

from unfoldgen.ir.program import Program, step_expressions
from unfoldgen.symbolic.nodes import AnalyticWeight, LowRankFactor
from unfoldgen.symbolic.prox import ProxOperator

METHOD_TITLES = {
    "gradient_descent": "gradient descent",
    "proximal_gradient": "proximal gradient (ISTA)",
    "projected_gradient": "projected gradient",
    "fista": "FISTA",
    "block_proximal_gradient": "block proximal gradient",
    "admm": "ADMM",
    "hqs": "half-quadratic splitting",
    "custom": "a custom iteration",
}


def used_operators(program: Program) -> list[str]:
    """Helpers the emitted code needs: prox stages, support selection, networks, SymPy nodes."""
    operators = {stage.operator for prox in program.proxes for stage in prox.stages}
    for derived in program.derived:
        if derived.expr.atoms(AnalyticWeight) or isinstance(derived.expr, AnalyticWeight):
            operators.add("analytic_weight")
    for step in (*program.init_steps, *program.steps):
        for expr in step_expressions(step):
            if isinstance(expr, LowRankFactor) or expr.atoms(LowRankFactor):
                operators.add("svd_factor")
            if isinstance(expr, sp.Inverse) or expr.atoms(sp.Inverse):
                operators.add("inverse")
    if any(getattr(step, "support", None) for step in program.steps):
        operators |= {"soft_threshold", "soft_threshold_support"}
    operators |= {f"network_{n.kind}" for n in program.networks}
    operators |= {f"activation_{n.activation}" for n in program.networks}
    return sorted(operators)


def prox_definition(prox: ProxOperator) -> str:
    return " + ".join(t.where.text for t in prox.terms) or prox.closed_form


def shape_literal(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def kernel_arrays(program: Program, sources: dict[str, str]) -> list[tuple[str, tuple[int, ...], str]]:
    """The kernel's array arguments, in order: ``(name, shape, source)``.

    Constants as they are; derived tensors with a leading layer axis when they vary per layer;
    parameters with a leading axis of ``layers`` (untied) or 1 (tied), so the kernel indexes
    ``[k]`` or ``[0]``. ``sources`` says where the PyTorch module reads each one.
    """
    arrays = [(name, shape, sources[name]) for name, shape in program.constants.items()]
    for derived in program.layer_tensors:
        leading = (program.layers,) if derived.per_layer else ()
        arrays.append((derived.name, leading + derived.shape, sources[derived.name]))
    for parameter in program.parameters:
        leading = program.layers if parameter.per_layer else 1
        arrays.append((parameter.name, (leading, *parameter.shape), sources[parameter.name]))
    return arrays


def kernel_param_names(program: Program) -> tuple[list[str], list[str]]:
    """Array arguments (constants, derived tensors, parameters) and scalar arguments (spec params)."""
    arrays = [name for name, _, _ in kernel_arrays(program, _names(program))]
    return arrays, program.used_params()


def _names(program: Program) -> dict[str, str]:
    names = list(program.constants) + [d.name for d in program.layer_tensors] + [p.name for p in program.parameters]
    return {name: name for name in names}


def argument_names(prox: ProxOperator) -> list[str]:
    return [a.name for a in prox.arguments]
