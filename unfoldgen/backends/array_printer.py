"""Print IR expressions as batched array code: one printer, with PyTorch and NumPy siblings.

Per-sample tensors (inputs, states, temporaries) carry a leading batch dimension: a vector of
one sample is ``[B, n]``, a matrix ``[B, m, n]``. Constants and parameters have none. A
product ``C @ v`` of a constant and a batched vector is therefore printed ``v @ C.mT`` (and
``C.T @ v`` as ``v @ C``), so no reshapes appear in the common cases.

:class:`ArrayPrinter` dispatches on SymPy's ``_print_<Class>`` (scalars through
:class:`~unfoldgen.backends.scalars.ScalarPrinter`, matrices here, returning :class:`Code`).
:class:`TorchPrinter` and :class:`NumpyPrinter` differ only in their :class:`ArrayModule`
table; how each name is spelled comes from a :class:`~unfoldgen.backends.resolver.NameResolver`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import sympy as sp

from unfoldgen.backends.common import shape_literal
from unfoldgen.backends.hygiene import Spelling
from unfoldgen.backends.resolver import NameResolver, Storage, prox_argument_name
from unfoldgen.backends.scalars import ScalarPrinter
from unfoldgen.ir.program import ApplyNetwork, Assign, Program, Step
from unfoldgen.operators.linear import Materialized, TableMatrix, is_operator, operator_of
from unfoldgen.operators.linear.conv import DftPeak, DftPower
from unfoldgen.operators.linear.mask import LargestMagnitude
from unfoldgen.symbolic.nodes import (
    AnalyticWeight,
    EntryMax,
    LowRankFactor,
    Map,
    SpectralNorm,
    is_negative_term,
)
from unfoldgen.symbolic.prox import ProxOperator

BATCHED_ROLES = ("input", "state", "temporary")


@dataclass(frozen=True)
class Code:
    text: str
    batched: bool
    atomic: bool

    def operand(self) -> str:
        return self.text if self.atomic else f"({self.text})"


@dataclass(frozen=True)
class ArrayModule:
    """What differs between array libraries: the callables and a few idioms, as templates.

    ``context`` are the locals of the emitted function that :attr:`eye` reads."""

    name: str
    functions: dict[str, str]
    transpose: str  # of an unbatched matrix
    transpose_batched: str
    eye: str  # {size}
    context: tuple[str, ...]
    zeros: str  # {batch}: the input whose batch size it takes, {sizes}: the sample's shape
    repeat: str  # {code}, {batch}, {sizes}
    column_product: str  # {left} @ {vector} per sample, both batched
    spectral_norm: str


def _functions(module: str, extra: dict[str, str]) -> dict[str, str]:
    names = {"Abs": "abs", "sqrt": "sqrt", "exp": "exp", "log": "log", "Max": "maximum", "Min": "minimum",
             "sign": "sign", "tanh": "tanh", "cosh": "cosh", "sinh": "sinh", "cos": "cos", "sin": "sin"}
    return {kind: f"{{{module}}}.{name}" for kind, name in names.items()} | extra


TORCH = ArrayModule(
    name="torch", functions=_functions("torch", {"sigmoid": "{torch}.sigmoid",
                                                  # torch's softplus returns t itself past its threshold: at 40 that is exact in float64
                                                  "softplus": "{torch}.nn.functional.softplus({x}, threshold=40.0)"}), transpose="{code}.mT", transpose_batched="{code}.mT",
    eye="{torch}.eye({size}, dtype={dtype}, device={device})", context=("dtype", "device"),
    zeros="{torch}.zeros({batch}.shape[0], {sizes}, dtype={batch}.dtype, device={batch}.device)",
    repeat="({code}).expand({batch}.shape[0], *{shape}).clone()",
    column_product="({left} @ {vector}.unsqueeze(-1)).squeeze(-1)",
    spectral_norm="{torch}.linalg.matrix_norm({code}, ord=2)",
)
NUMPY = ArrayModule(
    name="np", functions=_functions("np", {"sigmoid": "{np}.exp(-{np}.logaddexp(0.0, -({x})))",
                                            "softplus": "{np}.logaddexp(0.0, {x})"}), transpose="{code}.T", transpose_batched="{code}.swapaxes(-1, -2)",
    eye="{np}.eye({size}, dtype={dtype})", context=("dtype",),
    zeros="{np}.zeros(({batch}.shape[0], {sizes}), {dtype})",
    repeat="{np}.broadcast_to({code}, ({batch}.shape[0], {sizes})).copy()",
    column_product="({left} @ {vector}[..., None])[..., 0]",
    spectral_norm="{np}.linalg.norm({code}, 2)",
)


class ArrayPrinter(ScalarPrinter):
    module: ClassVar[ArrayModule]
    storage: ClassVar[Storage]

    def __init__(self, program: Program, g: Spelling, names: Callable[[sp.Symbol], str] | None = None) -> None:
        self.resolver = NameResolver(program, self.storage, g)
        super().__init__(names or self.resolver, g)
        self.program = program
        self.k = self.resolver.k
        self.context_read: set[str] = set()  # the emitted function's own locals that printed code reads
        self.batched_extra: set[str] = set()  # a lambda's argument that stands for a batch (dense_matrix)

    def table(self) -> dict[str, str]:
        return self.module.functions

    def where(self, condition: str, then: str, otherwise: str) -> str:
        return f"{self.g[self.module.name]}.where({condition}, {then}, {otherwise})"

    # -- batch idioms -----------------------------------------------------------------------
    def transpose(self, code: Code) -> str:
        return (self.module.transpose_batched if code.batched else self.module.transpose).format(code=code.operand())

    def zeros_like_batch(self, batch_input: str, shape: tuple[int, ...]) -> str:
        """A zero state of per-sample ``shape`` for every sample of ``batch_input``."""
        return self.g.format(self.module.zeros, batch=batch_input, sizes=", ".join(map(str, shape)))

    def repeat_for_batch(self, code: str, batch_input: str, shape: tuple[int, ...]) -> str:
        """A per-sample value ``code`` (the same for every sample), one copy per sample."""
        return self.g.format(self.module.repeat, code=code, batch=batch_input, sizes=", ".join(map(str, shape)),
                             shape=shape_literal(shape))

    # -- dispatch ---------------------------------------------------------------------------
    def print(self, expr: sp.Basic) -> str:
        printed = self._print(expr)
        return printed.text if isinstance(printed, Code) else printed

    def matrix(self, expr: sp.MatrixExpr) -> Code:
        code = self._print(expr)
        assert isinstance(code, Code)
        return code

    def _print_SpectralNorm(self, expr: SpectralNorm) -> str:
        return self.g.format(self.module.spectral_norm, code=self.matrix(expr.matrix).text)

    def _print_Map(self, expr: Map) -> Code:
        """A function entry by entry: its body, with each variable bound to its operand's code."""
        codes = dict(zip(expr.function.variables, (self.matrix(a) for a in expr.arguments), strict=True))
        outer, compound = self.symbol, self.compound
        self.symbol = lambda s: codes[s].text if s in codes else outer(s)
        self.compound = compound | {v for v, code in codes.items() if not code.atomic}  # parenthesised as operands
        try:
            text = self.print(expr.function.expr)
        finally:
            self.symbol, self.compound = outer, compound
        return Code(text, any(c.batched for c in codes.values()), False)

    def _print_DftPeak(self, expr: DftPeak) -> str:
        kernel, rows, cols = expr.args
        sizes = (self.program.size(rows),) + ((self.program.size(cols),) if cols != 1 else ())
        return f"{self.g[self.module.name]}.fft.fftn({self.matrix(kernel).text}, s={shape_literal(sizes)}).__abs__().max()"

    def _print_Materialized(self, expr: Materialized) -> Code:
        """``dense_matrix(lambda basis: <the map applied to basis>, n)``: the map's matrix, formed
        from the unit vectors (a batch of them, as the map's code takes per-sample tensors)."""
        basis = sp.MatrixSymbol(self.program.local("basis"), expr.shape[0], 1)
        self.batched_extra.add(basis.name)
        applied = self.print(sp.expand(expr.matrix * basis))
        self.context_read.update(self.module.context)
        size = self.program.size(expr.shape[0])
        return Code(f"dense_matrix(lambda {basis.name}: {applied}, {size}, {self.g.dtype}, {self.g.device})", False, True)

    def _print_TableMatrix(self, expr: TableMatrix) -> Code:
        self.context_read.update(self.module.context)
        sizes = tuple(self.program.size(s) for s in expr.args)
        return Code(expr.torch_code(sizes, self.g.dtype, self.g.device), False, True)

    def _print_LargestMagnitude(self, expr: LargestMagnitude) -> str:
        return f"{self.matrix(expr.args[0]).operand()}.__abs__().max()"

    def _print_DftPower(self, expr: DftPower) -> Code:
        sizes = (self.program.size(expr.args[1]), self.program.size(expr.args[2]))
        fft = f"{self.g[self.module.name]}.fft.fftn({self.matrix(expr.kernel).text}, s={shape_literal(sizes)})"
        return Code(f"{fft}.__abs__() ** 2", False, False)

    def _print_EntryMax(self, expr: EntryMax) -> str:
        return f"{self.matrix(expr.matrix).operand()}.max()"

    def _print_MatrixSymbol(self, expr: sp.MatrixSymbol) -> Code:
        role = self.program.role(expr.name) if expr.name in self.resolver.roles else None
        return Code(self.symbol(expr), role in BATCHED_ROLES or expr.name in self.batched_extra, True)

    def _print_Transpose(self, expr: sp.Transpose) -> Code:
        inner = self.matrix(expr.arg)
        return Code(self.transpose(inner), inner.batched, True)

    def _print_Identity(self, expr: sp.Identity) -> Code:
        self.context_read.update(self.module.context)
        return Code(self.g.format(self.module.eye, size=self.program.size(expr.shape[0])), False, True)

    def _print_Inverse(self, expr: sp.Inverse) -> Code:
        inner = self.matrix(expr.arg)
        return Code(f"{self.g[self.module.name]}.linalg.inv({inner.text})", inner.batched, True)

    def _print_AnalyticWeight(self, expr: AnalyticWeight) -> Code:
        return Code(f"{self.g.analytic_weight}({self.matrix(expr.matrix).text})", False, True)

    def _print_LowRankFactor(self, expr: LowRankFactor) -> Code:
        inner = self.matrix(expr.matrix)
        return Code(f"{self.g.svd_factor}({inner.text}, {self.program.size(expr.rank)}, {expr.side})", inner.batched, True)

    def _print_MatAdd(self, expr: sp.MatAdd) -> Code:
        terms = sorted(expr.args, key=is_negative_term)
        first = self.matrix(terms[0])
        text, batched = first.text, first.batched
        for term in terms[1:]:
            negative = is_negative_term(term)
            code = self.matrix(-term if negative else term)  # a product binds tighter than '-'
            text += f" - {code.text}" if negative else f" + {code.text}"
            batched = batched or code.batched
        return Code(text, batched, False)

    def _print_MatMul(self, expr: sp.MatMul) -> Code:
        scalars = [a for a in expr.args if not isinstance(a, sp.MatrixExpr)]
        code = self.chain([a for a in expr.args if isinstance(a, sp.MatrixExpr)])
        if not scalars:
            return code
        coeff = sp.Mul(*scalars)
        if coeff.could_extract_minus_sign():
            inner = self.scaled(-coeff, code)
            return Code(f"-{inner.text}", inner.batched, False)
        return self.scaled(coeff, code)

    # -- steps ----------------------------------------------------------------------------
    def step(self, step: Step) -> str:
        """One step of the layer as one line."""
        target = step.target.name
        if isinstance(step, Assign):
            return f"{target} = {self.print(step.expr)}"
        if isinstance(step, ApplyNetwork):
            return f"{target} = {step.base.name} + {self.network_call(step)}"
        args = ", ".join([self.print(step.argument), *(self.print(v) for v in step.values)])
        if step.support is not None:
            return f"{target} = {self.g.soft_threshold_support}({args}, {self.g.SUPPORT}[{self.k}])"
        return f"{target} = {step.prox.function_name}({args})"

    def network_call(self, step: ApplyNetwork) -> str:
        raise NotImplementedError

    def scaled(self, coeff: sp.Expr, code: Code) -> Code:
        if coeff == 1:
            return code
        return Code(f"{self.atom(coeff)} * {code.operand()}", code.batched, False)

    def chain(self, factors: list[sp.MatrixExpr]) -> Code:
        """Right-associated product, so matrix-vector products never become matrix-matrix."""
        right = factors[-1]
        code = self.matrix(right)
        is_vector = right.shape[1] == 1
        for factor in reversed(factors[:-1]):
            if is_operator(factor):
                code = Code(self.operator_call(factor, code), code.batched, True)
                continue
            left = self.matrix(factor)
            if code.batched and is_vector and not left.batched:
                if isinstance(factor, sp.Transpose):
                    text = f"{code.operand()} @ {self.matrix(factor.arg).operand()}"
                else:
                    text = f"{code.operand()} @ {self.transpose(left)}"
            elif code.batched and is_vector and left.batched:
                text = self.module.column_product.format(left=left.operand(), vector=code.operand())
            else:
                text = f"{left.operand()} @ {code.operand()}"
            code = Code(text, code.batched or left.batched, False)
        return code


    def operator_call(self, factor: sp.MatrixExpr, operand: Code) -> str:
        """A linear operator (or its adjoint) applied by its helper: ``conv(x, h, True, False)``."""
        operator, adjoint = operator_of(factor)
        helper, arguments = operator.array_call(adjoint)
        return f"{helper}({', '.join([operand.text, *(self.print(a) for a in arguments)])})"


class TorchPrinter(ArrayPrinter):
    """Batched PyTorch code for ``model.py``: values are the module's attributes and locals."""

    module = TORCH
    storage = Storage.MODULE

    def network_call(self, step: ApplyNetwork) -> str:
        """A network is a method of the module, given the layer index."""
        inputs = ", ".join(i.name for i in step.inputs)
        return f"{self.g.self}.{step.network.name}({self.k}, {inputs})"


class NumpyPrinter(ArrayPrinter):
    """Batched NumPy code for ``numpy_loop.py``: values come from the kernel's params, indexed
    ``[k]`` per layer and ``[0]`` when tied, as the Numba kernel reads them."""

    module = NUMPY
    storage = Storage.ARRAYS

    def network_call(self, step: ApplyNetwork) -> str:
        """A network is a function, given its weights for the current layer."""
        weights = [self.symbol(sp.Symbol(n)) for n in step.network.parameter_names()]
        return f"{step.network.name}({', '.join([*(i.name for i in step.inputs), *weights])})"


def state_inits(printer: ArrayPrinter, batch_input: str) -> list[dict[str, str]]:
    """The initial value of every state, batched like ``batch_input``: zeros, or the spec's
    initial value, repeated per sample when it is one value for all."""
    states = []
    for state in printer.program.states:
        if state.init is None:
            code = printer.zeros_like_batch(batch_input, state.shape)
        else:
            code = printer.print(state.init)
            if not printer.matrix(state.init).batched:
                code = printer.repeat_for_batch(code, batch_input, state.shape)
        states.append({"name": state.name, "code": code})
    return states


def prox_lines(printer_class: type[ArrayPrinter], program: Program, g: Spelling, prox: ProxOperator) -> list[str]:
    """Body of a batched prox function: one line per stage; operators on a whole sample get
    the axes of one sample."""
    printer = printer_class(program, g, prox_argument_name)
    per_sample_axes = "(-1,)" if len(program.tensor_shape(prox.variable)) == 1 else "(-2, -1)"
    lines = []
    for stage in prox.stages:
        if stage.helper is None:
            assert stage.formula is not None
            lines.append(f"v = {printer.print(stage.formula)}")
            continue
        args = [printer.print(a) for a in stage.args]
        if stage.helper.axes:
            args.append(per_sample_axes)
        lines.append(f"v = {stage.helper.name}({', '.join(['v', *args])})")
    return lines


