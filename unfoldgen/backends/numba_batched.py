"""The batched path of the Numba kernel: BLAS matrix products over the batch, parallel loops
for the rest.

Per sample, ``W @ x`` with a weight ``W`` shared by all samples is a matrix-vector product that
reads all of ``W`` to do two flops per element read: memory bound. Over a batch the same
products are one matrix-matrix product ``X @ W.T``, which BLAS runs near the machine's peak.
Numba reaches BLAS only through SciPy, which a numpy-and-numba deployment lacks, so the
batched path runs its layer loop in Python: each such product is a ``np.matmul`` (numpy's
own BLAS, on all threads), and each run of the other statements between two products is one
``@njit`` function looping over the samples ("parts"). Parts are serial on purpose: a
parallel loop between two BLAS calls fights BLAS's spinning threads for the cores and ran
10 to 100 times slower on two cores. A program with no such product keeps the per-sample
kernel for batches too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from unfoldgen.backends.hygiene import CANONICAL, Spelling
from unfoldgen.backends.numba_statements import (
    Product,
    Sample,
    Statement,
    reads,
    statement_lines,
    unfused,
)


@dataclass(frozen=True)
class StepCode:
    """One IR step: its math comment and its per-sample statements."""

    comment: str
    statements: list[Statement]


@dataclass
class Part:
    """Statements run for every sample by one compiled function."""

    name: str
    lines: list[str] = field(default_factory=list)
    reads: set[str] = field(default_factory=set)
    arguments: list[str] = field(default_factory=list)
    batch_source: str = ""  # a per-sample argument, whose first axis is the batch


@dataclass
class BatchedKernel:
    """The driver's lines before the layer loop, for the first layer when it runs on its own,
    and inside the loop, and the parts they call."""

    setup: list[str]
    first: list[str]
    layer: list[str]
    parts: list[Part]
    uses_blas: bool
    helpers: set[str]  # the product helpers its parts call


class BatchedLowering:
    """Splits per-sample statements into BLAS products and parallel parts.

    ``sample_names`` are the arrays with one value per sample (inputs, states, buffers): in a
    part they are indexed by the sample (``sample``, e.g. ``b``), ``x[i]`` becoming ``x[b, i]``.
    ``arguments`` are the names a part may read, in the order of the kernel's signature, after
    the layer index ``layer``.
    """

    def __init__(self, sample_names: list[str], arguments: list[str], sample: str, layer: str,
                 g: Spelling = CANONICAL) -> None:
        self.sample_names = set(sample_names)
        self.arguments = arguments
        self.layer = layer
        self.parts: list[Part] = []
        self.in_part = Sample(sample, frozenset(sample_names), g)
        self.g = g
        self.uses_blas = False
        self.helpers: set[str] = set()  # the product helpers the parts call

    def lower(self, setup: list[StepCode], first: list[StepCode], layer: list[StepCode]) -> BatchedKernel:
        return BatchedKernel(self.driver(setup), self.driver(first), self.driver(layer), self.parts, self.uses_blas,
                             self.helpers)

    def driver(self, steps: list[StepCode]) -> list[str]:
        lines: list[str] = []
        part: Part | None = None
        for step in steps:
            lines.append(f"# {step.comment}" if step.comment else "")
            for statement in unfused(step.statements):
                product = self.blas_product(statement)
                if product is not None:
                    self.close(part, lines)
                    part = None
                    lines.append(product)
                    continue
                if part is None:
                    part = Part(f"_part{len(self.parts)}")
                    self.parts.append(part)
                if step.comment and f"# {step.comment}" not in part.lines:
                    part.lines.append(f"# {step.comment}")
                part.lines += statement_lines(statement, self.in_part)
                if isinstance(statement, Product):
                    self.helpers.add(statement.helper)
                part.reads |= reads(statement)
        self.close(part, lines)
        return [line for line in lines if line]

    def close(self, part: Part | None, lines: list[str]) -> None:
        """Finish a part: its arguments are the names its statements read."""
        if part is None:
            return
        part.arguments = [name for name in [self.layer, *self.arguments] if name in part.reads]
        part.batch_source = next(name for name in part.arguments if name in self.sample_names)
        lines.append(f"{part.name}({', '.join(part.arguments)})")

    def blas_product(self, statement: Statement) -> str | None:
        """``np.matmul`` over the batch for ``out = W @ v`` with ``W`` shared by the samples."""
        if not (isinstance(statement, Product) and statement.helper in ("matvec", "matvec_t")):
            return None
        left, right, out = statement.left, statement.right, statement.out
        if left.name in self.sample_names or not {right.name, out.name} <= self.sample_names:
            return None
        self.uses_blas = True
        shared = Sample()
        weight = shared.ref(left) + (".T" if statement.helper == "matvec" else "")
        return f"{self.g.np}.matmul({shared.ref(right)}, {weight}, out={shared.ref(out)})"
