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

import re
from dataclasses import dataclass, field

from unfoldgen.backends.common import names_in
from unfoldgen.backends.numba_lowering import Statement, statement_lines

SAMPLE = "b"  # the sample index inside parts (a reserved name)
_PRODUCT = re.compile(r"^(?P<helper>matvec|matvec_t)\((?P<left>[A-Za-z]\w*(\[\w+\])?), (?P<right>\w+), (?P<out>\w+)\)$")


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
    arguments: list[str] = field(default_factory=list)
    batch_source: str = ""  # a per-sample argument, whose first axis is the batch


@dataclass
class BatchedKernel:
    """The driver's lines before and inside the layer loop, and the parts they call."""

    setup: list[str]
    layer: list[str]
    parts: list[Part]

    @property
    def uses_blas(self) -> bool:
        return any(line.startswith("np.matmul(") for line in self.layer)


class BatchedLowering:
    """Splits per-sample statements into BLAS products and parallel parts.

    ``sample_names`` are the arrays with one value per sample (inputs, states, buffers): in a
    part they are indexed by the sample, ``x[i]`` becoming ``x[b, i]``. ``arguments`` are the
    names a part may read, in the order of the kernel's signature.
    """

    def __init__(self, sample_names: list[str], arguments: list[str]) -> None:
        self.sample_names = set(sample_names)
        self.arguments = arguments
        self.parts: list[Part] = []
        self.sample_pattern = re.compile(r"\b(" + "|".join(sorted(sample_names, key=len, reverse=True)) + r")\b(\[)?")

    def lower(self, setup: list[StepCode], layer: list[StepCode]) -> BatchedKernel:
        return BatchedKernel(self.driver(setup), self.driver(layer), self.parts)

    def driver(self, steps: list[StepCode]) -> list[str]:
        lines: list[str] = []
        part: Part | None = None
        for step in steps:
            lines.append(f"# {step.comment}" if step.comment else "")
            for statement in step.statements:
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
                part.lines += [self.per_sample(line) for line in statement_lines(statement)]
        self.close(part, lines)
        return [line for line in lines if line]

    def close(self, part: Part | None, lines: list[str]) -> None:
        """Finish a part: its arguments are the names its lines read."""
        if part is None:
            return
        used = names_in(part.lines)
        part.arguments = [name for name in ["k", *self.arguments] if name in used]
        part.batch_source = next(name for name in part.arguments if name in self.sample_names)
        lines.append(f"{part.name}({', '.join(part.arguments)})")

    def blas_product(self, statement: Statement) -> str | None:
        """``np.matmul`` over the batch for ``out = W @ v`` with ``W`` shared by the samples."""
        match = _PRODUCT.match(statement.value) if statement.kind == "call" else None
        if match is None:
            return None
        left, right, out = match["left"], match["right"], match["out"]
        if left.split("[")[0] in self.sample_names or not {right, out} <= self.sample_names:
            return None
        weight = f"{left}.T" if match["helper"] == "matvec" else left
        return f"np.matmul({right}, {weight}, out={out})"

    def per_sample(self, line: str) -> str:
        def index(match: re.Match[str]) -> str:
            return f"{match[1]}[{SAMPLE}, " if match[2] else f"{match[1]}[{SAMPLE}]"

        return self.sample_pattern.sub(index, line)
