"""The Numba kernel's statements as typed nodes, printed for one sample or inside a loop over the
batch.

The lowering (``numba_lowering``) builds these; the per-sample kernel prints them as they are,
and the batched path (``numba_batched``) reads them to find the BLAS products and prints the
rest with the sample index: what an array is (per sample or shared, per layer, transposed) is
recorded in a :class:`Ref` when it is created, never recovered from printed code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from unfoldgen.backends.hygiene import CANONICAL, Spelling
from unfoldgen.backends.weights import WeightFormat

PRODUCTS = ("dot", "matvec", "matvec_t", "matmat", "matmat_nt", "add_shifted", "pad_flat")  # loop helpers of templates/numba_products.py.j2


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
    """Printed scalar code and the names it reads (params, parameters, ``k``); ``indexed``:
    it reads an entry of an array (a parameter per layer, ``step[k]``), not only locals."""

    text: str
    names: frozenset[str]
    indexed: bool = False


Fragment = str | Ref | Scalar
Code = tuple[Fragment, ...]


@dataclass(frozen=True)
class Sample:
    """How per-sample arrays are printed: as they are (one sample), or with ``index`` first
    (inside a loop over the batch, where those arrays have a leading batch axis)."""

    index: str | None = None
    arrays: frozenset[str] = frozenset()
    g: Spelling = field(default=CANONICAL, compare=False)  # the helpers' and builtins' spellings
    weights: Mapping[str, WeightFormat] = field(default_factory=dict, compare=False)  # low-precision weights
    batch_last: bool = False  # the batch axis is the arrays' last (``x[i, b]``), not their first

    def dot(self, product: Product, index: str) -> Code:
        """Entry ``index`` of a fused product: the dot of its weight row with its vector, by
        the helper of the weight's format (times the row's scale where it has one)."""
        row = Ref(product.left.name, product.left.layer, (index,))
        weight = self.weights.get(product.left.name)
        call: Code = (f"{self.g.of(weight.dot if weight else 'dot')}(", row, ", ", product.right, ")")
        if weight is None or not weight.scaled:
            return call
        return (*call, " * ", Ref(weight.scale_name(product.left.name), product.left.layer, (index,)))

    def ref(self, ref: Ref) -> str:
        batched = [self.index] if self.index is not None and ref.name in self.arrays else []
        indices = [] if self.batch_last else list(batched)
        indices += [ref.layer] if ref.layer is not None else []
        indices += list(ref.subscript or ())
        indices += batched if self.batch_last else []
        text = f"{ref.name}[{', '.join(indices)}]" if indices else ref.name
        return f"{text}.T" if ref.transposed else text

    def batch_last_lines(self, statement: Statement) -> list[str]:
        """A loop, fill or copy over a batch whose axis is last: a loop runs over the batch
        innermost (contiguous), fills and copies take the whole arrays."""
        if not isinstance(statement, Loop):
            return statement_lines(statement, Sample(g=self.g))
        assert self.index is not None
        loops = [*zip(statement.indices, map(str, statement.shape), strict=True),
                 (self.index, f"{statement.target}.shape[{len(statement.shape)}]")]
        lines = [f"{'    ' * depth}for {index} in {self.g.range}({size}):" for depth, (index, size) in enumerate(loops)]
        target = self.ref(Ref(statement.target, subscript=statement.indices))
        return [*statement.invariant_lines(), *lines, f"{'    ' * len(loops)}{target} = {self.code(statement.value)}"]

    def code(self, code: Code) -> str:
        return "".join(self.ref(f) if isinstance(f, Ref) else f.text if isinstance(f, Scalar) else f for f in code)


ONE_SAMPLE = Sample()


@dataclass(frozen=True)
class Loop:
    """``target[i, j] = value`` over the target's shape, fused: one pass, no temporaries.
    ``invariants``: locals bound before the loop to the scalars it reads from arrays (a
    layer's step ``dual_step[k]``), which ``value`` reads by name: LLVM cannot tell that the
    loop's stores leave such an entry unchanged, so it would load it again for every element
    and not vectorise the loop (three of inpaint_tv's loops ran 2.3x slower that way)."""

    target: str
    value: Code
    shape: tuple[int, ...]
    indices: tuple[str, ...]
    invariants: tuple[tuple[str, Scalar], ...] = ()

    def invariant_lines(self) -> list[str]:
        return [f"{name} = {scalar.text}" for name, scalar in self.invariants]


@dataclass(frozen=True)
class Copy:
    """``target[:] = source``; with ``span`` (start, stop), ``source`` into
    ``target[start:stop]`` (a dense network's features: its inputs, one after another),
    flattened where ``flatten`` (a matrix)."""

    target: str
    source: Ref
    span: tuple[int, int] | None = None
    flatten: bool = False


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


@dataclass(frozen=True)
class RowProducts:
    """``loop`` with the ``matvec`` products it reads entry by entry computed inside it: entry
    ``i`` of ``W @ v`` is ``dot(W[i], v)``. One pass reads each weight row once, accumulates in
    registers and writes each entry once, and the rows can be shared among threads (one
    parallel region per step). When a product reads the loop's target (``x = f(W @ x)``), the
    rows go to ``scratch`` and are copied back after. Over a batch the products stay BLAS
    products into their buffers (``numba_batched`` reads ``products`` and ``loop``)."""

    products: tuple[Product, ...]
    loop: Loop
    scratch: str | None = None

    @property
    def statements(self) -> tuple[Statement, ...]:
        return (*self.products, self.loop)

    def fused_value(self, dot: Callable[[Product, str], Code]) -> Code:
        """The loop's value with each product's entry replaced by ``dot(product, index)`` (a
        dot of its weight row and vector: :meth:`Sample.dot`)."""
        index = self.loop.indices[0]
        by_out = {p.out.name: p for p in self.products}
        code: list[Fragment] = []
        for fragment in self.loop.value:
            product = by_out.get(fragment.name) if isinstance(fragment, Ref) else None
            code += [fragment] if product is None else list(dot(product, index))
        return tuple(code)

    @property
    def weights(self) -> set[str]:
        """The arrays whose rows the fused loop reads (its products' left factors)."""
        return {p.left.name for p in self.products}


Statement = Loop | Copy | Fill | Product | Call | RowProducts


def unfused(statements: list[Statement]) -> list[Statement]:
    """Fused row loops as their products and their loop (how a batch runs them: BLAS products)."""
    return [inner for s in statements for inner in (s.statements if isinstance(s, RowProducts) else (s,))]


def fuse_rows(statements: list[Statement]) -> list[Statement]:
    """Each ``Loop`` over a vector with the ``matvec`` products just before it that it reads
    only at its own index, as one :class:`RowProducts`."""
    fused: list[Statement] = []
    for statement in statements:
        if isinstance(statement, Loop) and len(statement.shape) == 1:
            products: list[Product] = []
            while fused and _fusable(fused[-1], statement, products):
                products.insert(0, fused.pop())  # type: ignore[arg-type]
            if products:
                statement = _row_products(tuple(products), statement)
        fused.append(statement)
    return fused


def _fusable(previous: Statement, loop: Loop, taken: list[Product]) -> bool:
    """A plain ``matvec`` into a whole vector that the loop reads only at its index, and that
    no product already taken reads."""
    if not (isinstance(previous, Product) and previous.helper == "matvec" and previous.out.layer is None
            and previous.out.subscript is None and not previous.left.transposed):
        return False
    name = previous.out.name
    if any(p.right.name == name for p in taken):
        return False
    refs = [f for f in loop.value if isinstance(f, Ref) and f.name == name]
    return bool(refs) and all(r.subscript == loop.indices and r.layer is None for r in refs)


def _row_products(products: tuple[Product, ...], loop: Loop) -> RowProducts:
    read_by_products = {name for p in products for name in p.right.reads() | p.left.reads()}
    if loop.target not in read_by_products:
        return RowProducts(products, loop)
    scratch = next(p.out.name for p in products if p.out.name != loop.target)
    return RowProducts(products, loop, scratch)


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
    if isinstance(statement, RowProducts):  # as one sample runs it: the products' buffers are not used
        names = {statement.loop.target} | ({statement.scratch} if statement.scratch else set())
        return names | _code_reads(statement.fused_value(ONE_SAMPLE.dot))
    return {name for arg in statement.args for name in _code_reads(arg)}


def reads_besides_weights(statement: Statement) -> set[str]:
    """What a statement reads other than the weight rows of its fused products (a weight read
    only that way can be stored in low precision: ``dot_<format>`` reads it)."""
    if not isinstance(statement, RowProducts):
        return reads(statement)
    outs = {p.out.name for p in statement.products}
    names = (_code_reads(statement.loop.value) - outs) | {statement.loop.target}
    return names | ({statement.scratch} if statement.scratch else set()) | {
        name for p in statement.products for name in p.right.reads()}


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
    if isinstance(statement, Copy) and statement.span is not None:
        start, stop = statement.span
        target = sample.ref(Ref(statement.target, subscript=(f"{start}:{stop}",)))
        flat = f".reshape({stop - start})" if statement.flatten else ""
        return [f"{target} = {sample.ref(statement.source)}{flat}"]
    if isinstance(statement, (Copy, Fill)):
        value = sample.ref(statement.source) if isinstance(statement, Copy) else statement.value
        return [f"{sample.ref(Ref(statement.target, subscript=(':',)))} = {value}"]
    if isinstance(statement, Product):
        arrays = (statement.left, statement.right, statement.out)
        return [f"{sample.g.of(statement.helper)}({', '.join(sample.ref(a) for a in arrays)})"]
    if isinstance(statement, Call):
        return [f"{sample.g.of(statement.function)}({', '.join(sample.code(a) for a in statement.args)})"]
    if isinstance(statement, RowProducts):
        return row_products_lines(statement, sample)
    lines = statement.invariant_lines()
    if _flattens(statement, sample):
        return lines + _flat_loop_lines(statement, sample)
    lines += [f"{'    ' * depth}for {index} in {sample.g.range}({size}):"
              for depth, (index, size) in enumerate(zip(statement.indices, statement.shape, strict=True))]
    target = sample.ref(Ref(statement.target, subscript=statement.indices))
    lines.append(f"{'    ' * len(statement.shape)}{target} = {sample.code(statement.value)}")
    return lines


def _flattens(loop: Loop, sample: Sample) -> bool:
    """Whether a loop over a matrix runs as one loop over its entries (``X.flat[i]``): one
    sample's loop whose every array is read at the loop's own indices, whole (not transposed,
    not one layer of a parameter), so all have the target's shape and C order. Nested, the
    inner loop of a 32-wide image ran mostly in LLVM's remainder code, not its vector body:
    inpaint_tv's elementwise loops took 3x longer."""
    refs = [f for f in loop.value if isinstance(f, Ref) and f.subscript is not None]
    return (len(loop.shape) > 1 and sample.index is None
            and all(r.subscript == loop.indices and r.layer is None and not r.transposed for r in refs))


def _flat_loop_lines(loop: Loop, sample: Sample) -> list[str]:
    index, size = loop.indices[0], math.prod(loop.shape)
    value = "".join(f"{f.name}.flat[{index}]" if isinstance(f, Ref) and f.subscript is not None
                    else sample.code((f,)) for f in loop.value)
    return [f"for {index} in {sample.g.range}({size}):", f"    {loop.target}.flat[{index}] = {value}"]


def row_products_lines(statement: RowProducts, sample: Sample = ONE_SAMPLE) -> list[str]:
    """The fused loop, writing the scratch (then copied) where the products read the target."""
    return row_loop_lines(statement, sample, sample.g.range) + copy_back_lines(statement, sample)


def row_loop_lines(statement: RowProducts, sample: Sample, loop_range: str) -> list[str]:
    """The fused loop alone; ``loop_range`` spells its range (``prange`` in a parallel function)."""
    loop = statement.loop
    index, size = loop.indices[0], loop.shape[0]
    value = sample.code(statement.fused_value(sample.dot))
    return [*loop.invariant_lines(), f"for {index} in {loop_range}({size}):",
            f"    {sample.ref(Ref(statement.scratch or loop.target, subscript=(index,)))} = {value}"]


def copy_back_lines(statement: RowProducts, sample: Sample) -> list[str]:
    if not statement.scratch:
        return []
    return statement_lines(Copy(statement.loop.target, Ref(statement.scratch)), sample)
