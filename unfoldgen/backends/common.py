"""What both code backends need to know about a program, computed once."""

from __future__ import annotations

from collections.abc import Iterable

import sympy as sp

from unfoldgen.ir.program import Program, step_expressions
from unfoldgen.names import around
from unfoldgen.operators.linear import LinearOperator, Materialized, TableMatrix, is_operator, operator_of
from unfoldgen.operators.prox import HELPERS, Helper, norm1
from unfoldgen.symbolic.nodes import AnalyticWeight, LowRankFactor
from unfoldgen.symbolic.prox import ProxOperator


def prox_helpers(program: Program) -> list[Helper]:
    """The registered prox helpers the emitted code calls, with those they call, in registry order."""
    used = {stage.helper.name for prox in program.proxes for stage in prox.stages if stage.helper is not None}
    if program.support:
        used.add(norm1.SOFT_THRESHOLD.name)  # support selection thresholds the entries it does not keep
    closure = set(used)
    for name in used:
        closure |= {h.name for h in _required(HELPERS[name])}
    return [helper for name, helper in HELPERS.items() if name in closure]


def _required(helper: Helper) -> list[Helper]:
    return [r for required in helper.requires for r in (required, *_required(required))]


def used_operators(program: Program) -> list[str]:
    """Helpers the emitted code needs: prox helpers, support selection, networks, SymPy nodes."""
    helpers = prox_helpers(program)
    operators = {helper.name for helper in helpers}
    if any(helper.svd_workspace for helper in helpers):
        operators.add("jacobi_svd")
    for derived in program.derived:
        if derived.expr.atoms(AnalyticWeight) or isinstance(derived.expr, AnalyticWeight):
            operators.add("analytic_weight")
    for step in (*program.init_steps, *program.steps):
        for expr in step_expressions(step):
            if isinstance(expr, LowRankFactor) or expr.atoms(LowRankFactor):
                operators |= {"svd_factor", "jacobi_svd"}
            if isinstance(expr, sp.Inverse) or expr.atoms(sp.Inverse):
                operators.add("inverse")
    operators |= linear_helpers(program)
    if program.support:
        operators.add("soft_threshold_support")
    operators |= {f"network_{n.kind}" for n in program.networks}
    operators |= {f"activation_{n.activation}" for n in program.networks}
    return sorted(operators)


def _operator_calls(program: Program) -> set[tuple[str, str, str]]:
    """``(template, array helper, numba helper)`` of every operator application the layers make,
    and of the tables and dense matrices computed when the model is built (no Numba helper)."""
    calls = {(operator.template, operator.array_call(adjoint)[0], operator.numba_call(adjoint)[0])
             for operator, adjoint in _layer_operators(program)}
    for derived in program.derived:
        calls |= {(table.template, table.helper, "") for table in derived.expr.atoms(TableMatrix)}
        for dense in derived.expr.atoms(Materialized):
            calls |= {("dense", "dense_matrix", "")}
            calls |= {(operator.template, operator.array_call(adjoint)[0], "")
                      for operator, adjoint in _applications(dense.matrix)}
    return calls


def _layer_operators(program: Program) -> set[tuple[LinearOperator, bool]]:
    """Every ``(operator, adjoint)`` the layers (and the setup before them) apply."""
    return {applied for step in (*program.init_steps, *program.steps) for expr in step_expressions(step)
            for applied in _applications(expr)}


def _applications(expr: sp.Basic) -> set[tuple[LinearOperator, bool]]:
    return {operator_of(factor) for product in expr.atoms(sp.MatMul) for factor in product.args if is_operator(factor)}


def linear_helpers(program: Program) -> set[str]:
    """The operator helpers the emitted code calls (both backends' names)."""
    return {name for _, array, numba in _operator_calls(program) for name in (array, numba) if name}


def loop_helpers(program: Program) -> set[str]:
    """The loop helpers (templates/numba_products.py.j2) that the operators' Numba helpers call."""
    return {helper for operator, _ in _layer_operators(program) for helper in operator.loop_helpers}


def linear_templates(program: Program) -> list[str]:
    """The templates of the operators the program applies, ``templates/linear/<name>.py.j2``."""
    return [f"linear/{name}.py.j2" for name in sorted({template for template, _, _ in _operator_calls(program)})]


def prox_definition(prox: ProxOperator) -> str:
    return " + ".join(t.where.text for t in prox.terms) or prox.closed_form


def shape_literal(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def kernel_arrays(program: Program) -> list[tuple[str, tuple[int, ...]]]:
    """The kernel's array arguments, in order, with their shapes.

    Constants as they are; derived tensors with a leading layer axis when they vary per layer;
    parameters with a leading axis of ``layers`` (untied) or 1 (tied), so the kernel indexes
    ``[k]`` or ``[0]``.
    """
    arrays = list(program.constants.items())
    for derived in program.layer_tensors:
        leading = (program.layers,) if derived.per_layer else ()
        arrays.append((derived.name, leading + derived.shape))
    for parameter in program.parameters:
        layers = program.layers if parameter.per_layer else 1
        arrays.append((parameter.name, (layers, *parameter.shape)))
    return arrays


def array_params_with_shapes(program: Program, names: list[str]) -> list[dict[str, str]]:
    """``names`` (kernel arrays) with their shapes as literals, for the checks at a kernel's entry."""
    shapes = dict(kernel_arrays(program))
    return [{"name": name, "shape": shape_literal(shapes[name])} for name in names]


def kernel_param_names(program: Program) -> tuple[list[str], list[str]]:
    """Array arguments (constants, derived tensors, parameters) and scalar arguments (spec params)."""
    return [name for name, _ in kernel_arrays(program)], program.used_params()


def argument_names(prox: ProxOperator) -> list[str]:
    return [a.name for a in prox.arguments]


class Locals:
    """A generated function's own names (weights, activations, loop indices), spelled around
    its inputs' names, which are the spec's and keep their spelling: ``local("w0")``."""

    def __init__(self, inputs: Iterable[str]) -> None:
        self.taken = set(inputs)

    def __call__(self, name: str) -> str:
        return around(name, self.taken)
