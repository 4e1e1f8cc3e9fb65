"""Emit ``model.py``: the unrolled network as a trainable ``torch.nn.Module``."""

from __future__ import annotations

import sympy as sp

from unfoldgen.backends.common import (
    METHOD_TITLES,
    argument_names,
    kernel_param_names,
    prox_definition,
    shape_literal,
    used_operators,
)
from unfoldgen.backends.render import render
from unfoldgen.backends.torch_printer import TorchPrinter
from unfoldgen.ir.program import ApplyProx, Assign, Parameter, Program
from unfoldgen.symbolic.prox import ProxOperator
from unfoldgen.symbolic.prox.separable import V


class _LocalNames(TorchPrinter):
    """Inside a prox function every symbol is one of its arguments."""

    def name_of(self, symbol: sp.Symbol) -> str:
        return "v" if symbol == V else symbol.name


def _prox_lines(program: Program, prox: ProxOperator) -> list[str]:
    printer = _LocalNames(program)
    per_sample_dims = "(-1,)" if len(program.tensor_shape(prox.variable)) == 1 else "(-2, -1)"
    lines = []
    for stage in prox.stages:
        if stage.operator == "piecewise":
            assert stage.formula is not None
            lines.append(f"v = {printer.print(stage.formula)}")
            continue
        args = [printer.print(a) for a in stage.args]
        if stage.operator in ("block_shrink", "project_ball2"):
            args.append(per_sample_dims)
        lines.append(f"v = {stage.operator}({', '.join(['v', *args])})")
    return lines


def _init_code(printer: TorchPrinter, parameter: Parameter) -> str:
    if isinstance(parameter.init, tuple):
        values = ", ".join(repr(float(v)) for v in parameter.init)
        return f"_tensor([{values}], reference)"
    return f"_tensor({printer.print(parameter.init)}, reference)"


def _storage(parameter: Parameter) -> str:
    if parameter.per_layer and not isinstance(parameter.init, tuple):
        return f"_layerwise({parameter.name})"
    return parameter.name


def _state_init(printer: TorchPrinter, program: Program, batch_input: str) -> list[dict[str, str]]:
    states = []
    for state in program.states:
        if state.init is None:
            shape = ", ".join(str(n) for n in state.shape)
            code = f"torch.zeros({batch_input}.shape[0], {shape}, dtype={batch_input}.dtype, device={batch_input}.device)"
        else:
            code = printer.print(state.init)
            if not printer.matrix(state.init).batched:
                code = f"({code}).expand({batch_input}.shape[0], *{shape_literal(state.shape)}).clone()"
        states.append({"name": state.name, "init_code": code})
    return states


def _step_code(printer: TorchPrinter, step: Assign | ApplyProx) -> str:
    if isinstance(step, Assign):
        return f"{step.target.name} = {printer.print(step.expr)}"
    args = [printer.print(step.argument)] + [printer.print(v) for v in step.values]
    return f"{step.target.name} = {step.prox.function_name}({', '.join(args)})"


def emit_torch_module(program: Program) -> str:
    printer = TorchPrinter(program)
    inputs = [{"name": n, "shape": shape_literal(s), "shape_text": ", ".join(map(str, s))}
              for n, s in program.inputs.items()]
    batch_input = next(iter(program.inputs))
    arrays, scalars = kernel_param_names(program)
    kernel_params = [(name, shape_literal(program.constants[name])) for name in program.constants]
    for parameter in program.parameters:
        leading = program.layers if parameter.per_layer else 1
        kernel_params.append((parameter.name, shape_literal((leading, *parameter.shape))))
    kernel_params += [(name, "()") for name in scalars]
    constants = [{"name": n, "shape": shape_literal(s)} for n, s in program.constants.items()]
    reference = constants[0]["name"] if constants else "0.0"
    return render(
        "model.py.j2",
        name=program.name, spec_hash=program.spec_hash, layers=program.layers,
        method_title=METHOD_TITLES[program.method], description=program.description or program.name,
        inputs=inputs, constants=constants,
        params=[{"name": n, "value": repr(v)} for n, v in program.params.items()],
        derived=[{"name": d.name, "code": printer.print(d.expr), "comment": d.description} for d in program.derived],
        parameters=[{"name": p.name, "init_code": _init_code(printer, p), "storage": _storage(p),
                     "trainable": p.trainable, "comment": _parameter_comment(p)} for p in program.parameters],
        states=_state_init(printer, program, batch_input),
        steps=[{"comment": s.comment, "code": _step_code(printer, s)} for s in program.steps],
        outputs=list(program.outputs), outputs_doc="{" + ", ".join(f"'{o}': ..." for o in program.outputs) + "}",
        used=used_operators(program),
        proxes=[{"name": p.function_name, "args": argument_names(p), "definition": prox_definition(p),
                 "lines": _prox_lines(program, p)} for p in program.proxes],
        kernel_params=kernel_params, reference=reference,
        dtype_source=program.constants and next(iter(program.constants)) or program.parameters[0].name,
    )


def _parameter_comment(parameter: Parameter) -> str:
    tying = "untied, one per layer" if parameter.per_layer else "tied, shared by all layers"
    kind = "trainable" if parameter.trainable else "fixed"
    return f"{parameter.name}: {parameter.description} ({kind}, {tying})"
