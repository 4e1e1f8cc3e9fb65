"""Lower IR steps to per-sample Numba statements that allocate nothing inside the layer loop.

Each step becomes: matrix products written by loop helpers (``matvec(a, v, out)``, ...) into buffers allocated
once before the loop, then one fused elementwise loop that writes the target. A product that
is a whole term of a sum is computed straight into the target when that is safe (the target is
not read by the expression), which saves a buffer and a pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import sympy as sp

from unfoldgen.backends.numba_networks import network_call
from unfoldgen.backends.scalars import ScalarPrinter
from unfoldgen.ir.mathtext import math_text
from unfoldgen.ir.program import ApplyNetwork, ApplyProx, Assign, Program, Step
from unfoldgen.symbolic.nodes import LowRankFactor, is_negative_term
from unfoldgen.symbolic.prox import ProxOperator
from unfoldgen.symbolic.prox.separable import V

INDEX_NAMES = ("i", "j")


PRODUCTS = ("matvec", "matvec_t", "matmat", "matmat_nt")
SVD_WORKSPACE = ("svd_rows", "svd_vt")  # the Jacobi SVD's workspace arguments (n x m, n x n)


def needs_svd_workspace(prox: ProxOperator) -> bool:
    return any(stage.helper is not None and stage.helper.svd_workspace for stage in prox.stages)


def product_call(left: str, right: str, target: str, vector: bool) -> str:
    """The loop helper (templates/numba_products.py.j2) that computes ``target = left @ right``;
    ``.T`` marks a transposed array."""
    if vector:
        return f"matvec_t({left[:-2]}, {right}, {target})" if left.endswith(".T") else f"matvec({left}, {right}, {target})"
    if right.endswith(".T"):
        return f"matmat_nt({left}, {right[:-2]}, {target})"
    return f"matmat({left}, {right}, {target})"


def products_used(lines: list[str]) -> list[str]:
    return [name for name in PRODUCTS if any(f"{name}(" in line for line in lines)]


@dataclass(frozen=True)
class Statement:
    """One emitted statement; ``kind`` picks the template macro (loop, copy, fill, call)."""

    kind: str
    target: str = ""
    value: str = ""
    shape: tuple[int, ...] = ()
    indices: tuple[str, ...] = ()


@dataclass
class Buffer:
    name: str
    shape: tuple[int, ...]
    comment: str


class NumbaScalarPrinter(ScalarPrinter):
    functions: ClassVar[dict[type, str]] = {sp.Abs: "abs", sp.sqrt: "math.sqrt", sp.exp: "math.exp", sp.log: "math.log",
                 sp.Max: "max", sp.Min: "min", sp.sign: "np.sign"}

    def where(self, condition: str, then: str, otherwise: str) -> str:
        return f"({then} if {condition} else {otherwise})"


@dataclass
class NumbaLowering:
    program: Program
    buffers: list[Buffer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.scalars = NumbaScalarPrinter(self.scalar_name)

    def scalar_name(self, symbol: sp.Symbol) -> str:
        if symbol == V:
            return "v"
        if self.program.role(symbol.name) == "parameter":
            parameter = self.program.parameter(symbol.name)
            return f"{symbol.name}[k]" if parameter.per_layer else f"{symbol.name}[0]"
        return symbol.name

    def shape_of(self, expr: sp.MatrixExpr) -> tuple[int, ...]:
        return self.program.shape_of(expr)

    def buffer(self, expr: sp.MatrixExpr, shape: tuple[int, ...] | None = None, comment: str | None = None) -> str:
        name = f"tmp{len(self.buffers)}"
        while name in self.program.names():  # a spec name spelled tmp0 keeps its spelling
            name += "_"
        self.buffers.append(Buffer(name, shape or self.shape_of(expr), comment or math_text(expr)))
        return name

    def layer_index(self, name: str) -> str | None:
        """``k`` for tensors with one value per layer, ``0`` for tied parameters, else None."""
        role = self.program.role(name)
        if role == "parameter":
            return "k" if self.program.parameter(name).per_layer else "0"
        if role == "derived":
            return "k" if self.program.derived_value(name).per_layer else None
        return None

    def array_name(self, name: str) -> str:
        layer = self.layer_index(name)
        return name if layer is None else f"{name}[{layer}]"

    def indexed(self, name: str, idx: tuple[str, ...]) -> str:
        layer = self.layer_index(name)
        return f"{name}[{', '.join(((layer,) if layer else ()) + idx)}]"

    # -- elementwise ------------------------------------------------------------------------
    def sum_element(self, expr: sp.MatAdd, idx: tuple[str, ...], out: list[Statement]) -> str:
        """One element of a sum, without the parentheses that a factor of it would need."""
        terms = sorted(expr.args, key=is_negative_term)
        return self.join_terms(self.element(terms[0], idx, out), terms[1:], idx, out)

    def element(self, expr: sp.Basic, idx: tuple[str, ...], out: list[Statement]) -> str:
        """Code for one element of ``expr``; products are computed into buffers first."""
        if not isinstance(expr, sp.MatrixExpr):
            return self.scalars.atom(expr)
        if isinstance(expr, sp.MatrixSymbol):
            return self.indexed(expr.name, idx)
        if isinstance(expr, sp.Transpose) and isinstance(expr.arg, sp.MatrixSymbol):
            return self.indexed(expr.arg.name, tuple(reversed(idx)))
        if isinstance(expr, sp.MatAdd):
            return f"({self.sum_element(expr, idx, out)})"
        if isinstance(expr, sp.MatMul):
            scalars = [a for a in expr.args if not isinstance(a, sp.MatrixExpr)]
            factors = [a for a in expr.args if isinstance(a, sp.MatrixExpr)]
            if len(factors) == 1:
                inner = self.element(factors[0], idx, out)
            else:
                product = sp.MatMul(*factors)
                name = self.buffer(product)
                self.product(factors, name, out)
                inner = f"{name}[{', '.join(idx)}]"
            if not scalars:
                return inner
            return f"{self.scalars.atom(sp.Mul(*scalars))}*{inner}"
        if isinstance(expr, sp.Inverse):
            return f"{self.array(expr, out)}[{', '.join(idx)}]"
        raise NotImplementedError(f"cannot lower {expr!r} for numba")

    def join_terms(self, first: str, terms: list[sp.MatrixExpr], idx: tuple[str, ...], out: list[Statement]) -> str:
        text = first
        for term in terms:
            if is_negative_term(term):
                text += f" - {self.element(-term, idx, out)}"
            else:
                text += f" + {self.element(term, idx, out)}"
        return text

    def product(self, factors: list[sp.MatrixExpr], target: str, out: list[Statement]) -> None:
        """``target = F1 @ ... @ Fn``, right-associated, each factor a (transposed) array."""
        right = self.array(factors[-1], out)
        for position, factor in enumerate(reversed(factors[:-1])):
            last = position == len(factors) - 2
            destination = target if last else self.buffer(sp.MatMul(*factors[len(factors) - 2 - position:]))
            out.append(Statement("call", value=product_call(self.array(factor, out), right, destination,
                                                            self.is_vector(factors[-1]))))
            right = destination

    def array(self, expr: sp.MatrixExpr, out: list[Statement]) -> str:
        """An array name (or ``name.T``) holding ``expr``, materialising it when needed."""
        if isinstance(expr, sp.MatrixSymbol):
            return self.array_name(expr.name)
        if isinstance(expr, sp.Transpose) and isinstance(expr.arg, sp.MatrixSymbol):
            return f"{self.array_name(expr.arg.name)}.T"
        if isinstance(expr, sp.Inverse):
            work = self.buffer(expr.arg)
            self.assign(work, expr.arg, out)
            name = self.buffer(expr)
            out.append(Statement("call", value=f"invert({work}, {name})"))
            return name
        name = self.buffer(expr)
        self.assign(name, expr, out)
        return name

    def is_vector(self, expr: sp.MatrixExpr) -> bool:
        return self.program.size(expr.shape[1]) == 1 and len(self.shape_of(expr)) == 1

    # -- statements ------------------------------------------------------------------------
    def assign(self, target: str, expr: sp.MatrixExpr, out: list[Statement], wrap: str = "{}") -> None:
        shape = self.shape_of(expr)
        idx = INDEX_NAMES[: len(shape)]
        reads_target = any(s.name == target for s in expr.free_symbols)
        if isinstance(expr, sp.MatrixSymbol) and wrap == "{}":
            out.append(Statement("copy", target=target, value=self.array_name(expr.name)))
            return
        if isinstance(expr, LowRankFactor):
            source = self.array(expr.matrix, out)
            rank = self.program.size(expr.rank)
            out.append(Statement("call", value=f"svd_factor({source}, {rank}, {expr.side}, {target})"))
            return
        terms = list(expr.args) if isinstance(expr, sp.MatAdd) else [expr]
        direct = next((t for t in terms if self.is_pure_product(t)), None)
        if direct is not None and not reads_target:
            self.product([a for a in direct.args], target, out)
            rest = [t for t in terms if t is not direct]
            if not rest and wrap == "{}":
                return
            value = self.join_terms(f"{target}[{', '.join(idx)}]", rest, idx, out)
        elif isinstance(expr, sp.MatAdd):
            value = self.sum_element(expr, idx, out)
        else:
            value = self.element(expr, idx, out)
        out.append(Statement("loop", target=target, value=wrap.format(value), shape=shape, indices=idx))

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
        values = ", ".join(self.scalars.print(v) for v in step.values)
        if step.support is not None:
            work = self.buffer(step.argument, comment="magnitudes, sorted for support selection")
            self.assign(step.target.name, step.argument, out)
            out.append(Statement("call", value=f"soft_threshold_support({step.target.name}, {values}, SUPPORT[k], {work})"))
            return out
        workspace = self.svd_workspace(step) if needs_svd_workspace(step.prox) else ""
        call = f"{step.prox.function_name}({{}}{', ' + values if values else ''}{workspace})"
        if step.prox.elementwise:
            self.assign(step.target.name, step.argument, out, wrap=call)
        else:
            self.assign(step.target.name, step.argument, out)
            out.append(Statement("call", value=call.format(step.target.name)))
        return out

    def svd_workspace(self, step: ApplyProx) -> str:
        """Buffers for the Jacobi SVD of the prox's matrix (allocated once per sample)."""
        rows, cols = self.shape_of(step.target)
        names = []
        for role, shape in zip(SVD_WORKSPACE, ((cols, rows), (cols, cols)), strict=True):
            name = f"{step.target.name}_{role}"
            if all(b.name != name for b in self.buffers):
                self.buffers.append(Buffer(name, shape, f"Jacobi SVD workspace of {step.target.name}"))
            names.append(name)
        return ", " + ", ".join(names)

    def network(self, step: ApplyNetwork) -> list[Statement]:
        """Run the network into its output buffer, then ``target = base + output``."""
        network = step.network
        layer = "k" if network.per_layer else "0"
        buffers = [Buffer(name, shape, comment) for name, shape, comment in network_call(network).buffers]
        names = {b.name for b in self.buffers}
        self.buffers += [b for b in buffers if b.name not in names]
        weights = [f"{name}[{layer}]" for name in network.parameter_names()]
        args = [i.name for i in step.inputs] + weights + [b.name for b in buffers]
        out = [Statement("call", value=f"{network.name}({', '.join(args)})")]
        shape = network.output_shape
        idx = INDEX_NAMES[: len(shape)]
        output = buffers[-1].name
        flat = idx[0] if len(shape) == 1 else f"{idx[0]}*{shape[1]} + {idx[1]}"
        element = f"{output}[{flat}]" if network.kind == "mlp" else f"{output}[0, {', '.join(idx)}]"
        value = f"{self.indexed(step.base.name, idx)} + {element}"
        out.append(Statement("loop", target=step.target.name, value=value, shape=shape, indices=idx))
        return out

    def initial(self, name: str, expr: sp.MatrixExpr | None) -> list[Statement]:
        if expr is None:
            return [Statement("fill", target=name, value="0.0")]
        out: list[Statement] = []
        self.assign(name, expr, out)
        return out


def statement_lines(statement: Statement) -> list[str]:
    """The source lines of one statement, for one sample."""
    if statement.kind in ("copy", "fill"):
        return [f"{statement.target}[:] = {statement.value}"]
    if statement.kind == "call":
        return [statement.value]
    lines = [f"{'    ' * depth}for {index} in range({size}):"
             for depth, (index, size) in enumerate(zip(statement.indices, statement.shape, strict=True))]
    subscript = ", ".join(statement.indices)
    lines.append(f"{'    ' * len(statement.shape)}{statement.target}[{subscript}] = {statement.value}")
    return lines
