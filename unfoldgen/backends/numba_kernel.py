"""Emit ``kernel.py``: the unrolled network as a Numba kernel needing only numpy and numba."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from unfoldgen.backends.common import (
    argument_names,
    array_params_with_shapes,
    kernel_param_names,
    linear_templates,
    prox_definition,
    prox_helpers,
    shape_literal,
    used_operators,
)
from unfoldgen.backends.hygiene import MODULE_NAMES, PARFOR_NAMES, Spelling, spelling
from unfoldgen.backends.numba_batched import BatchedLowering, StepCode
from unfoldgen.backends.numba_lowering import (
    SVD_WORKSPACE,
    Buffer,
    NumbaLowering,
    NumbaScalarPrinter,
    needs_svd_workspace,
)
from unfoldgen.backends.numba_networks import network_function, network_products
from unfoldgen.backends.numba_statements import PRODUCTS, Product, Sample, Statement, reads, statement_lines
from unfoldgen.backends.render import render
from unfoldgen.backends.resolver import prox_argument_name
from unfoldgen.ir.program import Program
from unfoldgen.names import around
from unfoldgen.symbolic.prox import ProxOperator


def _prox_lines(prox: ProxOperator, g: Spelling) -> list[str]:
    printer = NumbaScalarPrinter(prox_argument_name, g)
    lines = []
    for stage in prox.stages:
        if stage.helper is None:
            assert stage.formula is not None
            lines.append(f"v = {printer.print(stage.formula)}")
        elif prox.elementwise:
            args = ", ".join(["v", *(printer.print(a) for a in stage.args)])
            lines.append(f"v = {stage.helper.name}({args})")
        else:
            workspace = list(SVD_WORKSPACE) if stage.helper.svd_workspace else []
            lines.append(f"{stage.helper.name}({', '.join(['v', *(printer.print(a) for a in stage.args), *workspace])})")
    return lines


def _networks(program: Program, g: Spelling) -> list[dict[str, object]]:
    functions = []
    for network in program.networks:
        inputs = [(i.name, program.tensor_shape(i.name)) for i in program.network_inputs(network)]
        functions.append(network_function(network, inputs, g))
    return functions


# Smallest batch for which the BLAS path beats per-sample kernels (make bench measures both).
BLAS_MIN_BATCH = 16


@dataclass(frozen=True)
class LoweredKernel:
    """One sample's statements (before and inside the layer loop) and the buffers they use."""

    setup: list[StepCode]
    steps: list[StepCode]
    buffers: list[Buffer]


def lower_kernel(program: Program, g: Spelling | None = None) -> LoweredKernel:
    lowering = NumbaLowering(program, g)
    init = [StepCode("", lowering.initial(state.name, state.init)) for state in program.states]
    init_steps = [StepCode(step.comment, lowering.step(step)) for step in program.init_steps]
    steps = [StepCode(step.comment, lowering.step(step)) for step in program.steps]
    buffers = [Buffer(s.name, s.shape, s.description) for s in program.states if s.name not in program.outputs]
    buffers += [Buffer(s.name, s.shape, s.description) for s in program.temporaries]
    return LoweredKernel([*init, *init_steps], steps, buffers + lowering.buffers)


def foldable(program: Program) -> list[str]:
    """Values fixed for good once a network is trained: the spec's scalar params and the
    scalar parameters that are not learned. ``unfoldgen export`` writes them into the kernel
    as constants (Numba compiles them in) instead of shipping them in ``params.npz``."""
    fixed = [p.name for p in program.parameters if not p.trainable and not p.shape]
    # a folded value is a module-level name: one the kernel's module already binds stays a param
    return [name for name in fixed + program.used_params() if name not in MODULE_NAMES]


def folded_literal(value: np.ndarray) -> str:
    """A Python literal Numba compiles as a constant: a float, or a tuple of floats indexed by layer."""
    flat = np.asarray(value, dtype=np.float64).reshape(-1)
    if np.ndim(value) == 0:
        return repr(float(flat[0]))
    return "(" + ", ".join(repr(float(v)) for v in flat) + ("," if flat.size == 1 else "") + ")"


def _step_lines(step: StepCode, sample: Sample) -> list[str]:
    return [line for s in step.statements for line in statement_lines(s, sample)]


def _statements(lowered: LoweredKernel) -> list[Statement]:
    return [s for step in (*lowered.setup, *lowered.steps) for s in step.statements]


def params_read(program: Program, lowered: LoweredKernel | None = None) -> tuple[list[str], list[str]]:
    """The arrays and scalars of ``kernel_params()`` that the kernel reads, in signature order
    (LISTA, for one, keeps ``A`` in the module for training but never reads it in a layer)."""
    read = {name for s in _statements(lowered or lower_kernel(program)) for name in reads(s)}
    arrays, scalars = kernel_param_names(program)
    return [a for a in arrays if a in read], [a for a in scalars if a in read]


def emit_numba_kernel(program: Program, folded: Mapping[str, np.ndarray] | None = None) -> str:
    """The kernel; ``folded`` values (names from :func:`foldable`) become module constants."""
    folded = dict(folded or {})
    g = spelling(program)
    lowered = lower_kernel(program, g)
    outputs = [s for s in program.states if s.name in program.outputs]
    buffers = lowered.buffers
    arrays, scalars = params_read(program, lowered)
    arrays = [a for a in arrays if a not in folded]
    scalars = [a for a in scalars if a not in folded]
    inputs = list(program.inputs)
    signature = arrays + scalars + inputs + [o.name for o in outputs]
    k, b, batch = program.local("k"), program.local("b"), program.local("batch")  # the kernel's own locals
    # the parallel loop's parameters: Numba's generated code for prange reads np, range... there
    parallel = {name: around(name, set(signature) | PARFOR_NAMES) if name in PARFOR_NAMES else name for name in signature}
    batch_call = ", ".join([parallel[a] for a in arrays + scalars] + [f"{parallel[n]}[{b}]" for n in inputs]
                           + [f"{parallel[o.name]}[{b}]" for o in outputs])
    sample_names = inputs + [o.name for o in outputs] + [buffer.name for buffer in buffers]
    batched = BatchedLowering(sample_names, signature + [buffer.name for buffer in buffers], b, k, g).lower(
        lowered.setup, lowered.steps)
    networks = _networks(program, g)
    one_sample = Sample(g=g)
    products = {s.helper for s in _statements(lowered) if isinstance(s, Product)}
    products |= {helper for network in program.networks for helper in network_products(network)}
    return render(
        "kernel.py.j2",
        products=[helper for helper in PRODUCTS if helper in products],
        name=program.name, spec_hash=program.spec_hash, layers=program.layers,
        method_title=program.method_title,
        inputs=[{"name": n, "shape": shape_literal(s)} for n, s in program.inputs.items()],
        outputs=[{"name": o.name, "shape": shape_literal(o.shape)} for o in outputs],
        array_params=array_params_with_shapes(program, arrays), scalar_params=scalars,
        folded=[{"name": name, "literal": folded_literal(value)} for name, value in folded.items()], signature=", ".join(signature), batch_call=batch_call,
        parallel_signature=", ".join(parallel[name] for name in signature), parallel_source=parallel[inputs[0]],
        buffers=[{"name": b.name, "shape": shape_literal(b.shape), "batched_shape": f"({batch}, {', '.join(map(str, b.shape))})",
                  "comment": b.comment} for b in buffers],
        setup=[_code(step, one_sample) for step in lowered.setup], steps=[_code(step, one_sample) for step in lowered.steps],
        batched=batched, blas_min_batch=BLAS_MIN_BATCH, layer_index=k, sample_index=b, batch=batch,
        used=used_operators(program), prox_helpers=[h.template for h in prox_helpers(program)], linear_templates=linear_templates(program), support=program.support,
        networks=networks,
        proxes=[{"name": p.function_name, "args": argument_names(p), "definition": prox_definition(p),
                 "elementwise": p.elementwise, "lines": _prox_lines(p, g),
                 "workspace": list(SVD_WORKSPACE) if needs_svd_workspace(p) else []} for p in program.proxes],
        g=g,
    )


def _code(step: StepCode, sample: Sample) -> dict[str, object]:
    return {"comment": step.comment, "lines": _step_lines(step, sample)}


def runners(load: Callable[[str], ModuleType], folder: Path, params: dict[str, Any],
            variant: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The kernel's ``solve_one`` (one sample) and ``solve`` (a batch), for the benchmark."""
    import os

    import numba

    numba.set_num_threads(int(os.environ.get("NUMBA_NUM_THREADS") or os.cpu_count() or 1))  # bench sets it
    kernel = load("kernel")
    return (lambda one: kernel.solve_one(params, **one)), (lambda batch: kernel.solve(params, **batch))
