"""The first layer, specialised to the states that start at zero.

Most unrolled methods start their iterates at zero (LISTA's ``x``, ISTA's ``x``, a primal-dual
method's dual variable), so in the first layer every term that multiplies such a state is
exactly zero: LISTA's ``W_x @ x``, ISTA's ``A @ x``. Computing them costs a full product (for
LISTA, 1/24 of the network's bytes and FLOPs) and yields nothing. :func:`first_layer` returns the
layer's steps with those terms dropped, for the backends that emit the first layer on its own
(the Numba kernel); the PyTorch module and the NumPy reference keep the plain loop, against
which the tests check the kernel.

Only terms that are zero for any parameter value are dropped: a product (``MatMul``) with a
zero-state factor and no scalar factor that reads a zero state (``x / norm(x)`` is not zero
but NaN), and sums of such terms. Any other node that reads a zero state (an elementwise map,
an inverse) keeps reading it: the kernel holds the zeros, so that is correct, just not cheaper.
A state stays zero until a step writes it.
"""

from __future__ import annotations

from dataclasses import replace

import sympy as sp

from unfoldgen.ir.mathtext import math_text
from unfoldgen.ir.program import ApplyProx, Assign, Program, Step, prox_comment, step_expressions


def first_layer(program: Program) -> tuple[Step, ...]:
    """The first layer's steps without the terms that read a zero state, or ``()`` when no
    matrix product drops out (then the first layer is the loop's: emitting a layer twice to
    save an elementwise addition, as RPCA's ``L + S - Y`` would, doubles the code to compile)."""
    zero = starting_at_zero(program)
    steps: list[Step] = []
    for step in program.steps:
        steps.append(_without_zero_terms(step, zero))
        if not _writes_zero(step, zero):
            zero.discard(step.target.name)
    saved = sum(map(_products, program.steps)) - sum(map(_products, steps))
    return tuple(steps) if saved > 0 else ()


def _products(step: Step) -> int:
    """The matrix products (two or more matrix factors: ``W @ x``, ``A.T @ r``) a step computes."""
    return sum(1 for expr in step_expressions(step) for node in sp.preorder_traversal(expr)
               if isinstance(node, sp.MatMul) and sum(isinstance(a, sp.MatrixExpr) for a in node.args) > 1)


def starting_at_zero(program: Program) -> set[str]:
    """The states that hold zeros when the first layer starts: those without an initial value
    that no initialisation step writes."""
    written = {step.target.name for step in program.init_steps}
    return {s.name for s in program.states if s.init is None and s.name not in written}


def overwritten_at_zero(program: Program, first: tuple[Step, ...]) -> set[str]:
    """The zero-start states that the ``first`` layer writes before it reads them: their
    zeros are never read, so the kernel does not fill them (LISTA's ``x``)."""
    zero, overwritten = starting_at_zero(program), set()
    for step in first:
        zero -= {s.name for expr in step_expressions(step) for s in expr.free_symbols}
        if step.target.name in zero:
            overwritten.add(step.target.name)
            zero.discard(step.target.name)
    return overwritten


def _without_zero_terms(step: Step, zero: set[str]) -> Step:
    if isinstance(step, Assign):
        expr, is_zero = without_zero_terms(step.expr, zero)
        if is_zero or expr == step.expr:
            return step  # all zero: the step writes the zeros it reads (the next steps see them)
        return replace(step, expr=expr, comment=f"{step.target.name} = {math_text(expr)}")
    if isinstance(step, ApplyProx):
        argument, is_zero = without_zero_terms(step.argument, zero)
        if is_zero or argument == step.argument:
            return step
        comment = prox_comment(step.target, step.prox, argument, step.values, step.support)
        return replace(step, argument=argument, comment=comment)
    return step  # a network reads its inputs as they are


def _writes_zero(step: Step, zero: set[str]) -> bool:
    """Whether ``step`` writes zeros whatever the parameters: an assignment all of whose terms
    read zero states (FISTA's first momentum ``x + beta*(x - x_prev)``)."""
    return isinstance(step, Assign) and without_zero_terms(step.expr, zero)[1]


def without_zero_terms(expr: sp.Basic, zero: set[str]) -> tuple[sp.Basic, bool]:
    """``expr`` with its terms that are zero (given the ``zero`` states) dropped, and whether
    all of it is zero (then ``expr`` comes back as it is)."""
    if isinstance(expr, sp.MatrixSymbol):
        return expr, expr.name in zero
    if isinstance(expr, sp.MatMul):
        return _product(expr, zero)
    if isinstance(expr, sp.MatAdd):
        terms = [without_zero_terms(term, zero) for term in expr.args]
        kept = [term for term, is_zero in terms if not is_zero]
        if not kept:
            return expr, True
        return _rebuilt(expr, kept), False
    if isinstance(expr, sp.Transpose):
        inner, is_zero = without_zero_terms(expr.arg, zero)
        return (expr, True) if is_zero else (sp.Transpose(inner), False)
    return expr, False


def _product(expr: sp.MatMul, zero: set[str]) -> tuple[sp.Basic, bool]:
    scalars = [a for a in expr.args if not isinstance(a, sp.MatrixExpr)]
    if any(s.name in zero for scalar in scalars for s in scalar.free_symbols):
        return expr, False  # a scalar of a zero state may be 0/0
    factors = [without_zero_terms(a, zero) if isinstance(a, sp.MatrixExpr) else (a, False) for a in expr.args]
    if any(is_zero for _, is_zero in factors):
        return expr, True
    return _rebuilt(expr, [factor for factor, _ in factors]), False


def _rebuilt(expr: sp.MatAdd | sp.MatMul, args: list[sp.Basic]) -> sp.Basic:
    """``expr`` as it was if ``args`` are its own, else rebuilt from them: a sum of one term is
    that term, and a product's scalars, its factors' included, become one coefficient (the
    signs of ``-W @ (-y)`` cancel), while its matrix factors keep their grouping
    (``inverse @ (A.T @ y)`` is a matrix-vector product twice, never a matrix-matrix one)."""
    if tuple(args) == expr.args:
        return expr
    if isinstance(expr, sp.MatAdd):
        return args[0] if len(args) == 1 else sp.MatAdd(*args)
    coefficient, matrices = sp.Integer(1), []
    for factor in args:
        if isinstance(factor, sp.MatMul):
            coefficient *= sp.Mul(*(a for a in factor.args if not isinstance(a, sp.MatrixExpr)))
            inner = [a for a in factor.args if isinstance(a, sp.MatrixExpr)]
            matrices.append(inner[0] if len(inner) == 1 else sp.MatMul(*inner))
        elif isinstance(factor, sp.MatrixExpr):
            matrices.append(factor)
        else:
            coefficient *= factor
    if coefficient == 1 and len(matrices) == 1:
        return matrices[0]
    return sp.MatMul(*([] if coefficient == 1 else [coefficient]), *matrices)
