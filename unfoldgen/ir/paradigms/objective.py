"""Paradigm 2: the objective's linear maps, or its weights, become trainable.

- ``untied`` / ``tied``: each map of the update built from the constants becomes a matrix
  ``W_v`` (per layer, or shared), initialised to its derived value (:func:`learned_maps`); where
  the update applies convolutions, their kernels are learned instead (:func:`learned_kernels`),
  so a structured operator stays one (a 5x5 filter, not a dense 4096 x 4096 matrix);
- ``coupled`` (LISTA-CP) and ``analytic`` (ALISTA): the gradient step's ``t A^T`` becomes a
  per-layer ``W_k``, or ``W^T`` is computed from ``A`` and only the steps are learned;
- ``weights``: every spec param the update reads (the weights ``lam`` of the objective's
  terms) becomes a positive per-layer parameter ``lam_layer``; thresholds that follow ``lam``
  follow the learned one.
"""

from __future__ import annotations

import sympy as sp

from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.objective_maps import analytic_argument, coupled_argument, learned_maps
from unfoldgen.ir.program import Parameter
from unfoldgen.ir.update import Role, Update
from unfoldgen.operators.linear import has_operator
from unfoldgen.operators.linear.conv import Convolution


def learn_objective(b: LayerBuilder) -> None:
    where = b.spec.learn.objective
    if where is None:
        return
    policy = where.text

    def rewrite(update: Update) -> None:
        if policy == "weights" and update.role is Role.GRADIENT_STEP:
            weights = learned_weights(b, (update.argument, *update.values))
            update.argument = update.argument.xreplace(weights)
            update.values = tuple(v.xreplace(weights) for v in update.values)
        elif policy in ("coupled", "analytic") and update.role is Role.GRADIENT_STEP:
            assert update.point is not None and update.gradient is not None and update.step is not None
            build = coupled_argument if policy == "coupled" else analytic_argument
            update.argument = build(b, update.point, update.gradient, update.step, where)
        elif policy in ("untied", "tied") and has_operator(update.argument):
            update.argument = learned_kernels(b, update.argument, "per_layer" if policy == "untied" else "shared")
            structured.append(update)
        elif policy in ("untied", "tied") and update.role in (Role.GRADIENT_STEP, Role.LINEAR_STEP):
            argument = update.argument
            if update.grad is not None and update.gradient is not None:
                argument = argument.xreplace({update.grad: update.gradient})  # the maps act on the iterate
            tying = "per_layer" if policy == "untied" else "shared"
            update.argument = learned_maps(b, argument, b.per_sample_symbols(), update.initial, where, tying)
        b.update(update)

    structured: list[Update] = []
    b.rewrite_updates(rewrite)
    if structured and not b.learned_kernels and not any(p.trainable and p.shape for p in b.parameters):
        raise where.error("the linear operators of this network have no kernel to learn (only convolutions do)",
                          hint="drop learn.objective, or learn the steps (learn.hyperparameters)")


def learned_kernels(b: LayerBuilder, expr: sp.MatrixExpr, tying: str) -> sp.MatrixExpr:
    """Each convolution kernel ``h`` that ``expr`` applies becomes a learned filter ``h_layer``,
    initialised to ``h`` (one per kernel, however many updates apply it)."""
    replacements = {}
    for kernel in sorted({c.kernel for c in expr.atoms(Convolution)}, key=str):
        if kernel not in b.learned_kernels:
            shape = b.shape_of(kernel)
            parameter = Parameter(b.fresh(f"{kernel.name}_layer"), shape, tying, True, kernel,
                                  f"the convolution kernel {kernel.name}, learned "
                                  + ("per layer" if tying == "per_layer" else "(shared by the layers)"))
            b.parameters.append(parameter)
            b.learned_kernels[kernel] = parameter
        replacements[kernel] = b.learned_kernels[kernel].symbol
    return expr.xreplace(replacements)


def learned_weights(b: LayerBuilder, exprs: tuple[sp.Basic, ...]) -> dict[sp.Symbol, sp.Symbol]:
    """One positive per-layer parameter per spec param that ``exprs`` read, however many
    updates read it; returns the substitution."""
    read = set().union(*(e.free_symbols for e in exprs))
    weights = {}
    for name, symbol in b.ns.params.items():
        if symbol not in read:
            continue
        if symbol not in b.learned_weights:
            weight = Parameter(b.fresh(f"{name}_layer", raw=True), (), "per_layer", True, symbol,
                               f"the objective's weight {name}, learned per layer", positive=True)
            b.check_positive(weight.name, symbol, b.spec.learn.objective)
            b.parameters.append(weight)
            b.learned_weights[symbol] = weight
        weights[symbol] = b.learned_weights[symbol].symbol
    return weights
