"""Lower IR steps to per-sample Numba statements (typed nodes, ``numba_statements``) that
allocate nothing inside the layer loop.

Each step becomes: matrix products written by loop helpers (``matvec(a, v, out)``, ...) into buffers allocated
once before the loop, then one fused elementwise loop that writes the target. A product that
is a whole term of a sum is computed straight into the target when that is safe (the target is
not read by the expression), which saves a buffer and a pass.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import sympy as sp
from sympy.printing.printer import Printer

from unfoldgen.backends.hygiene import Spelling, spelling
from unfoldgen.backends.numba_networks import activation, network_buffers
from unfoldgen.backends.numba_statements import (
    Call,
    Code,
    Copy,
    Fill,
    Fragment,
    Loop,
    Ref,
    Scalar,
    Statement,
    product,
)
from unfoldgen.backends.resolver import NameResolver, Storage
from unfoldgen.backends.scalars import ScalarPrinter
from unfoldgen.ir.mathtext import math_text
from unfoldgen.ir.program import ApplyNetwork, ApplyProx, Assign, Program, Step
from unfoldgen.names import around
from unfoldgen.operators.linear import is_operator, operator_of
from unfoldgen.symbolic.nodes import LowRankFactor, Map, is_negative_term
from unfoldgen.symbolic.prox import ProxOperator
from unfoldgen.symbolic.prox.separable import V

_MARK = re.compile(r"(_MAP\d+_)")  # where a map's body, printed as a scalar, takes an operand's element
INDEX_NAMES = ("i", "j")


def _unwrapped(code: Code) -> Code:
    """``code`` without the one pair of parentheses around all of it, if it has one (a map's
    body adds them where it needs them)."""
    if len(code) < 3 or code[0] != "(" or code[-1] != ")":
        return code
    depth = 0
    for position, fragment in enumerate(code):
        if isinstance(fragment, str):
            depth += fragment.count("(") - fragment.count(")")
        if depth == 0 and position < len(code) - 1:
            return code  # the first parenthesis closes before the end: not one group
    return code[1:-1]  # loop indices over a sample's entries, before allocation
SVD_WORKSPACE = ("svd_rows", "svd_vt")  # the Jacobi SVD's workspace arguments (n x m, n x n)


def needs_svd_workspace(prox: ProxOperator) -> bool:
    return any(stage.helper is not None and stage.helper.svd_workspace for stage in prox.stages)


@dataclass
class Buffer:
    name: str
    shape: tuple[int, ...]
    comment: str


class NumbaScalarPrinter(ScalarPrinter):
    """Per-entry scalar code: Python's and ``math``'s functions, which Numba compiles."""

    functions: ClassVar[dict[str, str]] = {
        "Abs": "abs", "sqrt": "{math}.sqrt", "exp": "{math}.exp", "log": "{math}.log", "Max": "max", "Min": "min",
        "sign": "{np}.sign", "tanh": "{math}.tanh", "cosh": "{math}.cosh", "sinh": "{math}.sinh",
        "cos": "{math}.cos", "sin": "{math}.sin",
        "sigmoid": "(1.0 / (1.0 + {math}.exp(-({x}))))",
        "softplus": "(max({x}, 0.0) + {math}.log1p({math}.exp(-abs({x}))))",
    }

    def where(self, condition: str, then: str, otherwise: str) -> str:
        return f"({then} if {condition} else {otherwise})"


@dataclass
class NumbaLowering(Printer):
    """The lowering of one program; a SymPy printer whose ``_print_<Class>`` methods give the
    code of one element of a matrix expression."""

    program: Program
    spelling: Spelling | None = None  # the kernel file's (one per file: it records what the code reads)
    buffers: list[Buffer] = field(default_factory=list)
    invariants: dict[str, str] = field(default_factory=dict)  # scalar code -> the local bound to it before loops
    compounds: int = 0  # invariants named c0, c1...

    def __post_init__(self) -> None:
        Printer.__init__(self)
        self.g = self.spelling or spelling(self.program)
        self.resolver = NameResolver(self.program, Storage.ARRAYS, self.g)
        self.scalars = NumbaScalarPrinter(self.resolver, self.g)
        self.names = self.program.names()  # the spec's and the compiler's; buffers are spelled around them
        self.k = self.resolver.k  # the layer index
        self.index_names = tuple(self.program.local(name) for name in INDEX_NAMES)

    def scalar(self, expr: sp.Basic, atom: bool = True) -> Scalar:
        """Printed scalar code, with the names it reads (and ``k`` where it indexes a layer)."""
        names = {s.name for s in expr.free_symbols if s != V}
        indexed = any(self.layer_index(name) is not None for name in names)
        names |= {self.k for name in names if self.layer_index(name) == self.k}
        return Scalar(self.scalars.atom(expr) if atom else self.scalars.print(expr), frozenset(names), indexed)

    def shape_of(self, expr: sp.MatrixExpr) -> tuple[int, ...]:
        return self.program.shape_of(expr)

    def buffer(self, expr: sp.MatrixExpr, shape: tuple[int, ...] | None = None, comment: str | None = None) -> str:
        name = around(f"tmp{len(self.buffers)}", self.names)  # a spec name spelled tmp0 keeps its spelling
        self.buffers.append(Buffer(name, shape or self.shape_of(expr), comment or math_text(expr)))
        return name

    def layer_index(self, name: str) -> str | None:
        """``k`` for tensors with one value per layer, ``0`` for tied parameters, else None."""
        return self.resolver.layer_index(name)

    def whole(self, name: str, transposed: bool = False) -> Ref:
        return Ref(name, self.layer_index(name), None, transposed)

    def indexed(self, name: str, idx: tuple[str, ...]) -> Ref:
        return Ref(name, self.layer_index(name), idx)

    # -- elementwise ------------------------------------------------------------------------
    def sum_element(self, expr: sp.MatAdd, idx: tuple[str, ...], out: list[Statement]) -> Code:
        """One element of a sum, without the parentheses that a factor of it would need."""
        terms = sorted(expr.args, key=is_negative_term)
        return self.join_terms(self.element(terms[0], idx, out), terms[1:], idx, out)

    def element(self, expr: sp.Basic, idx: tuple[str, ...], out: list[Statement]) -> Code:
        """Code for one element of ``expr``; products are computed into buffers first (SymPy's
        printer dispatch picks the ``_print_<Class>`` below)."""
        code: Code = self._print(expr, idx=idx, out=out)
        return code

    def _print_Expr(self, expr: sp.Expr, idx: tuple[str, ...], out: list[Statement]) -> Code:
        return (self.scalar(expr),)  # a scalar factor: the same for every element

    def _print_MatrixExpr(self, expr: sp.MatrixExpr, idx: tuple[str, ...], out: list[Statement]) -> Code:
        raise NotImplementedError(f"cannot lower {expr!r} for numba")

    def _print_MatrixSymbol(self, expr: sp.MatrixSymbol, idx: tuple[str, ...], out: list[Statement]) -> Code:
        return (self.indexed(expr.name, idx),)

    def _print_Transpose(self, expr: sp.Transpose, idx: tuple[str, ...], out: list[Statement]) -> Code:
        if not isinstance(expr.arg, sp.MatrixSymbol):
            return self._print_MatrixExpr(expr, idx, out)
        return (self.indexed(expr.arg.name, tuple(reversed(idx))),)

    def _print_MatAdd(self, expr: sp.MatAdd, idx: tuple[str, ...], out: list[Statement]) -> Code:
        return ("(", *self.sum_element(expr, idx, out), ")")

    def _print_MatMul(self, expr: sp.MatMul, idx: tuple[str, ...], out: list[Statement]) -> Code:
        scalars = [a for a in expr.args if not isinstance(a, sp.MatrixExpr)]
        factors = [a for a in expr.args if isinstance(a, sp.MatrixExpr)]
        if len(factors) == 1:
            inner = self.element(factors[0], idx, out)
        else:
            name = self.buffer(sp.MatMul(*factors))
            self.product(factors, name, out)
            inner = (Ref(name, subscript=idx),)
        if not scalars:
            return inner
        return (self.scalar(sp.Mul(*scalars)), "*", *inner)

    def _print_Map(self, expr: Map, idx: tuple[str, ...], out: list[Statement]) -> Code:
        """The function's body per element, each variable replaced by its operand's element."""
        operands = [_unwrapped(self.element(a, idx, out)) for a in expr.arguments]
        marks = {v: sp.Symbol(f"_MAP{i}_") for i, v in enumerate(expr.function.variables)}
        self.scalars.compound = {marks[v] for v, code in zip(expr.function.variables, operands, strict=True)
                                 if len(code) > 1}  # parenthesised where they are operands
        printed = self.scalar(expr.function.expr.xreplace(marks), atom=False)
        self.scalars.compound = set()
        code: list[Fragment] = [Scalar("", printed.names)]  # what the body reads (params, k)
        for piece in _MARK.split(printed.text):
            code += list(operands[int(piece[4:-1])]) if _MARK.fullmatch(piece) else [piece]
        return tuple(f for f in code if f != "")

    def _print_Inverse(self, expr: sp.Inverse, idx: tuple[str, ...], out: list[Statement]) -> Code:
        return (Ref(self.array(expr, out).name, subscript=idx),)

    def join_terms(self, first: Code, terms: list[sp.MatrixExpr], idx: tuple[str, ...], out: list[Statement]) -> Code:
        code = first
        for term in terms:
            if is_negative_term(term):
                code = (*code, " - ", *self.element(-term, idx, out))
            else:
                code = (*code, " + ", *self.element(term, idx, out))
        return code

    def product(self, factors: list[sp.MatrixExpr], target: str, out: list[Statement]) -> None:
        """``target = F1 @ ... @ Fn``, right-associated, each factor a (transposed) array."""
        right = self.array(factors[-1], out)
        for position, factor in enumerate(reversed(factors[:-1])):
            last = position == len(factors) - 2
            destination = target if last else self.buffer(sp.MatMul(*factors[len(factors) - 2 - position:]))
            if is_operator(factor):
                out.append(self.operator_call(factor, right, Ref(destination)))
            else:
                out.append(product(self.array(factor, out), right, Ref(destination), self.is_vector(factors[-1])))
            right = Ref(destination)

    def operator_call(self, factor: sp.MatrixExpr, operand: Ref, out: Ref) -> Call:
        """``out = K operand`` (or ``K^T operand``) by the operator's loop helper."""
        operator, adjoint = operator_of(factor)
        helper, arguments = operator.numba_call(adjoint)
        values: list[Code] = [(self.whole(a.name),) if isinstance(a, sp.MatrixSymbol) else (self.scalar(a),)
                              for a in arguments]
        return Call(helper, ((operand,), *values, (out,)))

    def array(self, expr: sp.MatrixExpr, out: list[Statement]) -> Ref:
        """An array (possibly transposed) holding ``expr``, materialising it when needed."""
        if isinstance(expr, sp.MatrixSymbol):
            return self.whole(expr.name)
        if isinstance(expr, sp.Transpose) and isinstance(expr.arg, sp.MatrixSymbol):
            return self.whole(expr.arg.name, transposed=True)
        if isinstance(expr, sp.Inverse):
            work = self.buffer(expr.arg)
            self.assign(work, expr.arg, out)
            name = self.buffer(expr)
            out.append(Call("invert", ((Ref(work),), (Ref(name),))))
            return Ref(name)
        name = self.buffer(expr)
        self.assign(name, expr, out)
        return Ref(name)

    def is_vector(self, expr: sp.MatrixExpr) -> bool:
        return self.program.size(expr.shape[1]) == 1 and len(self.shape_of(expr)) == 1

    # -- statements ------------------------------------------------------------------------
    def assign(self, target: str, expr: sp.MatrixExpr, out: list[Statement],
               wrap: Callable[[Code], Code] | None = None) -> None:
        """``target = expr``; ``wrap`` (an elementwise prox) applies to each element."""
        shape = self.shape_of(expr)
        idx = self.index_names[: len(shape)]
        reads_target = any(s.name == target for s in expr.free_symbols)
        if isinstance(expr, sp.MatrixSymbol) and wrap is None:
            out.append(Copy(target, self.whole(expr.name)))
            return
        if isinstance(expr, LowRankFactor):
            source = self.array(expr.matrix, out)
            rank = self.program.size(expr.rank)
            out.append(Call("svd_factor", ((source,), (str(rank),), (str(expr.side),), (Ref(target),))))
            return
        terms = list(expr.args) if isinstance(expr, sp.MatAdd) else [expr]
        direct = next((t for t in terms if self.is_pure_product(t)), None)
        if direct is not None and not reads_target:
            self.product([a for a in direct.args], target, out)
            rest = [t for t in terms if t is not direct]
            if not rest and wrap is None:
                return
            value = self.join_terms((Ref(target, subscript=idx),), rest, idx, out)
        elif isinstance(expr, sp.MatAdd):
            value = self.sum_element(expr, idx, out)
        else:
            value = self.element(expr, idx, out)
        out.append(self.loop(target, wrap(value) if wrap else value, shape, idx))

    def loop(self, target: str, value: Code, shape: tuple[int, ...], idx: tuple[str, ...]) -> Loop:
        """The loop, its scalars read from arrays bound to locals before it (see :class:`Loop`):
        ``threshold[k]`` as ``threshold_k``, a longer expression as ``c0``, ``c1``... One name
        per expression for the whole program, so a name always holds values of one type."""
        invariants: dict[str, Scalar] = {}
        code: list[Fragment] = []
        for fragment in value:
            if isinstance(fragment, Scalar) and fragment.indexed:
                name = self.invariant_name(fragment)
                invariants[name] = fragment
                fragment = Scalar(name, fragment.names)
            code.append(fragment)
        return Loop(target, tuple(code), shape, idx, tuple(invariants.items()))

    def invariant_name(self, scalar: Scalar) -> str:
        """``step_k`` for the entry ``step[k]`` (``step_0`` for a tied ``step[0]``), else the
        next of ``c0``, ``c1``..."""
        if scalar.text not in self.invariants:
            arrays = sorted(scalar.names - {self.k})
            layer = self.layer_index(arrays[0]) if len(arrays) == 1 else None
            if layer is not None and scalar.text == f"{arrays[0]}[{layer}]":
                wanted = f"{arrays[0]}_{layer}"
            else:
                wanted, self.compounds = f"c{self.compounds}", self.compounds + 1
            taken = {b.name for b in self.buffers} | set(self.invariants.values()) | set(self.index_names)
            self.invariants[scalar.text] = around(wanted, self.names | taken)
        return self.invariants[scalar.text]

    @staticmethod
    def is_pure_product(expr: sp.Basic) -> bool:
        return isinstance(expr, sp.MatMul) and all(isinstance(a, sp.MatrixExpr) for a in expr.args)

    def step(self, step: Step) -> list[Statement]:
        out: list[Statement] = []
        if isinstance(step, Assign):
            self.assign(step.target.name, step.expr, out)
            return out
        if isinstance(step, ApplyNetwork):
            return self.network(step)
        values: list[Code] = [(self.scalar(v, atom=False),) for v in step.values]
        target = Ref(step.target.name)
        if step.support is not None:
            work = self.buffer(step.argument, comment="magnitudes, for support selection")
            self.assign(step.target.name, step.argument, out)
            count = Scalar(f"{self.g.SUPPORT}[{self.k}]", frozenset({self.k}))
            out.append(Call("soft_threshold_support", ((target,), *values, (count,), (Ref(work),))))
            return out
        workspace: list[Code] = [(Ref(name),) for name in self.svd_workspace(step)] if needs_svd_workspace(step.prox) else []
        name = step.prox.function_name
        if step.prox.elementwise:
            def apply(value: Code) -> Code:
                return (f"{name}(", *value, *(f for v in values for f in (", ", *v)), ")")

            self.assign(step.target.name, step.argument, out, wrap=apply)
        else:
            self.assign(step.target.name, step.argument, out)
            out.append(Call(name, ((target,), *values, *workspace)))
        return out

    def svd_workspace(self, step: ApplyProx) -> list[str]:
        """Buffers for the SVD of the prox's matrix (allocated once per sample)."""
        rows, cols = self.shape_of(step.target)
        names = []
        for role, shape in zip(SVD_WORKSPACE, ((cols, rows), (cols, cols)), strict=True):
            name = f"{step.target.name}_{role}"
            if all(b.name != name for b in self.buffers):
                self.buffers.append(Buffer(name, shape, f"SVD workspace of {step.target.name}"))
            names.append(name)
        return names

    def network(self, step: ApplyNetwork) -> list[Statement]:
        """Run the network into its output buffer, then ``target = base + output``."""
        network = step.network
        layer = self.k if network.per_layer else "0"
        buffers = [Buffer(name, shape, comment) for name, shape, comment in network_buffers(network)]
        names = {b.name for b in self.buffers}
        self.buffers += [b for b in buffers if b.name not in names]
        if network.kind == "mlp":
            out = self.dense_layers(step, layer, [b.name for b in buffers])
        else:
            args: list[Code] = [(self.whole(i.name),) for i in step.inputs]
            args += [(Ref(name, layer),) for name in network.parameter_names()]
            args += [(Ref(b.name),) for b in buffers]
            out = [Call(network.name, tuple(args))]
        shape = network.output_shape
        idx = self.index_names[: len(shape)]
        output = buffers[-1].name
        flat = idx[0] if len(shape) == 1 else f"{idx[0]}*{shape[1]} + {idx[1]}"
        element = Ref(output, subscript=(flat,)) if network.kind == "mlp" else Ref(output, subscript=("0", *idx))
        out.append(self.loop(step.target.name, (self.indexed(step.base.name, idx), " + ", element), shape, idx))
        return out

    def dense_layers(self, step: ApplyNetwork, layer: str, buffers: list[str]) -> list[Statement]:
        """A dense network as statements: per layer, the product with its weights and a loop
        adding the bias (then the activation, but after the last layer). One sample fuses each
        pair into one pass over the weight rows; a batch runs each product as one BLAS product
        of all the samples (a network called per sample read its weights once per sample: most
        of PnP-PGD's time at batch 256). ``buffers``: the features (the inputs, one after
        another, where there are several or a matrix among them), each hidden layer, the output."""
        network, index = step.network, self.index_names[0]
        out: list[Statement] = []
        source = self.whole(step.inputs[0].name)
        if len(step.inputs) > 1 or len(self.shape_of(step.inputs[0])) > 1:
            start = 0
            for tensor in step.inputs:
                shape = self.shape_of(tensor)
                stop = start + math.prod(shape)
                out.append(Copy(buffers[0], self.whole(tensor.name), (start, stop), flatten=len(shape) > 1))
                start = stop
            source = Ref(buffers[0])
        for depth in range(network.depth):
            weight, bias = network.weight_names(depth)
            target = buffers[depth + 1]
            out.append(product(Ref(weight, layer), source, Ref(target), vector=True))
            value: Code = (Ref(target, subscript=(index,)), " + ", Ref(bias, layer, (index,)))
            if depth < network.depth - 1:
                value = activation(network.activation, value, self.g)
            out.append(self.loop(target, value, (network.sizes[depth + 1],), (index,)))
            source = Ref(target)
        return out

    def initial(self, name: str, expr: sp.MatrixExpr | None) -> list[Statement]:
        if expr is None:
            return [Fill(name, "0.0")]
        out: list[Statement] = []
        self.assign(name, expr, out)
        return out
