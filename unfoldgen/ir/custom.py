"""``method: custom``: an iteration written out in the spec, for algorithms the objective does
not determine (e.g. factorised robust PCA / ScaledGD).

Each step is ``target: expression`` in the spec's safe expression language, plus:

- a prox as the whole right-hand side: ``soft_threshold(M, theta)``, ``project_nonneg(M)``,
  ``project_box(M, lo, hi)``, ``singular_value_threshold(M, theta)``, ``block_shrink(v, theta)``;
- ``inv(M)`` inside expressions, for small square matrices (``V.T @ V``);
- in ``initialize`` only: ``svd_left(M, r)`` and ``svd_right(M, r)``, the factors
  ``U_r S_r^{1/2}`` and ``V_r S_r^{1/2}`` of the rank-``r`` truncated SVD of ``M``.

The declared hyperparameters are parameters like any other: ``learn.hyperparameters`` makes
them trainable per layer or shared, so the untrained network is the written algorithm.
"""

from __future__ import annotations

import ast

import sympy as sp

from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.gradient_methods import initial_value
from unfoldgen.operators.prox import HELPERS
from unfoldgen.spec.model import CustomStep, Located
from unfoldgen.symbolic.language import Parser, Value, parse_scalar, parse_tree, shape_text
from unfoldgen.symbolic.nodes import LowRankFactor
from unfoldgen.symbolic.prox import ProxOperator
from unfoldgen.symbolic.prox.compose import Hyper, ProxStage

INIT_FUNCTIONS = ("svd_left", "svd_right")


class CustomParser(Parser):
    """The spec language plus ``inv`` and, in ``initialize``, the truncated-SVD factors."""

    def call_inv(self, node: ast.AST, args: list[Value]) -> Value:
        self.expect_args(node, args, 1, "inv")
        (m,) = args
        if len(m.shape) != 2 or self.ns.spec.size_of(m.shape[0]) != self.ns.spec.size_of(m.shape[1]):
            raise self.error(node, f"inv() needs a square matrix, got {shape_text(m.shape)}")
        return Value(sp.Inverse(m.expr), m.shape)

    def lowrank(self, node: ast.Call, side: int) -> Value:
        name = "svd_left" if side == 0 else "svd_right"
        if len(node.args) != 2:
            raise self.error(node, f"{name}() takes 2 arguments (a matrix and a rank)")
        matrix = self.visit(node.args[0])
        rank_node = node.args[1]
        if isinstance(rank_node, ast.Name) and rank_node.id in self.ns.dims:
            rank: str | int = rank_node.id
        elif isinstance(rank_node, ast.Constant) and isinstance(rank_node.value, int) and not isinstance(rank_node.value, bool):
            rank = rank_node.value
        else:
            raise self.error(rank_node, f"the rank of {name}() must be a dim or an integer")
        if len(matrix.shape) != 2:
            raise self.error(node, f"{name}() needs a matrix")
        rows = matrix.shape[side]
        size = self.ns.spec.size_of(rank)
        if not 1 <= size <= min(self.ns.size(matrix.shape)):
            raise self.error(rank_node, f"the rank {size} must be between 1 and the smaller side of the matrix")
        return Value(LowRankFactor(matrix.expr, self.ns.dim(rank), sp.Integer(side)), (rows, rank))

    def visit_Call(self, node: ast.Call) -> Value:
        if isinstance(node.func, ast.Name) and node.func.id in INIT_FUNCTIONS and "svd" in self.functions:
            return self.lowrank(node, 0 if node.func.id == "svd_left" else 1)
        return super().visit_Call(node)


def lower_custom(b: LayerBuilder) -> tuple[str, ...]:
    custom = b.spec.algorithm.custom
    assert custom is not None
    learn = b.spec.learn
    for section in (learn.objective, learn.support_selection, learn.correction, learn.prox):
        if section is not None:
            where = section if isinstance(section, Located) else section.where
            raise where.error("a custom iteration learns its declared hyperparameters only",
                              hint="write the learned map or network into the steps, or use a derived method")
    scalars: dict[str, sp.Expr] = {}
    for name, where in custom.hyperparameters.items():
        value = parse_scalar(b.ns, where, {})
        parameter = b.hyperparameter(name, value, f"hyperparameter {name} of the custom iteration",
                                     positive=name in custom.positive)
        scalars[name] = parameter.symbol
    for var in b.spec.variables:
        b.state(b.variable(var), initial_value(b, var), f"the variable {var}")
    for step in custom.initialize:
        _check_no_per_layer(b, step)
        _lower_step(b, step, scalars, initialize=True)
    b.init_steps, b.steps = b.steps, []
    for step in custom.update:
        _lower_step(b, step, scalars, initialize=False)
    return custom.outputs


def _check_no_per_layer(b: LayerBuilder, step: CustomStep) -> None:
    for parameter in b.parameters:
        if parameter.per_layer and parameter.name in _names(step.expr):
            raise step.expr.error(f"'{parameter.name}' is learned per layer, so it has no value before the first layer",
                                  hint="declare a separate hyperparameter for the initialization (e.g. zeta0)")


def _names(where: Located) -> set[str]:
    return {node.id for node in ast.walk(parse_tree(where)) if isinstance(node, ast.Name)}


def _parser(b: LayerBuilder, where: Located, scalars: dict[str, sp.Expr], initialize: bool) -> CustomParser:
    functions = ("inv", "svd") if initialize else ("inv",)
    return CustomParser(b.ns, where, allowed_roles=("input", "constant", "variable", "param", "temporary"),
                        functions=functions, scalars=scalars, scalar_functions=True)


def _lower_step(b: LayerBuilder, step: CustomStep, scalars: dict[str, sp.Expr], initialize: bool) -> None:
    where = step.expr
    tree = parse_tree(where)
    parser = _parser(b, where, scalars, initialize)
    call = tree.body
    if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in HELPERS:
        value, prox, values = _prox_call(b, parser, call, step.target)
    else:
        value, prox, values = parser.visit(call), None, ()
    if value.is_scalar:
        raise where.error(f"'{step.target}' must be a vector or a matrix, got a scalar")
    target = _target(b, step, value)
    if prox is None:
        b.assign(target, value.expr)
    else:
        b.apply_prox(target, prox, value.expr, values)


def _target(b: LayerBuilder, step: CustomStep, value: Value) -> sp.MatrixSymbol:
    where = step.expr
    if step.target in b.spec.variables:
        target = b.variable(step.target)
        if b.ns.size(value.shape) != b.ns.size(b.spec.variables[step.target].shape):
            raise where.error(f"the value has shape {shape_text(value.shape)} but '{step.target}' is "
                              f"{shape_text(b.spec.variables[step.target].shape)}")
        return target
    existing = b.ns.tensors.get(step.target)
    if existing is not None:
        if b.ns.size(existing.shape) != b.ns.size(value.shape):
            raise where.error(f"'{step.target}' was {shape_text(existing.shape)} and is now {shape_text(value.shape)}")
        return existing.expr
    symbol = b.temporary(step.target, value.expr, f"temporary {step.target} of the custom iteration")
    b.ns.tensors[step.target] = Value(symbol, value.shape)
    b.ns.roles[step.target] = "temporary"
    return symbol


def _prox_call(b: LayerBuilder, parser: CustomParser, node: ast.Call,
               target: str) -> tuple[Value, ProxOperator, tuple[sp.Expr, ...]]:
    name = node.func.id  # type: ignore[attr-defined]
    call = HELPERS[name]
    if node.keywords or len(node.args) != 1 + len(call.args):
        raise parser.error(node, f"{name}() takes {1 + len(call.args)} argument(s): the value"
                                 + "".join(f", {h}" for h in call.args))
    value = parser.visit(node.args[0])
    needed = "matrix" if call.matrix_only else "vector" if call.vector_only else "vector or matrix"
    if value.is_scalar or (call.matrix_only and len(value.shape) != 2) or (call.vector_only and len(value.shape) != 1):
        raise parser.error(node, f"{name}() needs a {needed}")
    values = []
    for arg in node.args[1:]:
        scalar = parser.visit(arg)
        if not scalar.is_scalar:
            raise parser.error(arg, f"the {name}() parameters are scalars")
        values.append(scalar.expr)
    hypers = tuple(Hyper(h, sp.Integer(0), f"{h} of {name}", b.ns.unused(h)) for h in call.args)
    stage = ProxStage(call, tuple(h.symbol for h in hypers))
    prox = ProxOperator(target, (), (stage,), hypers, call.elementwise,
                        f"{name}(v{''.join(', ' + h for h in call.args)})", b.ns.unused(f"prox_{target}"))
    existing = next((p for p in b.used_proxes if p.variable == target), None)
    if existing is not None and existing != prox:
        raise parser.error(node, f"'{target}' is already the result of another prox in this iteration",
                           hint="assign this one to a new temporary name")
    return value, prox, tuple(values)
