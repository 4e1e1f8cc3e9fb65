"""The intermediate representation both backends lower from.

A :class:`Program` is the network: states carried from layer to layer (the variables and any
auxiliary iterates), per-layer temporaries, parameters (per layer or shared, trainable or fixed,
each with its classical initial value as a SymPy expression of constants and params), and the
ordered steps of one layer. All math is SymPy: matrix expressions for tensors, scalar
expressions for parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import sympy as sp

from unfoldgen.symbolic.prox import ProxOperator


@dataclass(frozen=True)
class Parameter:
    name: str
    shape: tuple[int, ...]
    tying: str  # "per_layer" or "shared"
    trainable: bool
    init: sp.Expr | tuple[sp.Expr, ...]  # one value for every layer, or one per layer
    description: str

    @property
    def symbol(self) -> sp.Symbol:
        return sp.Symbol(self.name, real=True)

    @property
    def per_layer(self) -> bool:
        return self.tying == "per_layer"

    def count(self, layers: int) -> int:
        return math.prod(self.shape) * (layers if self.per_layer else 1)


@dataclass(frozen=True)
class Derived:
    """A scalar computed once from the constants when the model is built (e.g. ``L``)."""

    name: str
    expr: sp.Expr
    description: str

    @property
    def symbol(self) -> sp.Symbol:
        return sp.Symbol(self.name, positive=True)


@dataclass(frozen=True)
class State:
    """A tensor of one sample: a variable, an auxiliary iterate, or a temporary of a layer."""

    symbol: sp.MatrixSymbol
    shape: tuple[int, ...]
    init: sp.MatrixExpr | None  # None: zeros (temporaries are always written before read)
    description: str

    @property
    def name(self) -> str:
        return self.symbol.name


@dataclass(frozen=True)
class Assign:
    target: sp.MatrixSymbol
    expr: sp.MatrixExpr
    comment: str


@dataclass(frozen=True)
class ApplyProx:
    """``target = prox(argument)`` with ``values`` bound to ``prox.arguments`` in order."""

    target: sp.MatrixSymbol
    prox: ProxOperator
    argument: sp.MatrixExpr
    values: tuple[sp.Expr, ...]
    comment: str


Step = Assign | ApplyProx


@dataclass(frozen=True)
class Program:
    name: str
    description: str
    method: str
    layers: int
    dims: dict[str, int]
    inputs: dict[str, tuple[int, ...]]
    constants: dict[str, tuple[int, ...]]
    params: dict[str, float]
    states: tuple[State, ...]
    temporaries: tuple[State, ...]
    derived: tuple[Derived, ...]
    parameters: tuple[Parameter, ...]
    steps: tuple[Step, ...]
    outputs: tuple[str, ...]
    proxes: tuple[ProxOperator, ...]
    derivation: dict[str, object] = field(default_factory=dict)
    spec_hash: str = ""

    def role(self, name: str) -> str:
        """What a name is: input, constant, param, parameter, derived, state or temporary."""
        return self._roles()[name]

    def _roles(self) -> dict[str, str]:
        roles = {n: "input" for n in self.inputs}
        roles.update({n: "constant" for n in self.constants})
        roles.update({n: "param" for n in self.params})
        roles.update({p.name: "parameter" for p in self.parameters})
        roles.update({d.name: "derived" for d in self.derived})
        roles.update({s.name: "state" for s in self.states})
        roles.update({t.name: "temporary" for t in self.temporaries})
        return roles

    def size(self, dim: sp.Expr) -> int:
        """A SymPy dimension (an integer or a dim symbol) as a number."""
        return int(dim.subs({sp.Symbol(n, integer=True, positive=True): v for n, v in self.dims.items()}))

    def shape_of(self, expr: sp.MatrixExpr) -> tuple[int, ...]:
        """Per-sample shape: vectors (``n x 1``) are 1-D."""
        rows, cols = self.size(expr.shape[0]), self.size(expr.shape[1])
        return (rows,) if cols == 1 else (rows, cols)

    def parameter(self, name: str) -> Parameter:
        return next(p for p in self.parameters if p.name == name)

    def tensor_shape(self, name: str) -> tuple[int, ...]:
        for table in (self.inputs, self.constants):
            if name in table:
                return table[name]
        return next(s.shape for s in (*self.states, *self.temporaries) if s.name == name)

    def total_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.count(self.layers) for p in self.parameters if p.trainable or not trainable_only)

    def used_params(self) -> list[str]:
        """Spec params that the layer steps read at run time (the rest only shape initial values)."""
        used: set[str] = set()
        for step in self.steps:
            exprs = [step.expr] if isinstance(step, Assign) else [step.argument, *step.values]
            for expr in exprs:
                used |= {s.name for s in expr.free_symbols if s.name in self.params}
        return sorted(used)
