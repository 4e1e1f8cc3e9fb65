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
10 to 100 times slower on two cores; a large batch is split instead into one share of the
samples per thread, each with one BLAS thread (``_solve_blas_shares`` in the kernel
template). A program with no such product keeps the per-sample kernel for batches too.

When every other statement is elementwise (loops over entries, copies, fills) and every
shared weight is large (:data:`BATCH_LAST_MIN_SIDE`), the batch goes on the *last* axis: a
state is ``(n, batch)``, each product is ``W @ X`` with the weights first, and the parts loop
over the batch innermost, contiguous. Measured with OpenBLAS on the benchmark's 2-core AMD
EPYC at batch 256: LISTA (500 x 250 and 500 x 500 weights) 4-5% and LISTA-CP (250 x 500)
6-7% faster at 1 and 2 threads; but ISTA, FISTA and ADMM (50 x 100 to 200 x 200) 3-26% slower
at 2 threads, so small weights keep the batch first, as do programs with helpers that take a
whole sample (convolutions, networks, SVDs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from unfoldgen.backends.hygiene import CANONICAL, Spelling
from unfoldgen.backends.numba_statements import (
    Copy,
    Fill,
    Loop,
    Product,
    Ref,
    Sample,
    Statement,
    reads,
    statement_lines,
    unfused,
)

# The least rows and columns of every shared weight for the batch-last layout (measured above).
BATCH_LAST_MIN_SIDE = 250


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
    batch_last: bool  # states are (entries..., batch) and products W @ X; else (batch, entries...)


class BatchedLowering:
    """Splits per-sample statements into BLAS products and parallel parts.

    ``sample_names`` are the arrays with one value per sample (inputs, states, buffers): in a
    part they are indexed by the sample (``sample``, e.g. ``b``), ``x[i]`` becoming ``x[b, i]``.
    ``arguments`` are the names a part may read, in the order of the kernel's signature, after
    the layer index ``layer``.
    """

    def __init__(self, sample_names: list[str], arguments: list[str], sample: str, layer: str,
                 g: Spelling = CANONICAL, shapes: Mapping[str, tuple[int, ...]] | None = None) -> None:
        self.sample_names = set(sample_names)
        self.shapes = shapes or {}  # the shared arrays' shapes (a leading layer axis included)
        self.arguments = arguments
        self.layer = layer
        self.parts: list[Part] = []
        self.in_part = Sample(sample, frozenset(sample_names), g)
        self.g = g
        self.uses_blas = False
        self.batch_last = False
        self.helpers: set[str] = set()  # the product helpers the parts call

    def lower(self, setup: list[StepCode], first: list[StepCode], layer: list[StepCode]) -> BatchedKernel:
        statements = unfused([s for step in (*setup, *first, *layer) for s in step.statements])
        self.batch_last = all(self.large_weight(s) if self.shared_weight(s) else self.elementwise(s)
                              for s in statements)
        if self.batch_last:
            self.in_part = Sample(self.in_part.index, self.in_part.arrays, self.g, batch_last=True)
        return BatchedKernel(self.driver(setup), self.driver(first), self.driver(layer), self.parts, self.uses_blas,
                             self.helpers, self.batch_last)

    def large_weight(self, statement: Statement) -> bool:
        assert isinstance(statement, Product)
        return min(self.shapes.get(statement.left.name, (0,))[-2:]) >= BATCH_LAST_MIN_SIDE

    def elementwise(self, statement: Statement) -> bool:
        """A statement the batch-last layout runs entry by entry: a loop whose per-sample arrays
        are read at an entry, a fill, or a copy of one sample's array."""
        if isinstance(statement, Fill):
            return True
        if isinstance(statement, Copy):  # a whole sample's array (a span flattens it: batch first)
            return statement.source.name in self.sample_names and statement.source.layer is None and statement.span is None
        if not isinstance(statement, Loop):
            return False
        refs = [f for f in statement.value if isinstance(f, Ref) and f.name in self.sample_names]
        return all(ref.subscript is not None and ref.layer is None for ref in refs)

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
                    part = Part(f"_part{len(self.parts)}")  # numbered in order; a repeat is dropped at close
                    self.parts.append(part)
                if step.comment and f"# {step.comment}" not in part.lines:
                    part.lines.append(f"# {step.comment}")
                part.lines += (self.in_part.batch_last_lines(statement) if self.batch_last
                               else statement_lines(statement, self.in_part))
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
        same = next(p for p in self.parts if p.lines == part.lines and p.arguments == part.arguments)
        if same is not part:  # the same statements in the first layer and in the layer loop: one function
            self.parts.remove(part)
        lines.append(f"{same.name}({', '.join(same.arguments)})")

    def shared_weight(self, statement: Statement) -> bool:
        """``out = W @ v`` (or ``W.T @ v``) with ``W`` shared by the samples: one BLAS product."""
        if not (isinstance(statement, Product) and statement.helper in ("matvec", "matvec_t")):
            return False
        left, right, out = statement.left, statement.right, statement.out
        return left.name not in self.sample_names and {right.name, out.name} <= self.sample_names

    def blas_product(self, statement: Statement) -> str | None:
        """``np.matmul`` over the batch for a :meth:`shared_weight` product: ``W @ X`` with the
        batch last, ``X @ W.T`` with it first."""
        if not self.shared_weight(statement):
            return None
        assert isinstance(statement, Product)
        self.uses_blas = True
        shared = Sample()
        left, right, out = (shared.ref(a) for a in (statement.left, statement.right, statement.out))
        if self.batch_last:
            return f"{self.g.np}.matmul({left}{'.T' if statement.helper == 'matvec_t' else ''}, {right}, out={out})"
        return f"{self.g.np}.matmul({right}, {left}{'.T' if statement.helper == 'matvec' else ''}, out={out})"
