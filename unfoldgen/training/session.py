"""A spec ready to train or evaluate: its program, its data, its constants, and the metric."""

from __future__ import annotations

import torch

from unfoldgen.ir import Program, lower
from unfoldgen.spec.model import Spec, TrainSpec
from unfoldgen.training.data import Batch, DataSource
from unfoldgen.training.losses import energy, nmse_db, squared_error
from unfoldgen.training.network import DTYPES, build_network
from unfoldgen.training.problem import TrainingProblem


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

    def network(self) -> torch.nn.Module:
        return build_network(self.program, self.constants, self.dtype, self.device)

    def metric(self, model: torch.nn.Module, batch: Batch, depth: int, batch_size: int = 500) -> tuple[str, float]:
        """Validation NMSE (dB) at ``depth`` when the set has truth, else the mean objective."""
        error = reference = objective = 0.0
        with torch.no_grad():
            for chunk in batch.to(self.dtype, self.device).chunks(batch_size):
                outputs = model(**chunk.inputs, layers=depth)
                if chunk.truth:
                    estimates = self.problem.estimate(outputs, self.constants)
                    error += float(squared_error(estimates, chunk.truth).sum())
                    reference += float(energy(chunk.truth).sum())
                else:
                    objective += float(self.problem.objective(chunk.inputs, outputs, self.constants).sum())
        if batch.truth:
            return "val_nmse_db", nmse_db(error, reference)
        return "val_objective", objective / len(batch)
