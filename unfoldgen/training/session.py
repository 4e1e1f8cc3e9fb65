"""A spec ready to train or evaluate: its program, its data, its constants, and the metric."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from unfoldgen.ir import Program, lower
from unfoldgen.spec.model import Spec, TrainSpec
from unfoldgen.training.data import Batch, DataSource
from unfoldgen.training.losses import energy, nmse_db, squared_error
from unfoldgen.training.metrics import psnr_db, ssim
from unfoldgen.training.network import DTYPES, build_network, run_network
from unfoldgen.training.problem import TrainingProblem

if TYPE_CHECKING:
    from unfoldgen.training.network import UnfoldedNetwork


class Session:
    """A spec ready to run: its program, data, constants and loss pieces."""

    def __init__(self, spec: Spec, train: TrainSpec, device: torch.device) -> None:
        self.spec = spec
        self.train = train
        self.program: Program = lower(spec)
        self.problem = TrainingProblem(spec, self.program)
        self.source = DataSource(spec, self.problem)
        self.dtype = DTYPES[train.dtype]
        self.device = device
        self.constants = {k: v.to(dtype=self.dtype, device=device) for k, v in self.source.constants.items()}

    def network(self) -> UnfoldedNetwork:
        return build_network(self.program, self.constants, self.dtype, self.device)

    def nmse_per_layer(self, model: torch.nn.Module, batch: Batch, depth: int, batch_size: int = 500,
                       first: int = 0) -> list[float]:
        """NMSE (dB) over ``batch`` after each layer ``first+1..depth`` (streamed with ``on_layer``)."""
        return [nmse_db(ratio, 1.0) for ratio in self.error_per_layer(model, batch, depth, batch_size, first)]

    def error_per_layer(self, model: torch.nn.Module, batch: Batch, depth: int, batch_size: int = 500,
                        first: int = 0, keys: tuple[str, ...] | None = None) -> list[float]:
        """``sum ||estimate - truth||^2 / sum ||truth||^2`` over ``batch`` after each layer
        ``first+1..depth``, over the truth tensors ``keys`` (default: all of them)."""
        errors = [0.0] * (depth - first)
        reference = 0.0
        with torch.no_grad():
            for chunk in batch.to(self.dtype, self.device).chunks(batch_size):
                truth = {k: v for k, v in chunk.truth.items() if keys is None or k in keys}

                def collect(k: int, outputs: dict[str, torch.Tensor], truth: dict[str, torch.Tensor] = truth) -> None:
                    if k >= first:
                        estimates = self.problem.estimate(outputs, self.constants)
                        errors[k - first] += float(squared_error(estimates, truth).sum())

                run_network(model, self.program, chunk.inputs, layers=depth, on_layer=collect)
                reference += float(energy(truth).sum())
        return [error / reference for error in errors]

    def image_quality_per_layer(self, model: torch.nn.Module, batch: Batch, depth: int, batch_size: int = 500,
                                ssim_every_layer: bool = False) -> dict[str, list[float]] | None:
        """Mean PSNR (dB) after each layer and SSIM after the last (or each) layer, over
        ``batch``, for a truth of images (the first truth tensor that is a matrix per sample);
        None when there is none."""
        name = next((k for k, v in batch.truth.items() if v.dim() == 3 and min(v.shape[1:]) >= 11), None)
        if name is None:
            return None
        totals = {"psnr_db": [0.0] * depth, "ssim": [0.0] * depth}
        with torch.no_grad():
            for chunk in batch.to(self.dtype, self.device).chunks(batch_size):
                truth = chunk.truth[name]

                def collect(k: int, outputs: dict[str, torch.Tensor], truth: torch.Tensor = truth) -> None:
                    estimate = self.problem.estimate(outputs, self.constants)[name]
                    totals["psnr_db"][k] += float(psnr_db(estimate, truth).sum())
                    if ssim_every_layer or k == depth - 1:
                        totals["ssim"][k] += float(ssim(estimate, truth).sum())

                run_network(model, self.program, chunk.inputs, layers=depth, on_layer=collect)
        averages = {metric: [value / len(batch) for value in values] for metric, values in totals.items()}
        if not ssim_every_layer:
            averages["ssim"] = averages["ssim"][-1:]
        return averages

    def metric(self, model: torch.nn.Module, batch: Batch, depth: int, batch_size: int = 500) -> tuple[str, float]:
        """Validation NMSE (dB) at ``depth`` when the set has truth, else the mean objective."""
        if batch.truth:
            return "val_nmse_db", self.nmse_per_layer(model, batch, depth, batch_size, first=depth - 1)[0]
        objective = 0.0
        with torch.no_grad():
            for chunk in batch.to(self.dtype, self.device).chunks(batch_size):
                outputs = run_network(model, self.program, chunk.inputs, layers=depth)
                objective += float(self.problem.objective(chunk.inputs, outputs, self.constants).sum())
        return "val_objective", objective / len(batch)
