"""Emit ``model.py``: the unrolled network as a trainable ``torch.nn.Module``."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from unfoldgen.backends.array_printer import TORCH, TorchPrinter, prox_lines, state_inits
from unfoldgen.backends.common import (
    argument_names,
    kernel_arrays,
    linear_templates,
    prox_definition,
    prox_helpers,
    shape_literal,
    used_operators,
)
from unfoldgen.backends.hygiene import CANONICAL, Spelling, spelling
from unfoldgen.backends.render import render
from unfoldgen.backends.resolver import module_attribute
from unfoldgen.ir.program import (
    Derived,
    Network,
    Parameter,
    Program,
    RandomInit,
)

TORCH_ACTIVATIONS = {"relu": "{torch}.relu({value})", "tanh": "{torch}.tanh({value})", "softplus": "_softplus({value})"}


def _init_code(printer: TorchPrinter, parameter: Parameter) -> str:
    init, g = parameter.init, printer.g
    if isinstance(init, RandomInit):
        shape = _stored_shape(printer.program, parameter)
        if init.zero:
            return f"{g.torch}.zeros({shape}, dtype={g.dtype}, device={g.device})"
        return f"_uniform({g.generator}, {shape}, {1 / math.sqrt(init.fan_in)!r}, {g.reference})"
    if isinstance(init, tuple):
        values = ", ".join(repr(float(v)) for v in init)
        return f"_tensor([{values}], {g.reference})"
    return f"_tensor({printer.print(init)}, {g.reference})"


def _stored_shape(program: Program, parameter: Parameter) -> str:
    return shape_literal(((program.layers,) if parameter.per_layer else ()) + parameter.shape)


def _storage(parameter: Parameter) -> str:
    """The stored tensor: one copy per layer of a classical value for untied parameters."""
    if parameter.per_layer and not isinstance(parameter.init, (tuple, RandomInit)):
        return f"_layerwise({parameter.name})"
    return parameter.name


def _network_code(network: Network, inputs: tuple[str, ...], k: str, g: Spelling) -> dict[str, object]:
    """The lines of the module method that runs one network on a batch (``k``: the layer)."""
    index = f"[{k}]" if network.per_layer else ""
    activation = TORCH_ACTIVATIONS[network.activation]
    hidden = g.hidden
    lines = []
    if network.kind == "mlp":
        lines.append(f"{hidden} = {g.torch}.cat([{', '.join(f'{i}.flatten(1)' for i in inputs)}], dim=1)")
        for i in range(network.depth):
            weight, bias = (f"{g.self}.{n}{index}" for n in network.weight_names(i))
            value = f"{hidden} @ {weight}.mT + {bias}"
            lines.append(f"{hidden} = {g.format(activation, value=value) if i < network.depth - 1 else value}")
        lines.append(f"return {hidden}.reshape(-1, {', '.join(map(str, network.output_shape))})")
    else:
        lines.append(f"{hidden} = {inputs[0]}.unsqueeze(1)")
        for i in range(network.depth):
            weight, bias = (f"{g.self}.{n}{index}" for n in network.weight_names(i))
            value = f"{g.torch}.nn.functional.conv2d({hidden}, {weight}, {bias}, padding=1)"
            lines.append(f"{hidden} = {g.format(activation, value=value) if i < network.depth - 1 else value}")
        lines.append(f"return {hidden}.squeeze(1)")
    sizes = " -> ".join(map(str, network.sizes))
    kind = "dense layers" if network.kind == "mlp" else "3x3 convolutions, channels"
    return {"name": network.name, "inputs": inputs, "lines": lines,
            "doc": f"{network.description}: {kind} {sizes}, {network.activation}; "
                   f"{'one per layer' if network.per_layer else 'shared by all layers'}, the last layer starts at zero."}


def _derived_code(printer: TorchPrinter, derived: Derived) -> str:
    if derived.per_layer:
        g = printer.g
        return f"{g.torch}.stack([{printer.print(derived.expr)} for {printer.k} in {g.range}({g.LAYERS})])"
    return printer.print(derived.expr)


def emit_torch_module(program: Program) -> str:
    printer = TorchPrinter(program, spelling(program))
    inputs = [{"name": n, "shape": shape_literal(s)}
              for n, s in program.inputs.items()]
    batch_input = next(iter(program.inputs))
    constants = [{"name": n, "shape": shape_literal(s), "attribute": module_attribute(program, n)}
                 for n, s in program.constants.items()]
    reference = constants[0]["name"] if constants else "None"
    dynamic = [d for d in program.layer_tensors if program.is_dynamic(d)]
    positive = [p for p in program.parameters if p.positive]
    values_printer = TorchPrinter(program, printer.g)  # layer_values() defines the locals this code reads
    g = printer.g
    layer_values = ([{"name": p.name, "code": f"_softplus({g.self}.{p.name}_raw)", "comment": f"{p.name} > 0"}
                     for p in positive]
                    + [{"name": d.name, "code": _derived_code(values_printer, d), "comment": d.description}
                       for d in dynamic])
    layer_value_locals = [name for name in TORCH.context if name in values_printer.context_read]
    return render(
        "model.py.j2",
        name=program.name, spec_hash=program.spec_hash, layers=program.layers,
        method_title=program.method_title, description=program.description or program.name,
        inputs=inputs, constants=constants, seed=program.seed,
        params=[{"name": n, "value": repr(v), "attribute": module_attribute(program, n)} for n, v in program.params.items()],
        derived=[{"name": d.name, "code": printer.print(d.expr), "comment": d.description}
                 for d in program.derived if not d.shape],
        static_tensors=[{"name": d.name, "code": _derived_code(printer, d), "comment": d.description}
                        for d in program.layer_tensors if not program.is_dynamic(d)],
        layer_values=layer_values, layer_value_locals=layer_value_locals,
        parameters=[{"name": p.name, "init_code": _init_code(printer, p), "storage": _storage(p),
                     "attribute": f"{p.name}_raw" if p.positive else p.name, "positive": p.positive,
                     "trainable": p.trainable, "comment": _parameter_comment(p)} for p in program.parameters],
        random=any(isinstance(p.init, RandomInit) for p in program.parameters),
        states=state_inits(printer, batch_input),
        init_steps=[{"comment": s.comment, "code": printer.step(s)} for s in program.init_steps],
        steps=[{"comment": s.comment, "code": printer.step(s)} for s in program.steps],
        outputs=list(program.outputs), outputs_doc="{" + ", ".join(f"'{o}': ..." for o in program.outputs) + "}",
        used=used_operators(program), prox_helpers=[h.template for h in prox_helpers(program)], linear_templates=linear_templates(program),
        proxes=[{"name": p.function_name, "args": argument_names(p), "definition": prox_definition(p),
                 "lines": prox_lines(TorchPrinter, program, printer.g, p)} for p in program.proxes],
        networks=[_network_code(n, tuple(i.name for i in program.network_inputs(n)), printer.k, g)
                  for n in program.networks],
        layer_index=printer.k, depth=program.local("depth"), history=program.local("history"),
        support=program.support,
        per_layer=_tuple_literal([f"{p.name}_raw" if p.positive else p.name
                                  for p in program.parameters if p.trainable and p.per_layer]),
        kernel_params=[{"name": name, "shape": shape_literal(shape), "source": source}
                       for (name, shape), source in zip(kernel_arrays(program), torch_sources(program, g))]
                      + [{"name": name, "shape": "()", "source": f"{g.self}.{module_attribute(program, name)}"}
                         for name in program.used_params()],
        reference=reference, spec_dtype=program.dtype,
        dtype_source=program.constants and module_attribute(program, next(iter(program.constants)))
                     or f"{program.parameters[0].name}"
                     + ("_raw" if program.parameters[0].positive else ""),
        g=g,
    )


def _tuple_literal(names: list[str]) -> str:
    return "(" + ", ".join(f'"{name}"' for name in names) + ("," if len(names) == 1 else "") + ")"


def torch_sources(program: Program, g: Spelling = CANONICAL) -> list[str]:
    """Where ``kernel_params()`` reads each array of :func:`kernel_arrays`, in the same order:
    an attribute, or a local of ``layer_values()``."""
    sources = [f"{g.self}.{module_attribute(program, name)}" for name in program.constants]
    sources += [d.name if program.is_dynamic(d) else f"{g.self}.{d.name}" for d in program.layer_tensors]
    sources += [p.name if p.positive else f"{g.self}.{p.name}" for p in program.parameters]
    return sources


def _parameter_comment(parameter: Parameter) -> str:
    tying = "untied, one per layer" if parameter.per_layer else "tied, shared by all layers"
    kind = "trainable" if parameter.trainable else "fixed"
    positive = ", kept positive by softplus" if parameter.positive else ""
    return f"{parameter.name}: {parameter.description} ({kind}, {tying}{positive})"


def runners(load: Callable[[str], ModuleType], folder: Path, params: dict[str, Any],
            variant: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The module with the weights of ``folder/module.pt``, eager or through ``torch.compile``
    (``variant``), or its ONNX export ``folder/model.onnx`` in onnxruntime, on a batch of one
    and on a batch, for the benchmark."""
    import json
    import os

    import torch

    threads = int(os.environ.get("NUMBA_NUM_THREADS") or os.cpu_count() or 1)  # bench sets it
    if variant == "onnxruntime":
        return onnxruntime_runners(folder, threads)
    torch.set_num_threads(threads)
    saved = torch.load(folder / "module.pt", weights_only=True)
    dtype = getattr(torch, json.loads((folder / "config.json").read_text())["dtype"])
    model = load("model").Unfolded(**saved["constants"]).to(dtype).eval()  # the spec may name a constant dtype
    model.load_state_dict(saved["state"])
    network = torch.compile(model) if variant == "torch_compile" else model

    def run(inputs: dict[str, Any]) -> object:
        with torch.inference_mode():
            return network(**{k: torch.from_numpy(v) for k, v in inputs.items()})

    return (lambda one: run({k: v[None] for k, v in one.items()})), run


def onnxruntime_runners(folder: Path, threads: int) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``folder/model.onnx`` (the workspace's ONNX export of the module) in an onnxruntime
    session with ``threads`` intra-op threads, sequential execution, all graph optimisations."""
    reason = folder / "model.onnx.missing"
    if reason.exists():
        raise RuntimeError(reason.read_text())
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]

    def run(inputs: dict[str, Any]) -> object:
        return session.run(outputs, inputs)

    return (lambda one: run({k: v[None] for k, v in one.items()})), run
