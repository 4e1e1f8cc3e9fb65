"""The math training reads from the spec besides the network: how inputs are made from the
truth, how the outputs estimate the truth, and the objective's value (the unsupervised loss).

All of it is parsed once by the whitelisting parser and evaluated on tensors by
:mod:`unfoldgen.training.expressions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sympy as sp
import torch

from unfoldgen.errors import SpecError
from unfoldgen.ir import Program
from unfoldgen.spec.model import DataSpec, Located, Spec
from unfoldgen.symbolic.language import Namespace, Parser, parse_smooth, shape_text
from unfoldgen.symbolic.prox import NonsmoothTerm, parse_nonsmooth_term
from unfoldgen.symbolic.prox.terms import ELEMENT
from unfoldgen.training.expressions import Value, as_matrix, evaluate, from_matrix

Tensors = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class TruthTensor:
    name: str
    shape: tuple[int, ...]
    estimate: sp.MatrixExpr | None  # None: the network outputs it directly


class TrainingProblem:
    """The spec's data models and objective, ready to evaluate on batches."""

    def __init__(self, spec: Spec, program: Program) -> None:
        self.spec = spec
        self.program = program
        self.ns = Namespace(spec)
        self.param_values = {self.ns.params[n]: v for n, v in spec.params.items()}
        data = spec.data
        self.truth = self._truth_tensors(data) if data else {}
        self.measurements = self._measurements(data) if data else {}
        self.smooth = parse_smooth(self.ns, spec.smooth).expr if spec.smooth is not None else None
        self.nonsmooth: tuple[NonsmoothTerm, ...] = tuple(parse_nonsmooth_term(self.ns, w) for w in spec.nonsmooth)

    # -- parsing ----------------------------------------------------------------------------
    def _truth_tensors(self, data: DataSpec) -> dict[str, TruthTensor]:
        if not data.truth:  # user data sets: any output may come with its truth
            return {name: TruthTensor(name, self.spec.concrete_shape(self.spec.variables[name].shape), None)
                    for name in self.program.outputs}
        truth = {}
        for name, law in data.truth.items():
            if law.estimate is None:
                if name not in self.program.outputs:
                    raise law.where.error(f"the network does not output '{name}'",
                                          hint="outputs: " + ", ".join(self.program.outputs))
                shape = self.spec.concrete_shape(self.spec.variables[name].shape)
                truth[name] = TruthTensor(name, shape, None)
                continue
            value = Parser(self.ns, law.estimate, allowed_roles=("variable", "constant", "param"),
                           elementwise=True).parse()
            self._check_outputs(value.expr, law.estimate)
            shape = self.spec.concrete_shape(law.shape)
            if self.ns.size(value.shape) != shape:
                raise law.estimate.error(f"the estimate has shape {shape_text(value.shape)} but '{name}' is "
                                         f"{shape_text(law.shape)}")
            truth[name] = TruthTensor(name, shape, value.expr)
            self.ns.tensors[name] = self.ns.tensor(name, law.shape)
            self.ns.roles[name] = "truth"
        return truth

    def _check_outputs(self, expr: sp.Basic, where: Located) -> None:
        for symbol in expr.free_symbols:
            if self.ns.roles.get(symbol.name) == "variable" and symbol.name not in self.program.outputs:
                raise where.error(f"'{symbol.name}' is not an output of the network",
                                  hint="outputs: " + ", ".join(self.program.outputs))

    def _measurements(self, data: DataSpec) -> dict[str, sp.MatrixExpr]:
        models = {}
        for name, model in data.inputs.items():
            value = Parser(self.ns, model.model, allowed_roles=("variable", "truth", "constant", "param"),
                           elementwise=True).parse()
            for symbol in value.expr.free_symbols:
                role = self.ns.roles.get(symbol.name)
                if role == "variable" and symbol.name not in self.truth:
                    raise model.model.error(f"the model uses '{symbol.name}', which has no law in data.truth",
                                            hint="give every unknown the model reads a law")
            declared = self.spec.inputs[name].shape
            if self.ns.size(value.shape) != self.ns.size(declared):
                raise model.model.error(f"the model has shape {shape_text(value.shape)} but the input '{name}' "
                                        f"is {shape_text(declared)}")
            models[name] = value.expr
        return models

    # -- evaluation -------------------------------------------------------------------------
    def _env(self, constants: Tensors, batched: Tensors) -> dict[sp.Basic, Value]:
        env: dict[sp.Basic, Value] = dict(self.param_values)
        env.update({symbol: float(self.spec.dims[name]) for name, symbol in self.ns.dims.items()})  # sizes of tables
        for name, tensor in constants.items():
            env[self.ns.tensors[name].expr] = as_matrix(tensor, self.program.constants[name])
        for name, tensor in batched.items():
            env[self.ns.tensors[name].expr] = as_matrix(tensor, tuple(tensor.shape[1:]))
        return env

    def measure(self, truth: Tensors, constants: Tensors) -> dict[str, torch.Tensor]:
        """The noiseless inputs of a batch of truth tensors."""
        env = self._env(constants, truth)
        return {name: from_matrix(_batched(evaluate(expr, env), next(iter(truth.values()))),
                                  self.program.inputs[name])
                for name, expr in self.measurements.items()}

    def estimate(self, outputs: Tensors, constants: Tensors) -> dict[str, torch.Tensor]:
        """The network's estimate of every truth tensor."""
        estimates = {}
        env = None
        for name, truth in self.truth.items():
            if truth.estimate is None:
                estimates[name] = outputs[name]
                continue
            env = env or self._env(constants, outputs)
            estimates[name] = from_matrix(torch.as_tensor(evaluate(truth.estimate, env)), truth.shape)
        return estimates

    def objective(self, inputs: Tensors, outputs: Tensors, constants: Tensors) -> torch.Tensor:
        """The spec's objective at the outputs, one value per sample."""
        if self.smooth is None:
            raise SpecError("this spec has no objective, so it cannot be trained unsupervised",
                            key_path="train.loss", hint="use loss: supervised")
        env = self._env(constants, {**inputs, **outputs})
        batch = next(iter(outputs.values())).shape[0]
        value = _batched(evaluate(self.smooth, env), next(iter(outputs.values()))).reshape(batch)
        for term in self.nonsmooth:
            x = outputs[term.variable]
            weight = float(term.weight.subs(self.param_values))
            if term.entry is None:
                assert term.penalty is not None
                elementwise = evaluate(term.penalty.subs(self.param_values), {ELEMENT: x})
                value = value + weight * _batched(elementwise, x).flatten(1).sum(1)
            else:
                args = tuple(float(a.subs(self.param_values)) for a in term.args)
                value = value + weight * term.entry.value(torch, x, args)
        return value


def _batched(value: object, like: torch.Tensor) -> torch.Tensor:
    """A value that may not depend on the sample (a constant term) as a per-sample tensor."""
    tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value, dtype=like.dtype, device=like.device)
    if tensor.dim() == 0 or tensor.shape[0] != like.shape[0]:
        tensor = tensor.expand(like.shape[0], *tensor.shape[max(tensor.dim() - 2, 0):])
    return tensor
