"""The folder a benchmark runs in: the emitted code, the parameters, and the inputs.

Every backend is timed in a process of its own (so each gets its thread count before its
libraries start their pools), and all of them read this folder: ``kernel.py``, ``model.py``,
``numpy_loop.py``, ``params.npz`` (the kernel's parameters in the benchmark dtype),
``inputs.npz`` (samples of the largest batch), ``module.pt`` (what the PyTorch module is
built from), ``model.onnx`` (the module's ONNX export, for onnxruntime; where it cannot be
made, ``model.onnx.missing`` says why) and ``config.json`` (the dtype, and the params the
kernel reads: the memory floor streams those).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from unfoldgen.backends.numba_kernel import emit_numba_kernel, low_precision_params, params_read
from unfoldgen.backends.weights import WEIGHT_FORMATS
from unfoldgen.compiler import compile_program
from unfoldgen.errors import SpecError
from unfoldgen.ir import Program
from unfoldgen.spec.model import Spec
from unfoldgen.training.checkpoint import npz_bytes
from unfoldgen.training.data import DataSource
from unfoldgen.training.network import build_network, fit_weights, read_weights
from unfoldgen.training.problem import TrainingProblem


def prepare(spec: Spec, program: Program, folder: Path, batch: int, dtype: str, weights: Path | None,
            onnx: bool = True, low_precision: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Write the workspace (``model.onnx`` only when ``onnx``; a kernel and its params for each
    weights dtype of ``low_precision``); returns the kernel's parameters."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in compile_program(program).items():
        (folder / name).write_text(text, encoding="utf-8")
    constants, inputs = _samples(spec, program, batch)
    model = build_network(program, constants, torch.float64, "cpu")
    if weights is not None:
        fit_weights(model, read_weights(weights), weights, program)
    else:
        distinct_layers(model)
    params = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in model.kernel_params().items()}
    (folder / "params.npz").write_bytes(npz_bytes(params))
    (folder / "inputs.npz").write_bytes(npz_bytes({k: v.astype(dtype) for k, v in inputs.items()}))
    torch.save({"constants": constants, "state": model.state_dict()}, folder / "module.pt")
    for weights_dtype in low_precision:
        _low_precision_kernel(program, params, folder, weights_dtype)
    if onnx:
        _export_onnx(program, model, folder, dtype)
    arrays, scalars = params_read(program)
    (folder / "config.json").write_text(json.dumps({"dtype": dtype, "kernel_reads": [*arrays, *scalars]}))
    return params


def distinct_layers(model: torch.nn.Module, seed: int = 0) -> None:
    """Every learned parameter scaled by 1 + 1e-3 noise (fixed seed), in place.

    The untrained network starts every layer from the classical algorithm's values, so its
    layers' weights are equal, and onnxruntime's graph optimiser appears to keep equal constants
    once: on LISTA it ran well over twice as fast on equal layers as on distinct ones, as if it
    read one layer's weights for all of them, which no trained network allows. With distinct layers every backend
    reads what a trained network makes it read, at the untrained network's cost and nearly its
    output. A parameter that is all zeros (a network's last layer) gets noise of 1e-6 instead."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float64).to(parameter.dtype)
            if torch.count_nonzero(parameter) == 0:
                parameter.add_(1e-6 * noise)
            else:
                parameter.mul_(1 + 1e-3 * noise)


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


def _export_onnx(program: Program, model: torch.nn.Module, folder: Path, dtype: str) -> None:
    """``model.onnx``, or ``model.onnx.missing`` with the reason (onnx not installed, an
    operation ONNX lacks): the benchmark lists onnxruntime as unavailable with it."""
    from unfoldgen.onnx_export import export_onnx

    try:
        export_onnx(program, model.to(getattr(torch, dtype)), folder / "model.onnx", dtype)
    except SpecError as error:
        (folder / "model.onnx.missing").write_text(f"{error.message} ({error.hint})" if error.hint else error.message)


def _low_precision_kernel(program: Program, params: dict[str, np.ndarray], folder: Path, weights_dtype: str) -> None:
    """``kernel_<format>.py`` and ``params_<format>.npz`` as ``unfoldgen export --weights-dtype``
    writes them, or ``kernel_<format>.missing`` when the kernel has no dense weights."""
    try:
        stored, _ = low_precision_params(program, params, WEIGHT_FORMATS[weights_dtype])
    except SpecError as error:
        (folder / f"kernel_{weights_dtype}.missing").write_text(error.message)
        return
    (folder / f"kernel_{weights_dtype}.py").write_text(emit_numba_kernel(program, weights_dtype=weights_dtype))
    (folder / f"params_{weights_dtype}.npz").write_bytes(npz_bytes(stored))
