"""The folder a benchmark runs in: the emitted code, the parameters, and the inputs.

Every backend is timed in a process of its own (so each gets its thread count before its
libraries start their pools), and all of them read this folder: ``kernel.py``, ``model.py``,
``numpy_loop.py``, ``params.npz`` (the kernel's parameters in the benchmark dtype),
``inputs.npz`` (samples of the largest batch), ``module.pt`` (what the PyTorch module is
built from) and ``config.json`` (the dtype).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from unfoldgen.compiler import compile_program
from unfoldgen.ir import Program
from unfoldgen.spec.model import Spec
from unfoldgen.training.checkpoint import npz_bytes
from unfoldgen.training.data import DataSource
from unfoldgen.training.network import build_network, fit_weights, read_weights
from unfoldgen.training.problem import TrainingProblem


def prepare(spec: Spec, program: Program, folder: Path, batch: int, dtype: str,
            weights: Path | None) -> dict[str, np.ndarray]:
    """Write the workspace; returns the kernel's parameters."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in compile_program(program).items():
        (folder / name).write_text(text, encoding="utf-8")
    constants, inputs = _samples(spec, program, batch)
    model = build_network(program, constants, torch.float64, "cpu")
    if weights is not None:
        fit_weights(model, read_weights(weights), weights, program)
    params = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in model.kernel_params().items()}
    (folder / "params.npz").write_bytes(npz_bytes(params))
    (folder / "inputs.npz").write_bytes(npz_bytes({k: v.astype(dtype) for k, v in inputs.items()}))
    torch.save({"constants": constants, "state": model.state_dict()}, folder / "module.pt")
    (folder / "config.json").write_text(json.dumps({"dtype": dtype}))
    return params


def _samples(spec: Spec, program: Program, batch: int) -> tuple[dict[str, torch.Tensor], dict[str, np.ndarray]]:
    """Constants and inputs from the spec's data section, or Gaussian ones when it has none."""
    if spec.data is not None:
        source = DataSource(spec, TrainingProblem(spec, program))
        samples = source.fresh(0, batch)
        return source.constants, {k: v.numpy() for k, v in samples.inputs.items()}
    rng = np.random.default_rng(0)
    constants = {name: torch.from_numpy(rng.standard_normal(shape) / np.sqrt(shape[0]))
                 for name, shape in program.constants.items()}
    return constants, {name: rng.standard_normal((batch, *shape)) for name, shape in program.inputs.items()}
