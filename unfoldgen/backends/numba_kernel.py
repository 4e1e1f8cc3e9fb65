"""Emit ``kernel.py``: the unrolled network as a Numba kernel needing only numpy and numba."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from unfoldgen.backends.common import (
    argument_names,
    array_params_with_shapes,
    kernel_arrays,
    kernel_param_names,
    linear_templates,
    loop_helpers,
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
from unfoldgen.backends.numba_statements import (
    PRODUCTS,
    Product,
    RowProducts,
    Sample,
    Statement,
    copy_back_lines,
    fuse_rows,
    reads,
    reads_besides_weights,
    row_loop_lines,
    statement_lines,
    unfused,
)
from unfoldgen.backends.render import render
from unfoldgen.backends.resolver import prox_argument_name
from unfoldgen.backends.weights import WEIGHT_FORMATS, WeightFormat
from unfoldgen.errors import SpecError
from unfoldgen.ir.cost import sample_flops
from unfoldgen.ir.program import Program, Step
from unfoldgen.ir.zero_start import first_layer, overwritten_at_zero, starting_at_zero
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
    for network in (n for n in program.networks if n.kind != "mlp"):  # dense layers are the kernel's own statements
        inputs = [(i.name, program.tensor_shape(i.name)) for i in program.network_inputs(network)]
        functions.append(network_function(network, inputs, g))
    return functions


# Smallest batch for which the BLAS path beats per-sample kernels (make bench measures both).
BLAS_MIN_BATCH = 16


@dataclass(frozen=True)
class LoweredKernel:
    """One sample's statements (before the layer loop, in the first layer when it runs on its
    own, and inside the loop) and the buffers they use."""

    setup: list[StepCode]
    first: list[StepCode]  # the first layer without its zero terms (ir.zero_start); [] when none drop
    steps: list[StepCode]
    buffers: list[Buffer]


def lower_kernel(program: Program, g: Spelling | None = None) -> LoweredKernel:
    lowering = NumbaLowering(program, g)

    def lowered(steps: Sequence[Step]) -> list[StepCode]:
        return [StepCode(step.comment, fuse_rows(lowering.step(step))) for step in steps]

    first_steps = first_layer(program)
    overwritten = overwritten_at_zero(program, first_steps)  # no zeros to fill
    init = [StepCode("", lowering.initial(s.name, s.init)) for s in program.states if s.name not in overwritten]
    setup, first, steps = lowered(program.init_steps), lowered(first_steps), lowered(program.steps)
    buffers = [Buffer(s.name, s.shape, s.description) for s in program.states if s.name not in program.outputs]
    buffers += [Buffer(s.name, s.shape, s.description) for s in program.temporaries]
    return LoweredKernel([*init, *setup], first, steps, buffers + lowering.buffers)


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


# Multiply-adds per fused row loop from which one sample shares the rows among threads: below,
# a parallel region's start (a few microseconds) costs more than it saves.
PARALLEL_MIN_WORK = 1 << 15


@dataclass
class ParallelRows:
    """The fused row loops of one sample that are worth threads, each as an ``@njit(parallel)``
    function (``_rows0``...) that ``unrolled_one`` calls: one parallel region per step, the
    weight rows split among the threads. ``unrolled`` keeps them serial, since it runs inside
    the batch's parallel loop and parallel regions do not nest on every threading layer."""

    arguments: list[str]  # what the functions may read, in the kernel's signature order
    sizes: dict[str, int]  # entries of each vector the products read
    layer: str
    sample: Sample  # how one sample's code is printed (spellings, low-precision weights)
    functions: list[dict[str, object]] = field(default_factory=list)
    calls: dict[int, str] = field(default_factory=dict)  # id of a RowProducts -> its call

    def add(self, statement: RowProducts) -> None:
        work = statement.loop.shape[0] * sum(self.sizes[p.right.name] for p in statement.products)
        used = reads(statement) | _scales(statement, self.sample)
        if work < PARALLEL_MIN_WORK or used & PARFOR_NAMES:  # a spec name Numba's parfor code binds: serial
            return
        arguments = [a for a in [self.layer, *self.arguments] if a in used]
        lines = row_loop_lines(statement, self.sample, self.sample.g.prange)
        # the same loop in the first layer and in the layer loop (a network's layers): one function
        same = next((f for f in self.functions if f["lines"] == lines and f["arguments"] == arguments), None)
        if same is None:
            same = {"name": f"_rows{len(self.functions)}", "arguments": arguments, "rows": statement.loop.shape[0],
                    "lines": lines}
            self.functions.append(same)
        self.calls[id(statement)] = f"{same['name']}({', '.join(arguments)})"

    def lines(self, statement: Statement, sample: Sample) -> list[str]:
        call = self.calls.get(id(statement))
        if call is None:
            return statement_lines(statement, sample)
        assert isinstance(statement, RowProducts)
        return [call, *copy_back_lines(statement, sample)]


def _scales(statement: RowProducts, sample: Sample) -> set[str]:
    """The row scales that the fused loop's low-precision weights read."""
    formats = {name: sample.weights[name] for name in statement.weights if name in sample.weights}
    return {fmt.scale_name(name) for name, fmt in formats.items() if fmt.scaled}


def _step_lines(step: StepCode, sample: Sample, rows: ParallelRows | None = None) -> list[str]:
    if rows is not None:
        return [line for s in step.statements for line in rows.lines(s, sample)]
    return [line for s in step.statements for line in statement_lines(s, sample)]


def _statements(lowered: LoweredKernel) -> list[Statement]:
    return [s for step in (*lowered.setup, *lowered.first, *lowered.steps) for s in step.statements]


def params_read(program: Program, lowered: LoweredKernel | None = None) -> tuple[list[str], list[str]]:
    """The arrays and scalars of ``kernel_params()`` that the kernel reads, in signature order
    (LISTA, for one, keeps ``A`` in the module for training but never reads it in a layer)."""
    read = {name for s in _statements(lowered or lower_kernel(program)) for name in reads(s)}
    arrays, scalars = kernel_param_names(program)
    return [a for a in arrays if a in read], [a for a in scalars if a in read]


def quantizable(program: Program, lowered: LoweredKernel | None = None) -> list[str]:
    """The array params read only as the weight rows of fused matrix-vector products: those
    ``unfoldgen export --weights-dtype`` stores in low precision (LISTA's W_x and W_y)."""
    statements = _statements(lowered or lower_kernel(program))
    fused = {name for s in statements if isinstance(s, RowProducts) for name in s.weights}
    other = {name for s in statements for name in reads_besides_weights(s)}
    arrays, _ = params_read(program, lowered)
    return [name for name in arrays if name in fused and name not in other]


def low_precision_params(program: Program, params: dict[str, np.ndarray],
                         weight_format: WeightFormat) -> tuple[dict[str, np.ndarray], list[str]]:
    """``params`` with the :func:`quantizable` weights among them stored in ``weight_format``
    (scales after their weights), and the names of those weights: what ``unfoldgen export
    --weights-dtype`` writes and the benchmark times. A kernel without such weights is refused."""
    names = [name for name in quantizable(program) if name in params]
    if not names:
        raise SpecError(f"'{program.name}' has no dense weights that its kernel reads row by row, so there is "
                        f"nothing to store in {weight_format.name}",
                        hint="--weights-dtype applies to matrix-vector weights such as LISTA's W_x and W_y")
    return weight_format.store(params, names), names


def emit_numba_kernel(program: Program, folded: Mapping[str, np.ndarray] | None = None,
                      weights_dtype: str | None = None) -> str:
    """The kernel; ``folded`` values (names from :func:`foldable`) become module constants;
    with ``weights_dtype`` (a :data:`WEIGHT_FORMATS` name) the :func:`quantizable` weights
    are read in that format."""
    folded = dict(folded or {})
    g = spelling(program)
    lowered = lower_kernel(program, g)
    outputs = [s for s in program.states if s.name in program.outputs]
    buffers = lowered.buffers
    weight_format = WEIGHT_FORMATS[weights_dtype] if weights_dtype else None
    weights = {name: weight_format for name in quantizable(program, lowered)} if weight_format else {}
    arrays, scalars = params_read(program, lowered)
    array_params = _array_params(program, [a for a in arrays if a not in folded], weights)
    arrays = [a["name"] for a in array_params]
    scalars = [a for a in scalars if a not in folded]
    inputs = list(program.inputs)
    signature = arrays + scalars + inputs + [o.name for o in outputs]
    k, b, batch = program.local("k"), program.local("b"), program.local("batch")  # the kernel's own locals
    per_sample = inputs + [o.name for o in outputs]
    # the parallel loop's parameters: Numba's generated code for prange reads np, range... there
    parallel = {name: around(name, set(signature) | PARFOR_NAMES) if name in PARFOR_NAMES else name for name in signature}

    def sample_call(spelled: Mapping[str, str]) -> str:
        """``unrolled``'s arguments for sample ``b`` of a batch, the names as ``spelled``."""
        return ", ".join([spelled.get(a, a) for a in arrays + scalars] + [f"{spelled.get(n, n)}[{b}]" for n in per_sample])

    sample_names = per_sample + [buffer.name for buffer in buffers]
    batched = BatchedLowering(sample_names, signature + [buffer.name for buffer in buffers], b, k, g,
                              dict(kernel_arrays(program))).lower(
        lowered.setup, lowered.first, lowered.steps)
    networks = _networks(program, g)
    one_sample = Sample(g=g, weights=weights)
    read_per_sample = {name for s in _statements(lowered) for name in reads(s)}
    sample_buffers = [buffer for buffer in buffers if buffer.name in read_per_sample]
    batch_buffers = [buffer for buffer in buffers if batched.uses_blas and buffer.name in _batch_reads(lowered)]
    sizes = {name: shape[0] for name, shape in [*program.inputs.items(), *((s.name, s.shape) for s in program.states),
                                                *((buffer.name, buffer.shape) for buffer in buffers)]}
    scratch_of = {s.scratch: s.loop.target for s in _statements(lowered) if isinstance(s, RowProducts) and s.scratch}
    rows = ParallelRows(signature + [buffer.name for buffer in sample_buffers], sizes, k, one_sample)
    for statement in _statements(lowered):
        if isinstance(statement, RowProducts):
            rows.add(statement)
    results = program.local("results")  # the outputs, batch first, while the batch-last path rebinds their names
    products = {s.helper for s in _statements(lowered) if isinstance(s, Product)}
    products |= batched.helpers if batched.uses_blas else set()
    plain_rows = {name for s in _statements(lowered) if isinstance(s, RowProducts) for name in s.weights} - set(weights)
    products |= {"dot"} if plain_rows else set()
    products |= {helper for network in program.networks for helper in network_products(network)}
    products |= loop_helpers(program)
    return render(
        "kernel.py.j2",
        products=[helper for helper in PRODUCTS if helper in products],
        name=program.name, spec_hash=program.spec_hash, layers=program.layers,
        method_title=program.method_title,
        inputs=[{"name": n, "shape": shape_literal(s)} for n, s in program.inputs.items()],
        outputs=[{"name": o.name, "shape": shape_literal(o.shape)} for o in outputs],
        array_params=array_params, scalar_params=scalars,
        weight_formats=[{"template": f.template, "name": f.name, "bits": f.bits_per_weight}
                        for f in {f.name: f for f in weights.values()}.values()],
        dequantize=[_dequantize_line(name, weight, g) for name, weight in weights.items()],
        folded=[{"name": name, "literal": folded_literal(value)} for name, value in folded.items()], signature=", ".join(signature),
        batch_call=sample_call({}), parallel_call=sample_call(parallel),
        parallel_signature=", ".join(parallel[name] for name in signature), parallel_source=parallel[inputs[0]],
        sample_flops=sample_flops(program),
        buffers=[_buffer(b, scratch_of=scratch_of) for b in sample_buffers],
        batch_buffers=[_buffer(b, batch, batch_last=batched.batch_last) for b in batch_buffers],
        results=results, batch_last_inputs=[_batch_last(name, shape, g) for name, shape in program.inputs.items()],
        batch_last_outputs=[_buffer(Buffer(o.name, o.shape, ""), batch, batch_last=True) for o in outputs],
        batch_last_results=[f"{results}[{i}][:] = {_moved(o.name, o.shape, g, back=True)}"
                            for i, o in enumerate(outputs)],
        setup=[_code(step, one_sample) for step in lowered.setup], steps=[_code(step, one_sample) for step in lowered.steps],
        first=[_code(step, one_sample) for step in lowered.first],
        zero_start=_zero_start(program) if lowered.first else "",
        parallel_rows=rows.functions,
        setup_one=[_code(step, one_sample, rows) for step in lowered.setup],
        first_one=[_code(step, one_sample, rows) for step in lowered.first],
        steps_one=[_code(step, one_sample, rows) for step in lowered.steps],
        batched=batched, blas_min_batch=BLAS_MIN_BATCH, layer_index=k, sample_index=b, batch=batch,
        split=batched.uses_blas and not weights,  # low-precision weights: one float copy per call, not per share
        used=used_operators(program), prox_helpers=[h.template for h in prox_helpers(program)], linear_templates=linear_templates(program), support=program.support,
        networks=networks,
        proxes=[{"name": p.function_name, "args": argument_names(p), "definition": prox_definition(p),
                 "elementwise": p.elementwise, "lines": _prox_lines(p, g),
                 "workspace": list(SVD_WORKSPACE) if needs_svd_workspace(p) else []} for p in program.proxes],
        g=g,
    )


def _zero_start(program: Program) -> str:
    """The first layer's comment: which states start at zero."""
    names = sorted(starting_at_zero(program))
    if len(names) == 1:
        return f"the first layer on its own: {names[0]} starts at zero, so the terms that multiply it drop out"
    states = f"{', '.join(names[:-1])} and {names[-1]}"
    return f"the first layer on its own: {states} start at zero, so the terms that multiply them drop out"


def _code(step: StepCode, sample: Sample, rows: ParallelRows | None = None) -> dict[str, object]:
    return {"comment": step.comment, "lines": _step_lines(step, sample, rows)}


def _batch_last(name: str, shape: tuple[int, ...], g: Spelling) -> str:
    """An input with its batch axis moved last (a contiguous copy): ``y = np.ascontiguousarray(y.T)``."""
    return f"{name} = {g.np}.ascontiguousarray({_moved(name, shape, g)})"


def _moved(name: str, shape: tuple[int, ...], g: Spelling, back: bool = False) -> str:
    """``name`` with its batch axis moved last (or ``back`` first): a transpose for vectors."""
    if len(shape) == 1:
        return f"{name}.T"
    return f"{g.np}.moveaxis({name}, -1, 0)" if back else f"{g.np}.moveaxis({name}, 0, -1)"


def _buffer(buffer: Buffer, batch: str | None = None, scratch_of: Mapping[str, str] | None = None,
            batch_last: bool = False) -> dict[str, str]:
    """A buffer's allocation: per sample, a product's buffer that a fused row loop reuses as its
    scratch says so; over a batch, with the batch axis first or last."""
    entries = ", ".join(map(str, buffer.shape))
    shape = (f"({entries}, {batch})" if batch_last else f"({batch}, {entries})") if batch else shape_literal(buffer.shape)
    target = (scratch_of or {}).get(buffer.name)
    comment = f"the new {target}, row by row (the products read {target})" if target else buffer.comment
    return {"name": buffer.name, "shape": shape, "comment": comment}


def _dequantize_line(name: str, weight: WeightFormat, g: Spelling) -> str:
    """The batched path's float copy of a low-precision weight, made once per call for BLAS."""
    arguments = [name, *([weight.scale_name(name)] if weight.scaled else []), g.dtype]
    return f"{name} = {g.of(weight.dequantize_helper)}({', '.join(arguments)})"


def _array_params(program: Program, names: list[str], weights: Mapping[str, WeightFormat]) -> list[dict[str, str]]:
    """The kernel's array params with their shapes and, for low-precision weights, the dtype
    they are stored in; a weight's row scales follow it."""
    params = []
    shapes = dict(kernel_arrays(program))
    for param in array_params_with_shapes(program, names):
        weight = weights.get(param["name"])
        params.append({**param, "stored": weight.stored if weight else ""})
        if weight and weight.scaled:
            shape = shapes[param["name"]][:-1]
            params.append({"name": weight.scale_name(param["name"]), "shape": shape_literal(shape), "stored": ""})
    return params


def _batch_reads(lowered: LoweredKernel) -> set[str]:
    return {name for s in unfused(_statements(lowered)) for name in reads(s)}


LOW_PRECISION = {f"numba_{name}": name for name in WEIGHT_FORMATS}  # benchmark variants: the kernel with stored weights


def runners(load: Callable[[str], ModuleType], folder: Path, params: dict[str, Any],
            variant: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The kernel's ``solve_one`` (one sample) and ``solve`` (a batch), for the benchmark; a
    low-precision variant runs ``kernel_<format>.py`` with ``params_<format>.npz`` (written by
    the benchmark's workspace, which says in ``kernel_<format>.missing`` why it could not)."""
    import os

    import numba

    numba.set_num_threads(int(os.environ.get("NUMBA_NUM_THREADS") or os.cpu_count() or 1))  # bench sets it
    stem = f"kernel_{LOW_PRECISION[variant]}" if variant in LOW_PRECISION else "kernel"
    if (folder / f"{stem}.missing").exists():
        raise RuntimeError((folder / f"{stem}.missing").read_text())
    if variant in LOW_PRECISION:
        params = dict(np.load(folder / f"params_{LOW_PRECISION[variant]}.npz"))
    kernel = load(stem)
    return (lambda one: kernel.solve_one(params, **one)), (lambda batch: kernel.solve(params, **batch))
