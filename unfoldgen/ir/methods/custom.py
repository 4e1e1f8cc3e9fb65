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
from dataclasses import dataclass
from typing import Any, ClassVar

import sympy as sp

from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.methods.base import Method
from unfoldgen.ir.methods.gradient import initial_value
from unfoldgen.ir.paradigms import Paradigm
from unfoldgen.ir.update import Update
from unfoldgen.operators.prox import HELPERS
from unfoldgen.spec.model import Located, Spec, VariableDecl
from unfoldgen.spec.reader import SpecReader
from unfoldgen.symbolic.language import Parser, Value, parse_scalar, parse_tree, shape_text
from unfoldgen.symbolic.nodes import LowRankFactor
from unfoldgen.symbolic.prox import ProxOperator
from unfoldgen.symbolic.prox.compose import Hyper, ProxStage

INIT_FUNCTIONS = ("svd_left", "svd_right")


@dataclass(frozen=True)
class CustomStep:
    """``target = expression`` in ``initialize`` or ``update``."""

    target: str
    expr: Located


@dataclass(frozen=True)
class CustomAlgorithm:
    """The iteration as written: ``hyperparameters`` are its scalars with their classical values
    (learnable like any other); ``initialize`` runs once, ``update`` is one layer; a target
    that is not a variable is a temporary of the layer."""

    hyperparameters: dict[str, Located]
    positive: frozenset[str]
    initialize: tuple[CustomStep, ...]
    update: tuple[CustomStep, ...]
    outputs: tuple[str, ...]


class Custom(Method):
    name = "custom"
    title = "a custom iteration"
    summary = "the steps written in algorithm.initialize and algorithm.update"
    keys: ClassVar[dict[str, str]] = {
        "hyperparameters": "the iteration's scalars with their classical values",
        "initialize": "steps run once before the first layer",
        "update": "the steps of one layer",
        "outputs": "the variables the network returns",
    }
    paradigms = frozenset({Paradigm.HYPERPARAMETERS})  # networks and maps are written into the steps
    uses_objective = False

    def lower(self, b: LayerBuilder) -> tuple[str, ...]:
        custom = read_custom(b.spec)
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
        b.init_steps, b.steps = [s for s in b.steps if not isinstance(s, Update)], []
        for step in custom.update:
            _lower_step(b, step, scalars, initialize=False)
        return custom.outputs


def read_custom(spec: Spec) -> CustomAlgorithm:
    """The ``algorithm`` keys of a custom iteration, checked against the spec's names."""
    reader, algorithm, variables = spec.algorithm.reader, spec.algorithm.options, spec.variables
    taken = {*spec.dims, *spec.inputs, *spec.constants, *spec.params, *spec.variables}
    path: tuple[str | int, ...] = ("algorithm",)
    hyper: dict[str, Located] = {}
    positive: set[str] = set()
    hyper_path = path + ("hyperparameters",)
    for key, decl in reader.mapping(algorithm.get("hyperparameters"), hyper_path, "hyperparameters").items():
        here = hyper_path + (key,)
        reader.name(key, here, taken)
        if isinstance(decl, dict):
            reader.check_keys(decl, here, {"value": "the classical value", "positive": "keep it > 0 when learned"})
            if "value" not in decl:
                raise reader.error(here, f"hyperparameter '{key}' has no value", hint="e.g. eta: {value: 0.5, positive: true}")
            if decl.get("positive", True) is True:
                positive.add(key)
            decl = decl["value"]
        else:
            positive.add(key)
        hyper[key] = reader.text(decl, here, "a hyperparameter value")
    initialize = _read_steps(reader, algorithm.get("initialize"), path + ("initialize",), variables, taken, False)
    update = _read_steps(reader, algorithm.get("update"), path + ("update",), variables, taken, True)
    if not update:
        raise reader.error(path, "a custom algorithm needs 'update' steps",
                           hint="e.g. update: [{x: x - eta * A.T @ (A @ x - y)}]")
    outputs_value = algorithm.get("outputs", list(variables))
    if not isinstance(outputs_value, list) or not outputs_value:
        raise reader.error(path + ("outputs",), "outputs must be a list of variables")
    for i, name in enumerate(outputs_value):
        if name not in variables:
            raise reader.error(path + ("outputs", i), f"'{name}' is not a variable",
                               hint="declared variables: " + ", ".join(variables))
    return CustomAlgorithm(hyper, frozenset(positive), initialize, update, tuple(outputs_value))


def _read_steps(reader: SpecReader, value: Any, path: tuple[str | int, ...], variables: dict[str, VariableDecl],
                taken: set[str], temporaries_allowed: bool) -> tuple[CustomStep, ...]:
    if value is None:
        return ()
    if isinstance(value, dict):
        value = [{k: v} for k, v in value.items()]
    if not isinstance(value, list):
        raise reader.error(path, "steps must be a list of 'name: expression' entries", hint="e.g. - x: x - eta * g")
    steps = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise reader.error(path + (i,), "each step is one 'name: expression' entry", hint="e.g. - x: x - eta * g")
        ((target, expr),) = entry.items()
        here = path + (i, target)
        if target not in variables:
            if not temporaries_allowed:
                raise reader.error(here, f"'{target}' is not a variable", hint="initialize sets variables only")
            if not reader.is_new_name(target, taken):
                raise reader.error(here, f"'{target}' cannot name a temporary",
                                   hint="use a new name that is not a declared dim, input, constant or param")
        steps.append(CustomStep(str(target), reader.text(expr, here, "a step")))
    return tuple(steps)

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
