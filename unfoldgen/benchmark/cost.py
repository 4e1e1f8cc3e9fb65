"""What one sample costs: its FLOPs (:mod:`unfoldgen.ir.cost`) and the bytes it reads and writes."""

from __future__ import annotations

import math
from dataclasses import dataclass

from unfoldgen.backends.numba_kernel import lower_kernel
from unfoldgen.ir.cost import sample_flops
from unfoldgen.ir.program import Program


@dataclass(frozen=True)
class SampleCost:
    flops: int  # per sample, all layers
    parameter_bytes: int  # of the params given (those the kernel reads), in the given dtype
    working_bytes: int  # inputs, outputs and buffers of one sample


def sample_cost(program: Program, params: dict[str, object], itemsize: int) -> SampleCost:
    parameter_bytes = sum(math.prod(getattr(v, "shape", ())) * itemsize for v in params.values())
    outputs = [s.shape for s in program.states if s.name in program.outputs]
    buffers = [b.shape for b in lower_kernel(program).buffers]
    shapes = [*program.inputs.values(), *outputs, *buffers]
    return SampleCost(sample_flops(program), int(parameter_bytes), sum(math.prod(s) for s in shapes) * itemsize)
