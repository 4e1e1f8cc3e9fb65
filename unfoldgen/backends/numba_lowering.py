"""Lower IR steps to per-sample Numba statements that allocate nothing inside the layer loop.

Each step becomes: matrix products written by ``np.dot(a, b, out)`` into buffers allocated
once before the loop, then one fused elementwise loop that writes the target. A product that
is a whole term of a sum is computed straight into the target when that is safe (the target is
not read by the expression), which saves a buffer and a pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from unfoldgen.backends.scalars import ScalarPrinter
from unfoldgen.symbolic.nodes import is_negative_term
from unfoldgen.ir.mathtext import math_text
from unfoldgen.ir.program import ApplyProx, Assign, Program, Step
from unfoldgen.symbolic.prox.separable import V

INDEX_NAMES = ("i", "j")


@dataclass(frozen=True)
class Statement:
    """One emitted statement; ``kind`` picks the template macro (dot, loop, copy, call)."""

    kind: str
    target: str = ""
    value: str = ""
    left: str = ""
    right: str = ""
    shape: tuple[int, ...] = ()
    indices: tuple[str, ...] = ()


@dataclass
class Buffer:
    name: str
    shape: tuple[int, ...]
    comment: str


class NumbaScalarPrinter(ScalarPrinter):
    functions = {sp.Abs: "abs", sp.sqrt: "math.sqrt", sp.exp: "math.exp", sp.log: "math.log",
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

    def buffer(self, expr: sp.MatrixExpr) -> str:
        name = f"tmp{len(self.buffers)}"
        self.buffers.append(Buffer(name, self.shape_of(expr), math_text(expr)))
        return name

    # -- elementwise ------------------------------------------------------------------------
    def element(self, expr: sp.Basic, idx: tuple[str, ...], out: list[Statement]) -> str:
        """Code for one element of ``expr``; products are computed into buffers first."""
        if not isinstance(expr, sp.MatrixExpr):
            return self.scalars.atom(expr)
        if isinstance(expr, sp.MatrixSymbol):
            return f"{expr.name}[{', '.join(idx)}]"
        if isinstance(expr, sp.Transpose) and isinstance(expr.arg, sp.MatrixSymbol):
            return f"{expr.arg.name}[{', '.join(reversed(idx))}]"
        if isinstance(expr, sp.MatAdd):
            terms = sorted(expr.args, key=is_negative_term)
            return f"({self.join_terms(self.element(terms[0], idx, out), terms[1:], idx, out)})"
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
            out.append(Statement("dot", target=destination, left=self.array(factor, out), right=right))
            right = destination

    def array(self, expr: sp.MatrixExpr, out: list[Statement]) -> str:
        """An array name (or ``name.T``) holding ``expr``, materialising it when needed."""
        if isinstance(expr, sp.MatrixSymbol):
            return expr.name
        if isinstance(expr, sp.Transpose) and isinstance(expr.arg, sp.MatrixSymbol):
            return f"{expr.arg.name}.T"
        name = self.buffer(expr)
        self.assign(name, expr, out)
        return name

    # -- statements ------------------------------------------------------------------------
    def assign(self, target: str, expr: sp.MatrixExpr, out: list[Statement], wrap: str = "{}") -> None:
        shape = self.shape_of(expr)
        idx = INDEX_NAMES[: len(shape)]
        reads_target = any(s.name == target for s in expr.free_symbols)
        if isinstance(expr, sp.MatrixSymbol) and wrap == "{}":
            out.append(Statement("copy", target=target, value=expr.name))
            return
        terms = list(expr.args) if isinstance(expr, sp.MatAdd) else [expr]
        direct = next((t for t in terms if self.is_pure_product(t)), None)
        if direct is not None and not reads_target:
            self.product([a for a in direct.args], target, out)
            rest = [t for t in terms if t is not direct]
            if not rest and wrap == "{}":
                return
            value = self.join_terms(f"{target}[{', '.join(idx)}]", rest, idx, out)
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
        assert isinstance(step, ApplyProx)
        values = ", ".join(self.scalars.print(v) for v in step.values)
        call = f"{step.prox.function_name}({{}}{', ' + values if values else ''})"
        if step.prox.elementwise:
            self.assign(step.target.name, step.argument, out, wrap=call)
        else:
            self.assign(step.target.name, step.argument, out)
            out.append(Statement("call", value=call.format(step.target.name)))
        return out

    def initial(self, name: str, expr: sp.MatrixExpr | None) -> list[Statement]:
        if expr is None:
            return [Statement("fill", target=name, value="0.0")]
        out: list[Statement] = []
        self.assign(name, expr, out)
        return out
