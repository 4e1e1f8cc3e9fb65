"""Emit ``kernel.py``: the unrolled network as a Numba kernel needing only numpy and numba."""

from __future__ import annotations

from unfoldgen.backends.common import (
    METHOD_TITLES,
    argument_names,
    kernel_param_names,
    prox_definition,
    shape_literal,
    used_operators,
)
from unfoldgen.backends.numba_lowering import Buffer, NumbaLowering, NumbaScalarPrinter, products_used
from unfoldgen.backends.numba_networks import network_function
from unfoldgen.backends.render import render
from unfoldgen.ir.program import Program
from unfoldgen.symbolic.prox import ProxOperator
from unfoldgen.symbolic.prox.separable import V


def _prox_lines(prox: ProxOperator) -> list[str]:
    printer = NumbaScalarPrinter(lambda s: "v" if s == V else s.name)
    lines = []
    for stage in prox.stages:
        if stage.operator == "piecewise":
            assert stage.formula is not None
            lines.append(f"v = {printer.print(stage.formula)}")
        elif prox.elementwise:
            args = ", ".join(["v", *(printer.print(a) for a in stage.args)])
            lines.append(f"v = {stage.operator}({args})")
        else:
            lines.append(f"{stage.operator}({', '.join(['v', *(printer.print(a) for a in stage.args)])})")
    return lines


def _networks(program: Program) -> list[dict[str, object]]:
    functions = []
    for network in program.networks:
        inputs = [(i.name, program.tensor_shape(i.name)) for i in program.network_inputs(network)]
        functions.append(network_function(network, inputs))
    return functions


def emit_numba_kernel(program: Program) -> str:
    lowering = NumbaLowering(program)
    outputs = [s for s in program.states if s.name in program.outputs]
    internal_states = [s for s in program.states if s.name not in program.outputs]
    init = []
    for state in program.states:
        init += lowering.initial(state.name, state.init)
    init_steps = [{"comment": step.comment, "statements": lowering.step(step)} for step in program.init_steps]
    steps = [{"comment": step.comment, "statements": lowering.step(step)} for step in program.steps]
    buffers = [Buffer(s.name, s.shape, s.description) for s in (*internal_states, *program.temporaries)]
    buffers += lowering.buffers
    arrays, scalars = kernel_param_names(program)
    inputs = list(program.inputs)
    signature = ", ".join(arrays + scalars + inputs + [o.name for o in outputs])
    batch_call = ", ".join(arrays + scalars + [f"{n}[b]" for n in inputs] + [f"{o.name}[b]" for o in outputs])
    networks = _networks(program)
    lines = [s.value for group in (init_steps, steps) for step in group for s in step["statements"]]
    lines += [s.value for s in init]
    lines += [line for network in networks for line in network["lines"]]  # type: ignore[attr-defined]
    return render(
        "kernel.py.j2",
        products=products_used(lines),
        name=program.name, spec_hash=program.spec_hash, layers=program.layers,
        method_title=METHOD_TITLES[program.method],
        inputs=[{"name": n, "shape": shape_literal(s)} for n, s in program.inputs.items()],
        outputs=[{"name": o.name, "shape": shape_literal(o.shape)} for o in outputs],
        array_params=arrays, scalar_params=scalars, signature=signature, batch_call=batch_call,
        buffers=[{"name": b.name, "shape": shape_literal(b.shape), "comment": b.comment} for b in buffers],
        init=init, init_steps=init_steps, steps=steps, used=used_operators(program), support=program.support,
        networks=networks,
        proxes=[{"name": p.function_name, "args": argument_names(p), "definition": prox_definition(p),
                 "elementwise": p.elementwise, "lines": _prox_lines(p)} for p in program.proxes],
    )
