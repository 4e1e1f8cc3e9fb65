"""The step a method hands to the paradigms: ``target <- P(argument)``, not yet made concrete.

A method lays out the classical layer. Where the learn section may change it, the method
emits an :class:`Update` instead of concrete steps; the paradigm passes
(:mod:`unfoldgen.ir.paradigms`) rewrite the updates they apply to, and the last pass turns
each one into :class:`~unfoldgen.ir.program.ApplyProx` or
:class:`~unfoldgen.ir.program.Assign`. So a method never asks which paradigms are on, and a
paradigm never asks which method made the update: it asks only the update's :class:`Role`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import sympy as sp

from unfoldgen.ir.program import Parameter
from unfoldgen.symbolic.prox import ProxOperator


class Role(enum.Enum):
    """What an update is, which decides the paradigms that may rewrite it."""

    GRADIENT_STEP = "target = P(point - t grad f(point))"
    LINEAR_STEP = "target = an affine map of the per-sample tensors (a splitting's linear solve)"
    PROX_STEP = "target = P(argument)"


@dataclass(eq=False)
class Update:
    """``target = P(argument)`` (``target = argument`` when ``prox`` is None).

    ``values`` are the prox's arguments after the value. A gradient step also keeps where its
    gradient is taken (``point``), the gradient there as an expression (``gradient``, for the
    linear maps of paradigm 2) and the temporary that holds it (``grad``, which ``argument``
    reads); ``initial`` maps the learned scalars ``argument`` reads to their classical values
    (where learned maps start). ``support`` is set by support selection.
    """

    var: str
    role: Role
    target: sp.MatrixSymbol
    argument: sp.MatrixExpr
    prox: ProxOperator | None = None
    values: tuple[sp.Expr, ...] = ()
    point: sp.MatrixSymbol | None = None
    gradient: sp.MatrixExpr | None = None
    grad: sp.MatrixSymbol | None = None
    step: Parameter | None = None
    initial: dict[sp.Symbol, sp.Expr] = field(default_factory=dict)
    support: tuple[int, ...] | None = None
