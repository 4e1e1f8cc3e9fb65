"""The intermediate representation both backends lower from.

A :class:`Program` is the network: states carried from layer to layer (the variables and any
auxiliary iterates), per-layer temporaries, parameters (per layer or shared, trainable or fixed,
each with its classical initial value), values derived from the constants, small neural
networks (learned corrections and learned proxes), and the ordered steps of one layer. All math
is SymPy: matrix expressions for tensors, scalar expressions for scalars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TypeAlias

import sympy as sp

from unfoldgen.ir.mathtext import math_text
from unfoldgen.names import around
from unfoldgen.symbolic.prox import ProxOperator


@dataclass(frozen=True)
class RandomInit:
    """Uniform in ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]`` from a seeded generator (PyTorch's
    default for linear and convolution layers); ``zero`` marks a network's last layer."""

    fan_in: int
    zero: bool = False


# One value for every layer (scalar or matrix expression), one scalar per layer, or random.
Init: TypeAlias = sp.Expr | sp.MatrixExpr | tuple[sp.Expr, ...] | RandomInit


@dataclass(frozen=True)
class Parameter:
    """A learnable (or fixed) quantity of the network.

    ``positive`` parameters are stored as ``raw = softplus^{-1}(value)`` and used as
    ``softplus(raw)``: gradient steps can never make a step size or a threshold negative, and
    the initial value is still exactly the classical one.
    """

    name: str
    shape: tuple[int, ...]
    tying: str  # "per_layer" or "shared"
    trainable: bool
    init: Init
    description: str
    positive: bool = False

    @property
    def symbol(self) -> sp.Symbol | sp.MatrixSymbol:
        """Matrices keep the symbolic dims of their initial value, so they multiply the states."""
        if isinstance(self.init, sp.MatrixExpr):
            return sp.MatrixSymbol(self.name, *self.init.shape)
        if len(self.shape) == 2:
            return sp.MatrixSymbol(self.name, *self.shape)
        return sp.Symbol(self.name, real=True)

    @property
    def per_layer(self) -> bool:
        return self.tying == "per_layer"

    def count(self, layers: int) -> int:
        return math.prod(self.shape) * (layers if self.per_layer else 1)


@dataclass(frozen=True)
class Derived:
    """A value computed from the constants (and parameters) rather than from a sample.

    Scalars (``L``) only shape initial values. Tensors (an analytic weight, the inverse of an
    ADMM linear system) are read by the layers: the PyTorch module computes them once when built,
    or in ``forward`` when they depend on trainable parameters; the Numba kernel receives them
    precomputed in ``kernel_params()``. ``per_layer`` tensors have one value per layer.
    """

    name: str
    expr: sp.Basic
    description: str
    shape: tuple[int, ...] = ()
    per_layer: bool = False  # it reads per-layer parameters: one value per layer

    @property
    def symbol(self) -> sp.Symbol | sp.MatrixSymbol:
        if isinstance(self.expr, sp.MatrixExpr):
            return sp.MatrixSymbol(self.name, *self.expr.shape)
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
class Network:
    """A small neural network applied to per-sample tensors (paradigms 3 and 4).

    ``kind`` is ``mlp`` (dense layers on the flattened inputs) or ``cnn`` (3x3 convolutions
    with zero padding on a 2-D variable seen as a one-channel image). ``sizes`` are the
    features (or channels) from input to output. Weights are parameters named
    ``{name}_w{i}`` and ``{name}_b{i}``; the last layer starts at zero.
    """

    name: str
    kind: str
    sizes: tuple[int, ...]
    activation: str
    per_layer: bool
    output_shape: tuple[int, ...]
    description: str

    @property
    def depth(self) -> int:
        return len(self.sizes) - 1

    def weight_names(self, i: int) -> tuple[str, str]:
        return f"{self.name}_w{i}", f"{self.name}_b{i}"

    def parameter_names(self) -> list[str]:
        return [name for i in range(self.depth) for name in self.weight_names(i)]


@dataclass(frozen=True)
class Assign:
    target: sp.MatrixSymbol
    expr: sp.MatrixExpr
    comment: str


@dataclass(frozen=True)
class ApplyProx:
    """``target = prox(argument)`` with ``values`` bound to ``prox.arguments`` in order.

    ``support`` (support selection, LISTA-CPSS) gives, per layer, how many entries of largest
    magnitude pass the soft threshold untouched.
    """

    target: sp.MatrixSymbol
    prox: ProxOperator
    argument: sp.MatrixExpr
    values: tuple[sp.Expr, ...]
    comment: str
    support: tuple[int, ...] | None = None


def prox_comment(target: sp.MatrixSymbol, prox: ProxOperator, argument: sp.MatrixExpr, values: tuple[sp.Expr, ...],
                 support: tuple[int, ...] | None) -> str:
    """The emitted comment of an :class:`ApplyProx`: ``x = prox_x(W_y @ y + W_x @ x, threshold)``."""
    call = ", ".join([math_text(argument)] + [math_text(v) for v in values])
    name = "soft_threshold_support" if support else prox.function_name
    return f"{target.name} = {name}({call}{', SUPPORT[k]' if support else ''})"


@dataclass(frozen=True)
class ApplyNetwork:
    """``target = base + network_k(inputs...)``: a learned correction or a learned prox."""

    target: sp.MatrixSymbol
    network: Network
    inputs: tuple[sp.MatrixSymbol, ...]
    base: sp.MatrixSymbol
    comment: str


Step = Assign | ApplyProx | ApplyNetwork


@dataclass(frozen=True)
class Program:
    name: str
    description: str
    method: str
    method_title: str  # e.g. 'proximal gradient (ISTA)', for the emitted docstrings
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
    networks: tuple[Network, ...] = ()
    init_steps: tuple[Step, ...] = ()
    derivation: dict[str, object] = field(default_factory=dict)
    spec_hash: str = ""
    seed: int = 0
    dtype: str | None = None  # the spec's dtype (float32, float64); None: the constants'

    def role(self, name: str) -> str:
        """What a name is: input, constant, param, parameter, derived, state or temporary."""
        return self._roles()[name]

    def names(self) -> set[str]:
        """Every name the program gives a value: the spec's, and those the compiler allocated."""
        return set(self._roles()) | set(self.dims)

    def local(self, name: str) -> str:
        """A name of the emitted code's own (the layer index ``k``, loop indices), with '_'
        appended until no name of the program has that spelling."""
        return around(name, self.names())

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

    def derived_value(self, name: str) -> Derived:
        return next(d for d in self.derived if d.name == name)

    def tensor_shape(self, name: str) -> tuple[int, ...]:
        for table in (self.inputs, self.constants):
            if name in table:
                return table[name]
        return next(s.shape for s in (*self.states, *self.temporaries) if s.name == name)

    @property
    def layer_tensors(self) -> tuple[Derived, ...]:
        """Derived tensors the layers read (scalars only shape initial values)."""
        return tuple(d for d in self.derived if d.shape)

    def is_dynamic(self, derived: Derived) -> bool:
        """True when a derived tensor depends on trainable parameters (recomputed in forward)."""
        names = {s.name for s in derived.expr.free_symbols}
        return any(p.trainable and p.name in names for p in self.parameters)

    def network_inputs(self, network: Network) -> tuple[sp.MatrixSymbol, ...]:
        """The tensors a network reads (from the step that applies it)."""
        return next(s.inputs for s in self.steps if isinstance(s, ApplyNetwork) and s.network == network)

    @property
    def support(self) -> tuple[int, ...] | None:
        """The support-selection schedule, when the network selects supports."""
        return next((s.support for s in self.steps if isinstance(s, ApplyProx) and s.support), None)

    def total_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.count(self.layers) for p in self.parameters if p.trainable or not trainable_only)

    def used_params(self) -> list[str]:
        """Spec params that the layer steps read at run time (the rest only shape initial values)."""
        used: set[str] = set()
        for step in (*self.init_steps, *self.steps):
            for expr in step_expressions(step):
                used |= {s.name for s in expr.free_symbols if s.name in self.params}
        return sorted(used)


def step_expressions(step: Step) -> list[sp.Basic]:
    """Every expression a step reads."""
    if isinstance(step, Assign):
        return [step.expr]
    if isinstance(step, ApplyProx):
        return [step.argument, *step.values]
    return [*step.inputs, step.base]
