"""What a prox function is: everything the compiler knows about one spec function, in one object.

A :class:`ProxFunction` is a spec function of the nonsmooth part (``norm1``, ``box``, ...): its
arguments, its definition and closed form (LaTeX), the classical values of the hyperparameters
its prox takes for a step ``t``, its value (for the objective and the unsupervised loss), and
the :class:`Helper` of the emitted code that applies its prox. A helper's code for each backend
is one file, ``templates/prox/<helper>.py.j2``, holding one Jinja macro per backend (``torch``,
``numpy``, ``numba``); its cost in FLOPs is given here.

``prox_{t h}(v) = argmin_u 1/2 ||u - v||^2 + t h(u)`` throughout.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sympy as sp

Scalars = tuple[sp.Expr, ...]
Shape = tuple[int, ...]


def per_entry(flops: int) -> Callable[[Shape], int]:
    """The cost of a helper that spends ``flops`` on each entry."""
    return lambda shape: flops * math.prod(shape)


def sorting(flops: int) -> Callable[[Shape], int]:
    """The cost of a helper that sorts the entries of a sample, then spends ``flops`` on each."""
    return lambda shape: math.prod(shape) * (flops + int(math.log2(max(math.prod(shape), 2))))


@dataclass(frozen=True)
class Helper:
    """A function of the emitted code that applies one prox stage: ``v <- name(v, *args)``.

    ``elementwise`` helpers act on each entry alone: in the Numba kernel they are scalar
    functions called inside the fused loops. The others act on one whole sample (in place in
    the kernel); with ``axes`` the batched PyTorch and NumPy versions take the axes of a sample.
    """

    name: str
    args: tuple[str, ...]  # after v; custom iterations call the helper with these
    elementwise: bool
    flops: Callable[[Shape], int]  # per sample, for a value of this shape
    requires: tuple[Helper, ...] = ()  # helpers its code calls
    axes: bool = False
    svd_workspace: bool = False  # the Numba version takes the Jacobi SVD's buffers
    matrix_only: bool = False
    vector_only: bool = False
    onnx_missing: str | None = None  # what ONNX lacks to express it, if anything

    @property
    def template(self) -> str:
        return f"prox/{self.name}.py.j2"


@dataclass(frozen=True)
class ProxFunction:
    """A spec function of the nonsmooth part, ``weight * name(x, *args)``.

    ``classical_hyper(t, w, args)`` gives the values of the helper's hyperparameters (``hyper``)
    for a step ``t``; ``definition`` and ``closed_form`` are LaTeX with the fields ``{x}``,
    ``{w}`` (the weight) and ``{a0}``, ``{a1}``... (the arguments). ``value(xp, x, args)`` is
    ``h(x)`` per sample of a batch ``x`` (array module ``xp``: torch), without the weight; a
    constraint is zero (the network's outputs are projections onto its set).
    """

    name: str
    summary: str  # what the term is, one line for the docs
    prox_summary: str  # what its prox does, one line for the docs
    helper: Helper
    args: tuple[str, ...]  # the arguments after the variable, by name
    weighted: bool
    hyper: tuple[str, ...]
    classical_hyper: Callable[[sp.Expr, sp.Expr, Scalars], Scalars]
    definition: str
    closed_form: str
    value: Callable[[Any, Any, tuple[float, ...]], Any]
    # For separable terms: the penalty on one element u, so terms can be merged.
    scalar_penalty: Callable[[sp.Symbol, sp.Expr, Scalars], sp.Expr] | None = None
    # For indicators of an interval: (lower, upper) bounds, None for unbounded.
    interval: Callable[[Scalars], tuple[sp.Expr | None, sp.Expr | None]] | None = None
    matrix_only: bool = False
    vector_only: bool = False
    defaults: Scalars = ()  # values of the last arguments when they are left out
    convex: bool = True
    # A composite penalty h(K x): the spec function of the linear map K (unfoldgen.operators.linear)
    # applied to the variable first, e.g. tv(X) = h(grad2d(X)); ``value`` and the helper act on K x.
    linear: str | None = None

    @property
    def elementwise(self) -> bool:
        return self.helper.elementwise

    @property
    def arity(self) -> int:
        return len(self.args)

    def usage(self) -> str:
        """How the spec writes it, e.g. ``w * norm1(x)`` or ``box(x, lo, hi)``."""
        variable = "X" if self.matrix_only or self.linear else "x"
        required = self.args[:self.arity - len(self.defaults)]
        call = f"{self.name}({', '.join((variable, *required))})"
        optional = f", `{self.name}({', '.join((variable, *self.args))})`" if self.defaults else ""
        return f"`{'w * ' if self.weighted else ''}{call}`{optional}"

    def accepts(self, count: int) -> bool:
        return self.arity - len(self.defaults) <= count <= self.arity

    def complete(self, args: Scalars) -> Scalars:
        """``args`` with the defaults of those left out."""
        missing = self.arity - len(args)
        return args + self.defaults[len(self.defaults) - missing:] if missing else args


def no_hyper(t: sp.Expr, w: sp.Expr, args: Scalars) -> Scalars:
    return ()


def constraint_value(xp: Any, x: Any, args: tuple[float, ...]) -> Any:
    """A constraint counts zero: the network's outputs are projections onto its set."""
    return x.new_zeros(x.shape[0])


def svd_flops(rows: int, cols: int) -> int:
    """Thin SVD (R-SVD, Golub and Van Loan): 6 m n^2 + 20 n^3 with m >= n."""
    m, n = max(rows, cols), min(rows, cols)
    return 6 * m * n * n + 20 * n**3
