"""Training losses and the NMSE metric.

``supervised``: the squared error of the last layer's estimate of the truth (summed over the
entries of a sample, averaged over the batch). ``deep_supervision``: the weighted mean of that
error over the layers, weight ``w_k`` for layer ``k = 0..K-1`` from an expression such as
``log(k+2)``. ``unsupervised``: the spec's own objective at the output; no truth needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import sympy as sp
import torch

from unfoldgen.spec.model import Located
from unfoldgen.symbolic.language import Parser
from unfoldgen.training.data import Batch
from unfoldgen.training.network import run_network
from unfoldgen.training.problem import TrainingProblem

LAYER_INDEX = sp.Symbol("k", integer=True, nonnegative=True)


def layer_weights(problem: TrainingProblem, text: str, layers: int) -> list[float]:
    """The deep-supervision weights ``w_0..w_{K-1}`` (parsed safely, checked non-negative)."""
    where = Located(text, "train.layer_weights", None)
    value = Parser(problem.ns, where, allowed_roles=("param",), scalars={"k": LAYER_INDEX},
                   scalar_functions=True).parse()
    if not value.is_scalar:
        raise where.error("layer_weights must be a scalar expression of the layer index k", hint="e.g. log(k+2)")
    expr = value.expr.subs(problem.param_values)
    weights = []
    for k in range(layers):
        number = expr.subs(LAYER_INDEX, k)
        if not number.is_real or not number.is_finite or number.is_negative:
            raise where.error(f"the weight of layer k={k} is {number}, not a non-negative number")
        weights.append(float(number))
    if sum(weights) <= 0:
        raise where.error("the layer weights sum to zero", hint="e.g. 1, or log(k+2)")
    return weights


def squared_error(estimates: Mapping[str, torch.Tensor], truth: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Per sample: the summed squared error over every truth tensor."""
    errors = [(estimates[name] - value).flatten(1).square().sum(1) for name, value in truth.items()]
    return torch.stack(errors).sum(0)


def energy(truth: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return torch.stack([value.flatten(1).square().sum(1) for value in truth.values()]).sum(0)


def nmse_db(error: float, reference: float) -> float:
    """``10 log10(sum ||x_hat - x||^2 / sum ||x||^2)`` over a data set."""
    if error <= 0:
        return -math.inf
    return 10 * math.log10(error / reference)


class Loss:
    def __init__(self, kind: str, problem: TrainingProblem, constants: Mapping[str, torch.Tensor],
                 weights: list[float] | None = None) -> None:
        self.kind = kind
        self.problem = problem
        self.constants = constants
        self.weights = weights

    def __call__(self, model: torch.nn.Module, batch: Batch, depth: int) -> torch.Tensor:
        if self.kind == "unsupervised":
            outputs = run_network(model, self.problem.program, batch.inputs, layers=depth)
            return self.problem.objective(batch.inputs, outputs, self.constants).mean()
        if self.kind == "deep_supervision":
            assert self.weights is not None
            history = run_network(model, self.problem.program, batch.inputs, layers=depth, all_layers=True)
            weights = self.weights[:depth]
            total = sum(w * self._error(out, batch) for w, out in zip(weights, history))
            return total / sum(weights)  # type: ignore[return-value]
        return self._error(run_network(model, self.problem.program, batch.inputs, layers=depth), batch)

    def _error(self, outputs: Mapping[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        return squared_error(self.problem.estimate(outputs, self.constants), batch.truth).mean()
