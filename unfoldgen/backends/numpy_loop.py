"""Emit ``numpy_loop.py``: the unrolled network as a plain NumPy loop over the layers.

It is what an engineer would write by hand without a compiler: whole-batch NumPy expressions,
one line per step, reading the same ``params`` dict as the Numba kernel. ``unfoldgen bench``
times it as the baseline, and the test suite holds it to the PyTorch module, so it is also a
third, independent rendering of the IR.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from unfoldgen.backends.array_printer import NumpyPrinter, prox_lines, state_inits
from unfoldgen.backends.common import (
    Locals,
    argument_names,
    array_params_with_shapes,
    kernel_param_names,
    linear_templates,
    prox_definition,
    prox_helpers,
    shape_literal,
    used_operators,
)
from unfoldgen.backends.hygiene import Spelling, spelling
from unfoldgen.backends.render import render
from unfoldgen.ir.program import Network, Program

NUMPY_ACTIVATIONS = {"relu": "{np}.maximum({value}, 0.0)", "tanh": "{np}.tanh({value})",
                     "softplus": "{np}.logaddexp(0.0, {value})"}


def _network(program: Program, network: Network, g: Spelling) -> dict[str, object]:
    """A function running one network on a batch, its weights passed for the current layer."""
    inputs = [i.name for i in program.network_inputs(network)]
    local = Locals(inputs)
    weights = [local(f"w{i // 2}") if i % 2 == 0 else local(f"b{i // 2}") for i in range(2 * network.depth)]
    hidden = local("hidden")
    activation = NUMPY_ACTIVATIONS[network.activation]
    lines = []
    if network.kind == "mlp":
        lines.append(f"{hidden} = {g.np}.concatenate([{', '.join(f'{i}.reshape({i}.shape[0], -1)' for i in inputs)}], axis=1)")
        for i in range(network.depth):
            value = f"{hidden} @ {weights[2 * i]}.T + {weights[2 * i + 1]}"
            lines.append(f"{hidden} = {g.format(activation, value=value) if i < network.depth - 1 else value}")
        lines.append(f"return {hidden}.reshape(-1, {', '.join(map(str, network.output_shape))})")
    else:
        lines.append(f"{hidden} = {inputs[0]}[:, None]")
        for i in range(network.depth):
            value = f"{g.conv3x3}({hidden}, {weights[2 * i]}, {weights[2 * i + 1]})"
            lines.append(f"{hidden} = {g.format(activation, value=value) if i < network.depth - 1 else value}")
        lines.append(f"return {hidden}[:, 0]")
    return {"name": network.name, "arguments": [*inputs, *weights], "lines": lines,
            "doc": f"{network.description} ({network.kind}, {' -> '.join(map(str, network.sizes))}, {network.activation})."}


def emit_numpy_loop(program: Program) -> str:
    printer = NumpyPrinter(program, spelling(program))
    arrays, scalars = kernel_param_names(program)
    batch_input = next(iter(program.inputs))
    states = state_inits(printer, batch_input)
    init_steps = [{"comment": s.comment, "code": printer.step(s)} for s in program.init_steps]
    steps = [{"comment": s.comment, "code": printer.step(s)} for s in program.steps]
    used = printer.resolver.read  # the names the printed code reads
    return render(
        "numpy_loop.py.j2",
        name=program.name, spec_hash=program.spec_hash, layers=program.layers, layer_index=printer.k, arrays=program.local("arrays"),
        method_title=program.method_title,
        inputs=[{"name": n, "shape": shape_literal(s)} for n, s in program.inputs.items()],
        array_params=array_params_with_shapes(program, [a for a in arrays if a in used]), scalar_params=[a for a in scalars if a in used],
        weight_formats=[],
        support=program.support, states=states, init_steps=init_steps, steps=steps,
        outputs=list(program.outputs), used=used_operators(program), prox_helpers=[h.template for h in prox_helpers(program)], linear_templates=linear_templates(program),
        proxes=[{"name": p.function_name, "args": argument_names(p), "definition": prox_definition(p),
                 "lines": prox_lines(NumpyPrinter, program, printer.g, p)} for p in program.proxes],
        networks=[_network(program, n, printer.g) for n in program.networks], g=printer.g,
    )


def runners(load: Callable[[str], ModuleType], folder: Path, params: dict[str, Any],
            variant: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The loop's ``solve`` on a batch of one and on a batch, for the benchmark."""
    loop = load("numpy_loop")
    return ((lambda one: loop.solve(params, **{k: v[None] for k, v in one.items()})),
            (lambda batch: loop.solve(params, **batch)))
