"""The Numba kernel's statements as typed nodes, printed for one sample or inside a loop over the
batch.

The lowering (``numba_lowering``) builds these; the per-sample kernel prints them as they are,
and the batched path (``numba_batched``) reads them to find the BLAS products and prints the
rest with the sample index: what an array is (per sample or shared, per layer, transposed) is
recorded in a :class:`Ref` when it is created, never recovered from printed code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from unfoldgen.backends.hygiene import CANONICAL, Spelling

PRODUCTS = ("matvec", "matvec_t", "matmat", "matmat_nt")  # loop helpers of templates/numba_products.py.j2


@dataclass(frozen=True)
class Ref:
    """An array the kernel names: ``name``, indexed by ``layer`` (``k`` or ``0``) where it holds
    one value per layer, then by ``subscript`` (None: the whole array)."""

    name: str
    layer: str | None = None
    subscript: tuple[str, ...] | None = None
    transposed: bool = False

    def reads(self) -> set[str]:
        """The array, and the layer index where it is a variable (``k``, not ``0``)."""
        return {self.name} | ({self.layer} if self.layer is not None and not self.layer.isdigit() else set())


@dataclass(frozen=True)
class Scalar:
    """Printed scalar code and the names it reads (params, parameters, ``k``)."""

    text: str
    names: frozenset[str]


Fragment = str | Ref | Scalar
Code = tuple[Fragment, ...]


@dataclass(frozen=True)
class Sample:
    """How per-sample arrays are printed: as they are (one sample), or with ``index`` first
    (inside a loop over the batch, where those arrays have a leading batch axis)."""

    index: str | None = None
    arrays: frozenset[str] = frozenset()
    g: Spelling = field(default=CANONICAL, compare=False)  # the helpers' and builtins' spellings

    def ref(self, ref: Ref) -> str:
        indices = [self.index] if self.index is not None and ref.name in self.arrays else []
        indices += [ref.layer] if ref.layer is not None else []
        indices += list(ref.subscript or ())
        text = f"{ref.name}[{', '.join(indices)}]" if indices else ref.name
        return f"{text}.T" if ref.transposed else text

    def code(self, code: Code) -> str:
        return "".join(self.ref(f) if isinstance(f, Ref) else f.text if isinstance(f, Scalar) else f for f in code)


ONE_SAMPLE = Sample()


@dataclass(frozen=True)
class Loop:
    """``target[i, j] = value`` over the target's shape, fused: one pass, no temporaries."""

    target: str
    value: Code
    shape: tuple[int, ...]
    indices: tuple[str, ...]


@dataclass(frozen=True)
class Copy:
    target: str
    source: Ref


@dataclass(frozen=True)
class Fill:
    target: str
    value: str


@dataclass(frozen=True)
class Product:
    """``out = left @ right`` by a loop helper; ``left`` and ``right`` are arrays (``right`` a
    vector for ``matvec``/``matvec_t``)."""

    helper: str
    left: Ref
    right: Ref
    out: Ref


@dataclass(frozen=True)
class Call:
    """A helper applied in place: ``function(args...)``."""

    function: str
    args: tuple[Code, ...]


Statement = Loop | Copy | Fill | Product | Call


def product(left: Ref, right: Ref, out: Ref, vector: bool) -> Product:
    """The loop helper that computes ``out = left @ right`` (``.T``: a transposed array)."""
    if vector:
        helper = "matvec_t" if left.transposed else "matvec"
        return Product(helper, Ref(left.name, left.layer), right, out)
    if right.transposed:
        return Product("matmat_nt", left, Ref(right.name, right.layer), out)
    return Product("matmat", left, right, out)


def reads(statement: Statement) -> set[str]:
    """Every name a statement reads or writes: what a compiled part must be passed."""
    if isinstance(statement, Loop):
        return {statement.target} | _code_reads(statement.value)
    if isinstance(statement, Copy):
        return {statement.target} | statement.source.reads()
    if isinstance(statement, Fill):
        return {statement.target}
    if isinstance(statement, Product):
        return statement.left.reads() | statement.right.reads() | statement.out.reads()
    return {name for arg in statement.args for name in _code_reads(arg)}


def _code_reads(code: Code) -> set[str]:
    names: set[str] = set()
    for fragment in code:
        if isinstance(fragment, Ref):
            names |= fragment.reads()
        elif isinstance(fragment, Scalar):
            names |= fragment.names
    return names


def statement_lines(statement: Statement, sample: Sample = ONE_SAMPLE) -> list[str]:
    """The source lines of one statement."""
    if isinstance(statement, (Copy, Fill)):
        value = sample.ref(statement.source) if isinstance(statement, Copy) else statement.value
        return [f"{sample.ref(Ref(statement.target, subscript=(':',)))} = {value}"]
    if isinstance(statement, Product):
        arrays = (statement.left, statement.right, statement.out)
        return [f"{sample.g.of(statement.helper)}({', '.join(sample.ref(a) for a in arrays)})"]
    if isinstance(statement, Call):
        return [f"{sample.g.of(statement.function)}({', '.join(sample.code(a) for a in statement.args)})"]
    lines = [f"{'    ' * depth}for {index} in {sample.g.range}({size}):"
             for depth, (index, size) in enumerate(zip(statement.indices, statement.shape, strict=True))]
    target = sample.ref(Ref(statement.target, subscript=statement.indices))
    lines.append(f"{'    ' * len(statement.shape)}{target} = {sample.code(statement.value)}")
    return lines
