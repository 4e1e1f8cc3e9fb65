"""Emit ``numpy_loop.py``: the unrolled network as a plain NumPy loop over the layers.

It is what an engineer would write by hand without a compiler: whole-batch NumPy expressions,
one line per step, reading the same ``params`` dict as the Numba kernel. ``unfoldgen bench``
times it as the baseline, and the test suite holds it to the PyTorch module, so it is also a
third, independent rendering of the IR.
"""

from __future__ import annotations

from typing import ClassVar

import sympy as sp

from unfoldgen.backends.common import (
    Locals,
    argument_names,
    array_params_with_shapes,
    kernel_param_names,
    names_in,
    prox_definition,
    prox_helpers,
    shape_literal,
    used_operators,
)
from unfoldgen.backends.render import render
from unfoldgen.backends.torch_printer import Code, LocalNames, TorchPrinter, prox_lines, state_inits
from unfoldgen.ir.program import ApplyNetwork, Assign, Network, Program, Step
from unfoldgen.symbolic.prox.separable import V

NUMPY_ACTIVATIONS = {"relu": "np.maximum({}, 0.0)", "tanh": "np.tanh({})", "softplus": "np.logaddexp(0.0, {})"}


class NumpyPrinter(TorchPrinter):
    """Batched NumPy code; parameters are read from the kernel's arrays (``[k]`` per layer,
    ``[0]`` when tied), like the Numba kernel does."""

    namespace = "np"
    functions: ClassVar[dict[type, str]] = {sp.Abs: "np.abs", sp.sqrt: "np.sqrt", sp.exp: "np.exp", sp.log: "np.log",
                                            sp.Max: "np.maximum", sp.Min: "np.minimum", sp.sign: "np.sign"}

    def name_of(self, symbol: sp.Symbol) -> str:
        if symbol == V:
            return "v"
        name = symbol.name
        role = self.program.role(name)
        if role == "parameter":
            return f"{name}[{self.k}]" if self.program.parameter(name).per_layer else f"{name}[0]"
        if role == "derived" and self.program.derived_value(name).per_layer:
            return f"{name}[{self.k}]"
        return name

    def transpose(self, code: Code) -> str:
        return f"{code.operand()}.swapaxes(-1, -2)" if code.batched else f"{code.operand()}.T"

    def identity(self, size: int) -> str:
        return f"np.eye({size}, dtype=dtype)"

    def zeros_like_batch(self, batch_input: str, shape: tuple[int, ...]) -> str:
        return f"np.zeros(({batch_input}.shape[0], {', '.join(map(str, shape))}), dtype)"

    def repeat_for_batch(self, code: str, batch_input: str, shape: tuple[int, ...]) -> str:
        return f"np.broadcast_to({code}, ({batch_input}.shape[0], {', '.join(map(str, shape))})).copy()"

    def column_product(self, left: Code, vector: Code) -> str:
        return f"({left.operand()} @ {vector.operand()}[..., None])[..., 0]"


class _LocalNames(LocalNames, NumpyPrinter):
    """Inside a prox function every symbol is one of its arguments."""


def _step_code(printer: NumpyPrinter, step: Step) -> str:
    if isinstance(step, Assign):
        return f"{step.target.name} = {printer.print(step.expr)}"
    if isinstance(step, ApplyNetwork):
        weights = [printer.name_of(sp.Symbol(n)) for n in step.network.parameter_names()]
        inputs = ", ".join([*(i.name for i in step.inputs), *weights])
        return f"{step.target.name} = {step.base.name} + {step.network.name}({inputs})"
    args = [printer.print(step.argument)] + [printer.print(v) for v in step.values]
    if step.support is not None:
        return f"{step.target.name} = soft_threshold_support({', '.join(args)}, SUPPORT[{printer.k}])"
    return f"{step.target.name} = {step.prox.function_name}({', '.join(args)})"


def _network(program: Program, network: Network) -> dict[str, object]:
    """A function running one network on a batch, its weights passed for the current layer."""
    inputs = [i.name for i in program.network_inputs(network)]
    local = Locals(inputs)
    weights = [local(f"w{i // 2}") if i % 2 == 0 else local(f"b{i // 2}") for i in range(2 * network.depth)]
    hidden = local("hidden")
    activation = NUMPY_ACTIVATIONS[network.activation]
    lines = []
    if network.kind == "mlp":
        lines.append(f"{hidden} = np.concatenate([{', '.join(f'{i}.reshape({i}.shape[0], -1)' for i in inputs)}], axis=1)")
        for i in range(network.depth):
            value = f"{hidden} @ {weights[2 * i]}.T + {weights[2 * i + 1]}"
            lines.append(f"{hidden} = {activation.format(value) if i < network.depth - 1 else value}")
        lines.append(f"return {hidden}.reshape(-1, {', '.join(map(str, network.output_shape))})")
    else:
        lines.append(f"{hidden} = {inputs[0]}[:, None]")
        for i in range(network.depth):
            value = f"conv3x3({hidden}, {weights[2 * i]}, {weights[2 * i + 1]})"
            lines.append(f"{hidden} = {activation.format(value) if i < network.depth - 1 else value}")
        lines.append(f"return {hidden}[:, 0]")
    return {"name": network.name, "arguments": [*inputs, *weights], "lines": lines,
            "doc": f"{network.description} ({network.kind}, {' -> '.join(map(str, network.sizes))}, {network.activation})."}


def emit_numpy_loop(program: Program) -> str:
    printer = NumpyPrinter(program)
    arrays, scalars = kernel_param_names(program)
    batch_input = next(iter(program.inputs))
    states = state_inits(printer, batch_input)
    init_steps = [{"comment": s.comment, "code": _step_code(printer, s)} for s in program.init_steps]
    steps = [{"comment": s.comment, "code": _step_code(printer, s)} for s in program.steps]
    code = [s["code"] for s in (*states, *init_steps, *steps)]
    used = names_in(code)
    return render(
        "numpy_loop.py.j2",
        name=program.name, spec_hash=program.spec_hash, layers=program.layers, layer_index=printer.k, arrays=program.local("arrays"),
        method_title=program.method_title,
        inputs=[{"name": n, "shape": shape_literal(s)} for n, s in program.inputs.items()],
        array_params=array_params_with_shapes(program, [a for a in arrays if a in used]), scalar_params=[a for a in scalars if a in used],
        support=program.support, states=states, init_steps=init_steps, steps=steps,
        outputs=list(program.outputs), used=used_operators(program), prox_helpers=[h.template for h in prox_helpers(program)],
        proxes=[{"name": p.function_name, "args": argument_names(p), "definition": prox_definition(p),
                 "lines": prox_lines(_LocalNames(program), p)} for p in program.proxes],
        networks=[_network(program, n) for n in program.networks],
    )
