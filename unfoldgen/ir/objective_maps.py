"""Paradigm 2: the linear maps of a derived update become trainable matrices.

The update's argument is affine in the per-sample tensors (states and inputs): after SymPy
expands it, every term is ``c M1 ... Mk v`` with ``v`` a per-sample tensor. Grouping the terms
by ``v`` gives one map per tensor, e.g. for ISTA ``x - t A^T (A x - y)``:
``W_x = I - t A^T A`` and ``W_y = t A^T``. The policies:

- ``untied`` (LISTA): one ``W_v`` per layer, initialised to its symbolic value;
- ``tied``: one ``W_v`` shared by all layers;
- ``coupled`` (LISTA-CP): the gradient factors as ``F r(x)`` (``F = A^T``, ``r = A x - y``)
  and ``t F`` becomes ``W_k``, so ``x - W_k r(x)``: the state map ``I - W_k A`` stays coupled;
- ``analytic`` (ALISTA): as coupled, with ``W^T`` computed from ``A`` when the model is built
  (minimal mutual coherence ``||W^T A||_F`` subject to ``diag(W^T A) = 1``) and only the
  step sizes and thresholds learned.
"""

from __future__ import annotations

import sympy as sp

from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.program import Parameter
from unfoldgen.spec.model import Located
from unfoldgen.symbolic.nodes import AnalyticWeight


def split_factors(term: sp.Basic) -> tuple[sp.Expr, list[sp.MatrixExpr]]:
    factors = term.args if isinstance(term, sp.MatMul) else (term,)
    scalars = sp.Mul(*(f for f in factors if not isinstance(f, sp.MatrixExpr)))
    return scalars, [f for f in factors if isinstance(f, sp.MatrixExpr)]


def linear_maps(expr: sp.MatrixExpr, per_sample: set[sp.MatrixSymbol],
                where: Located) -> tuple[dict[sp.MatrixSymbol, sp.MatrixExpr], list[sp.MatrixExpr]]:
    """``expr = sum_v maps[v] v + sum(rest)``; ``rest`` holds terms without a per-sample tensor."""
    maps: dict[sp.MatrixSymbol, list[sp.MatrixExpr]] = {}
    rest: list[sp.MatrixExpr] = []
    expanded = sp.expand(expr)
    for term in expanded.args if isinstance(expanded, sp.MatAdd) else (expanded,):
        coeff, matrices = split_factors(term)
        last = matrices[-1]
        if not any(term.has(v) for v in per_sample):
            rest.append(term)
            continue
        if last not in per_sample or any(m.has(v) for m in matrices[:-1] for v in per_sample) or \
                any(coeff.has(v) for v in per_sample):
            raise where.error(f"the update is not of the form W v + b in the per-sample tensors (term {term})",
                              hint="learned linear maps need an update that is linear in the variables, "
                                   "with every variable on the right of its products")
        size = last.shape[0]
        maps.setdefault(last, []).append(coeff * (sp.MatMul(*matrices[:-1]) if len(matrices) > 1 else sp.Identity(size)))
    return {v: sp.MatAdd(*parts).doit() if len(parts) > 1 else parts[0] for v, parts in maps.items()}, rest


def is_scaled_identity(matrix: sp.MatrixExpr) -> bool:
    return not any(isinstance(s, sp.MatrixSymbol) for s in matrix.atoms(sp.MatrixSymbol))


def learned_maps(b: LayerBuilder, argument: sp.MatrixExpr, per_sample: set[sp.MatrixSymbol],
                 classical: dict[sp.Symbol, sp.Expr], where: Located, tying: str) -> sp.MatrixExpr:
    """Replace each map of ``argument`` that involves the constants by a trainable ``W_v``.

    ``classical`` substitutes the classical value of hyperparameters that the maps absorb
    (the step ``t`` in ``I - t A^T A``), so each ``W_v`` starts at its classical value.
    """
    maps, rest = linear_maps(argument, per_sample, where)
    terms: list[sp.MatrixExpr] = list(rest)
    learned = 0
    for v in sorted(maps, key=lambda s: s.name, reverse=True):
        coeff = maps[v]
        if is_scaled_identity(coeff):
            terms.append(coeff * v)
            continue
        init = coeff.xreplace(classical)
        parameter = b.matrix_parameter(f"W_{v.name}", init, tying,
                                       f"linear map applied to {v.name}, initialised to its derived value")
        terms.append(parameter.symbol * v)
        learned += 1
    if not learned:
        raise where.error("this update has no linear map built from the constants to learn",
                          hint="learn.objective applies when the update multiplies the variables by matrices such as A")
    return sp.MatAdd(*terms) if len(terms) > 1 else terms[0]


def factor_gradient(gradient: sp.MatrixExpr, where: Located) -> tuple[sp.MatrixExpr, sp.MatrixExpr]:
    """``gradient = F r`` with ``F`` the leftmost matrix shared by every term (``A^T`` in
    ``A^T (A x - y)``); ``r`` is the residual the coupled and analytic maps act on."""
    expanded = sp.expand(gradient)
    terms = expanded.args if isinstance(expanded, sp.MatAdd) else (expanded,)
    lefts: list[sp.MatrixExpr | None] = []
    rests: list[sp.MatrixExpr] = []
    for term in terms:
        coeff, matrices = split_factors(term)
        if len(matrices) < 2:
            lefts.append(None)
            break
        lefts.append(matrices[0])
        rests.append(coeff * sp.MatMul(*matrices[1:]) if len(matrices) > 2 else coeff * matrices[1])
    if any(left is None or left != lefts[0] for left in lefts):
        raise where.error("coupled and analytic maps need a gradient of the form F r(x), e.g. A.T @ (A @ x - y)",
                          hint="use untied or tied for this objective")
    residual = sp.MatAdd(*rests).doit() if len(rests) > 1 else rests[0]
    return lefts[0], residual


def coupled_argument(b: LayerBuilder, point: sp.MatrixSymbol, gradient: sp.MatrixExpr, step: Parameter,
                     where: Located) -> sp.MatrixExpr:
    """LISTA-CP: ``point - W_k r(point)`` with ``W_k`` initialised to ``t F``."""
    left, residual = factor_gradient(gradient, where)
    weight = b.matrix_parameter("W", step.init * left, "per_layer",
                                "coupled weight W_k (state map I - W_k A), initialised to t A^T")
    return point - weight.symbol * residual


def analytic_argument(b: LayerBuilder, point: sp.MatrixSymbol, gradient: sp.MatrixExpr, step: Parameter,
                      where: Located) -> sp.MatrixExpr:
    """ALISTA: ``point - step_k W^T r(point)`` with ``W`` computed from ``A`` at build time."""
    left, residual = factor_gradient(gradient, where)
    if not (isinstance(left, sp.Transpose) and isinstance(left.arg, sp.MatrixSymbol)
            and b.ns.roles.get(left.arg.name) == "constant"):
        raise where.error(f"analytic weights replace A.T in A.T @ r(x) for a constant A; here the gradient starts with {left}",
                          hint="use coupled or untied")
    matrix = left.arg
    weight = b.derive("W_analytic", AnalyticWeight(matrix),
                      f"analytic weight of {matrix.name}: argmin ||W^T {matrix.name}||_F s.t. diag(W^T {matrix.name}) = 1",
                      b.shape_of(matrix))
    return point - step.symbol * weight.symbol.T * residual
