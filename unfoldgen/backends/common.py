"""What both code backends need to know about a program, computed once."""

from __future__ import annotations

from unfoldgen.ir.program import Program
from unfoldgen.symbolic.prox import ProxOperator

METHOD_TITLES = {
    "gradient_descent": "gradient descent",
    "proximal_gradient": "proximal gradient (ISTA)",
    "projected_gradient": "projected gradient",
    "fista": "FISTA",
}


def used_operators(program: Program) -> list[str]:
    return sorted({stage.operator for prox in program.proxes for stage in prox.stages})


def prox_definition(prox: ProxOperator) -> str:
    return " + ".join(t.where.text for t in prox.terms)


def shape_literal(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def kernel_param_names(program: Program) -> tuple[list[str], list[str]]:
    """Array arguments (constants, parameters) and scalar arguments (spec params) of the kernel."""
    arrays = list(program.constants) + [p.name for p in program.parameters]
    return arrays, program.used_params()


def argument_names(prox: ProxOperator) -> list[str]:
    return [a.name for a in prox.arguments]
