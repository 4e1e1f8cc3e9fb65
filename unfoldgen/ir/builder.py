"""The bookkeeping every lowering shares: fresh names, states, parameters and the learn section.

A :class:`LayerBuilder` collects what one method lays out (states, temporaries, steps) and
what the paradigms add (parameters, derived tensors, networks), then assembles the
:class:`Program`. Hyperparameters are created through :meth:`LayerBuilder.hyperparameter`, which
reads their tying from ``learn.hyperparameters``; keys left unread at the end are reported.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable

import sympy as sp

from unfoldgen.errors import SpecError
from unfoldgen.ir.mathtext import math_text
from unfoldgen.ir.program import (
    ApplyNetwork,
    ApplyProx,
    Assign,
    Derived,
    Init,
    Network,
    Parameter,
    Program,
    State,
    Step,
    prox_comment,
    step_expressions,
)
from unfoldgen.ir.update import Update
from unfoldgen.names import around
from unfoldgen.operators.linear import TableMatrix
from unfoldgen.spec.model import Located, Spec
from unfoldgen.symbolic.language import Namespace
from unfoldgen.symbolic.objective import SmoothPart
from unfoldgen.symbolic.prox import NonsmoothTerm, ProxOperator

# Names the emitted code itself uses as locals or helpers.
EMITTED_NAMES = {"hidden", "reference", "generator", "array", "layers", "values"}


class LayerBuilder:
    def __init__(self, spec: Spec, ns: Namespace, smooth: SmoothPart | None,
                 proxes: dict[str, ProxOperator], composites: list[NonsmoothTerm] | None = None) -> None:
        self.spec = spec
        self.ns = ns
        self.smooth = smooth
        self.proxes = proxes
        self.composites = composites or []  # terms h(K x), for the methods that split K x off
        self.taken = set(spec.dims) | set(ns.roles) | set(spec.params) | EMITTED_NAMES
        self.taken |= {prox.function_name for prox in proxes.values()}
        self.learn = dict(spec.learn.hyperparameters)
        self.offered: list[str] = []  # hyperparameter names this network has (for hints)
        self.states: list[State] = []
        self.temporaries: list[State] = []
        self.steps: list[Step | Update] = []  # updates until the paradigm passes make them concrete
        self.init_steps: list[Step] = []
        self.parameters: list[Parameter] = []
        self.derived: list[Derived] = []
        self.networks: list[Network] = []
        self.used_proxes: list[ProxOperator] = []
        self.learned_weights: dict[sp.Symbol, Parameter] = {}  # objective: weights, by spec param
        self.learned_kernels: dict[sp.MatrixSymbol, Parameter] = {}  # objective: convolution kernels

    # -- names and tensors ------------------------------------------------------------------
    def fresh(self, name: str, raw: bool = False) -> str:
        """``name``, with '_' appended until it is free: the compiler's names move around the
        spec's. ``raw``: ``<name>_raw`` must be free too (the storage of a positive parameter)."""
        name = around(name, self.taken, ("_raw",) if raw else ())
        self.taken |= {name, f"{name}_raw"} if raw else {name}
        return name

    def variable(self, name: str) -> sp.MatrixSymbol:
        return self.ns.matrix_symbol(name)

    def shape_of(self, symbol: sp.MatrixExpr) -> tuple[int, ...]:
        rows, cols = (int(sp.sympify(d).subs(self.ns.dim_values())) for d in symbol.shape)
        return (rows,) if cols == 1 else (rows, cols)

    def state(self, symbol: sp.MatrixSymbol, init: sp.MatrixExpr | None, description: str) -> sp.MatrixSymbol:
        self.states.append(State(symbol, self.shape_of(symbol), init, description))
        return symbol

    def temporary(self, name: str, like: sp.MatrixExpr, description: str) -> sp.MatrixSymbol:
        symbol = sp.MatrixSymbol(self.fresh(name), *like.shape)
        self.temporaries.append(State(symbol, self.shape_of(symbol), None, description))
        return symbol

    def suffix(self, name: str, variable: str) -> str:
        """``step`` for a single variable, ``step_L`` when several variables have one each."""
        return name if len(self.spec.variables) == 1 and variable in self.spec.variables else f"{name}_{variable}"

    # -- steps ------------------------------------------------------------------------------
    def assign(self, target: sp.MatrixSymbol, expr: sp.MatrixExpr, comment: str | None = None) -> None:
        self.steps.append(Assign(target, expr, comment or f"{target.name} = {math_text(expr)}"))

    def update(self, update: Update) -> None:
        """A step the paradigm passes may rewrite (:mod:`unfoldgen.ir.paradigms`)."""
        self.steps.append(update)

    def rewrite_updates(self, rewrite: Callable[[Update], None]) -> None:
        """Call ``rewrite`` on each update in order; the steps it emits through the builder
        (the update itself again, or others) take the update's place."""
        steps, self.steps = self.steps, []
        for step in steps:
            if isinstance(step, Update):
                rewrite(step)
            else:
                self.steps.append(step)

    def per_sample_symbols(self) -> set[sp.MatrixSymbol]:
        """The tensors that differ from sample to sample: inputs, states and temporaries."""
        inputs = {self.ns.matrix_symbol(n) for n in self.spec.inputs if self.spec.inputs[n].shape}
        return inputs | {s.symbol for s in (*self.states, *self.temporaries)}

    def apply_prox(self, target: sp.MatrixSymbol, prox: ProxOperator, argument: sp.MatrixExpr,
                   values: tuple[sp.Expr, ...], support: tuple[int, ...] | None = None) -> None:
        comment = prox_comment(target, prox, argument, values, support)
        self.steps.append(ApplyProx(target, prox, argument, values, comment, support))
        if support is None and prox not in self.used_proxes:
            self.used_proxes.append(prox)

    def apply_network(self, target: sp.MatrixSymbol, network: Network, inputs: tuple[sp.MatrixSymbol, ...],
                      base: sp.MatrixSymbol) -> None:
        args = ", ".join(i.name for i in inputs)
        comment = f"{target.name} = {base.name} + {network.name}_k({args})"
        self.steps.append(ApplyNetwork(target, network, inputs, base, comment))

    # -- parameters -------------------------------------------------------------------------
    def tying(self, name: str) -> Located | None:
        self.offered.append(name)
        return self.learn.pop(name, None)

    def hyperparameter(self, name: str, init: sp.Expr | tuple[sp.Expr, ...], description: str,
                       positive: bool = True, varies_per_layer: bool = False) -> Parameter:
        """A scalar of the iteration; trainable when ``learn.hyperparameters`` says so."""
        where = self.tying(name)
        tying = where.text if where is not None else "fixed"
        if varies_per_layer and tying == "shared":
            assert where is not None
            raise where.error(f"'{name}' differs from layer to layer in the classical algorithm, so it cannot be shared",
                              hint="use per_layer or fixed")
        stored = "per_layer" if (tying == "per_layer" or varies_per_layer) else "shared"
        trainable = tying != "fixed"
        if trainable and positive:
            self.check_positive(name, init, where)
        # learn.hyperparameters names it by the language's word; stored, it moves around the spec's names
        parameter = Parameter(self.fresh(name, raw=positive and trainable), (), stored, trainable, init, description,
                              positive and trainable)
        self.parameters.append(parameter)
        return parameter

    def check_positive(self, name: str, init: sp.Expr | tuple[sp.Expr, ...], where: Located | None) -> None:
        values = {self.ns.params[p]: v for p, v in self.spec.params.items()}
        for value in init if isinstance(init, tuple) else (init,):
            number = value.subs(values)
            if number.is_number and not float(number) > 0:
                message = f"'{name}' starts at {number}, but a learned {name} is kept positive (softplus)"
                raise (where.error(message, hint="give it a positive classical value") if where
                       else SpecError(message))

    def matrix_parameter(self, name: str, init: sp.MatrixExpr, tying: str, description: str) -> Parameter:
        shape = self.shape_of(init)
        if len(shape) == 1:
            shape = (shape[0], 1)
        parameter = Parameter(self.fresh(name), shape, tying, True, init, description)
        self.parameters.append(parameter)
        return parameter

    def network_parameter(self, name: str, shape: tuple[int, ...], per_layer: bool, init: Init,
                          description: str) -> Parameter:
        parameter = Parameter(self.fresh(name), shape, "per_layer" if per_layer else "shared", True, init, description)
        self.parameters.append(parameter)
        return parameter

    def derive(self, name: str, expr: sp.Basic, description: str, shape: tuple[int, ...] = ()) -> Derived:
        if not isinstance(expr, sp.MatrixExpr):  # a number such as 2 cos(pi/128) is printed as its value
            expr = expr.xreplace(self.ns.dim_values())
            if expr.is_number and not expr.is_Rational:
                expr = sp.Float(expr.evalf(20), 17)
        per_layer = any(p.per_layer and expr.has(p.symbol) for p in self.parameters)
        derived = Derived(self.fresh(name), expr, description, shape, per_layer)
        self.derived.append(derived)
        return derived

    # -- assembly ---------------------------------------------------------------------------
    def reject_unknown_learn_keys(self) -> None:
        if not self.learn:
            return
        name, where = next(iter(self.learn.items()))
        raise where.error(f"'{name}' is not a hyperparameter of this network",
                          hint="hyperparameters here: " + ", ".join(sorted(set(self.offered))))

    def materialize_tables(self) -> None:
        """Each dense table (the DCT matrix) becomes a derived tensor, computed once when the
        model is built; the steps read it like a constant."""
        tables: dict[sp.Basic, sp.MatrixSymbol] = {}
        for step in (*self.init_steps, *self.steps):
            for expr in step_expressions(step) if not isinstance(step, Update) else ():
                for table in sorted(expr.atoms(TableMatrix), key=str):
                    if table not in tables:
                        shape = self.shape_of(table)
                        sizes = "_".join(str(s) for s in shape[: len(table.args)])
                        derived = self.derive(f"{table.stem}_{sizes}", table, table.description(shape), shape)
                        tables[table] = sp.MatrixSymbol(derived.name, *table.shape)
        if not tables:
            return
        self.steps = [_replace_in_step(s, tables) if not isinstance(s, Update) else s for s in self.steps]
        self.init_steps = [_replace_in_step(s, tables) for s in self.init_steps]
        self.states = [State(s.symbol, s.shape, s.init.xreplace(tables) if s.init is not None else None, s.description)
                       for s in self.states]

    def program(self, outputs: tuple[str, ...], derivation: dict[str, object], method_title: str) -> Program:
        self.reject_unknown_learn_keys()
        steps = tuple(s for s in self.steps if not isinstance(s, Update))
        assert len(steps) == len(self.steps), "the paradigm passes make every update concrete"
        self.steps = list(steps)
        self.materialize_tables()
        steps = tuple(s for s in self.steps if not isinstance(s, Update))
        read = self.read_names()
        _reject_unread_trainable(self.parameters, read, self.spec)
        # A fixed parameter no layer reads only shaped initial values (the step inside learned maps).
        parameters = tuple(p for p in self.parameters if p.trainable or p.name in read)
        spec = self.spec
        return Program(
            name=spec.name, description=spec.description, method=spec.algorithm.method, method_title=method_title,
            layers=spec.algorithm.layers, dims=dict(spec.dims),
            inputs={n: self.ns.size(d.shape) for n, d in spec.inputs.items()},
            constants={n: self.ns.size(d.shape) for n, d in spec.constants.items()},
            params=dict(spec.params), states=tuple(self.states), temporaries=tuple(self.temporaries),
            derived=tuple(self.derived), parameters=parameters, steps=steps,
            outputs=outputs, proxes=tuple(self.used_proxes), networks=tuple(self.networks),
            init_steps=tuple(self.init_steps), derivation=derivation,
            spec_hash=hashlib.sha256(spec.text.encode()).hexdigest(), seed=spec.learn.seed,
            dtype=spec.dtype,
        )

    def read_names(self) -> set[str]:
        """Every name the steps read, directly or through a derived tensor."""
        read: set[str] = set()
        for step in (*self.init_steps, *self.steps):
            if isinstance(step, Update):
                continue
            if isinstance(step, ApplyNetwork):
                read.update(step.network.parameter_names())
            for expr in step_expressions(step):
                read |= {s.name for s in expr.free_symbols}
        for derived in self.derived:
            if derived.name in read:
                read |= {s.name for s in derived.expr.free_symbols}
        return read


def _replace_in_step(step: Step, replacements: dict[sp.Basic, sp.MatrixSymbol]) -> Step:
    if isinstance(step, Assign):
        return dataclasses.replace(step, expr=step.expr.xreplace(replacements))
    if isinstance(step, ApplyProx):
        return dataclasses.replace(step, argument=step.argument.xreplace(replacements))
    return step


def _reject_unread_trainable(parameters: list[Parameter], read: set[str], spec: Spec) -> None:
    """A learned parameter that no step reads would never train: say so instead."""
    for parameter in parameters:
        if parameter.trainable and parameter.name not in read:
            where = spec.learn.hyperparameters.get(parameter.name) or spec.learn.objective
            message = (f"'{parameter.name}' is learned, but no layer reads it: "
                       "with learned linear maps the step lives inside the maps")
            hint = f"drop '{parameter.name}' from learn.hyperparameters (or set it to fixed)"
            raise where.error(message, hint) if where else SpecError(message, hint=hint)
