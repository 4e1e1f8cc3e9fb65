"""``unfoldgen export --format onnx``: the trained module as ``model.onnx``.

The module goes through ``torch.onnx.export`` (the ``torch.export`` based exporter) with a
dynamic batch dimension; the file is then run with onnxruntime on a batch of another size and
compared with the module, and refused if the two differ by more than ``TOLERANCE``. A network
whose layers need an operation ONNX lacks is refused before anything is traced.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sympy as sp
import torch

from unfoldgen.backends.common import prox_helpers, used_operators
from unfoldgen.errors import SpecError
from unfoldgen.ir import Program

# What the emitted code's other helpers need that ONNX has no operator for (the prox helpers say
# it themselves: Helper.onnx_missing).
ONNX_MISSING = {
    "svd_factor": "a truncated singular value decomposition",
    "inverse": "a matrix inverse in every call (a learned penalty or step inside a linear solve)",
}
# Largest relative difference (2-norm over the batch) allowed between onnxruntime and the module.
TOLERANCE = {"float32": 1e-4, "float64": 1e-10}
CHECK_BATCH = 3  # differs from the batch traced with, so the check also covers the dynamic batch
INSTALL_HINT = "pip install 'unfoldgen[onnx]' (onnx, onnxscript and onnxruntime)"


@dataclass(frozen=True)
class OnnxCheck:
    batch: int
    max_relative_error: float
    tolerance: float


def onnx_blockers(program: Program) -> list[str]:
    """What the layers of ``program`` compute that ONNX cannot express (empty: exportable)."""
    operators = set(used_operators(program))
    if any(program.is_dynamic(d) and d.expr.atoms(sp.Inverse) for d in program.layer_tensors):
        operators.add("inverse")
    missing = [helper.onnx_missing for helper in prox_helpers(program) if helper.onnx_missing]
    return missing + [ONNX_MISSING[name] for name in sorted(operators) if name in ONNX_MISSING]


def refuse_unexportable(program: Program, dtype: str) -> None:
    blockers = onnx_blockers(program)
    if blockers:
        raise SpecError(f"'{program.name}' cannot be exported to ONNX: its layers need {'; '.join(blockers)}, "
                        "which ONNX has no operator for",
                        hint="export it as a Numba kernel (--format numba), or run the PyTorch module")
    if dtype == "float64" and any(network.kind == "cnn" for network in program.networks):
        raise SpecError(f"'{program.name}' cannot be exported to ONNX in float64: its CNNs are ONNX Conv nodes, "
                        "which onnxruntime's CPU provider runs in float32 only",
                        hint="export with --dtype float32")
    for package in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(package)
        except ImportError:
            raise SpecError(f"exporting to ONNX needs the package '{package}'", hint=INSTALL_HINT) from None


def export_onnx(program: Program, model: torch.nn.Module, path: Path, dtype: str) -> OnnxCheck:
    """Write ``model`` (in eval mode, of ``dtype``) to ``path`` and check it with onnxruntime."""
    refuse_unexportable(program, dtype)
    model.eval()
    names = list(program.inputs)
    example = _random_inputs(program, 2, dtype, seed=0)
    batch = torch.export.Dim("batch", min=1)
    with _quiet():
        onnx_program = torch.onnx.export(
            model, tuple(example[n] for n in names), dynamo=True, input_names=names,
            output_names=list(program.outputs), dynamic_shapes={n: {0: batch} for n in names},
        )
        assert onnx_program is not None
        onnx_program.save(str(path))
    return check_onnx(program, model, path, dtype)


def check_onnx(program: Program, model: torch.nn.Module, path: Path, dtype: str) -> OnnxCheck:
    """Run ``path`` with onnxruntime and the module on the same random batch and compare."""
    import onnxruntime

    inputs = _random_inputs(program, CHECK_BATCH, dtype, seed=1)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = dict(zip(program.outputs, session.run(list(program.outputs), {n: t.numpy() for n, t in inputs.items()})))
    with torch.no_grad():
        expected = {name: value.numpy() for name, value in model(**inputs).items()}
    error = max(_relative_error(got[name], expected[name]) for name in program.outputs)
    if not error <= TOLERANCE[dtype]:
        raise SpecError(f"model.onnx differs from the PyTorch module by {error:.2e} (relative), "
                        f"more than the {TOLERANCE[dtype]:.0e} allowed for {dtype}",
                        hint="this is a bug in unfoldgen or in the ONNX exporter; please report it")
    return OnnxCheck(CHECK_BATCH, error, TOLERANCE[dtype])


def _random_inputs(program: Program, batch: int, dtype: str, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    torch_dtype = getattr(torch, dtype)
    return {name: torch.randn((batch, *shape), generator=generator, dtype=torch.float64).to(torch_dtype)
            for name, shape in program.inputs.items()}


def _relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    scale = max(float(np.linalg.norm(expected)), float(np.finfo(expected.dtype).tiny))
    return float(np.linalg.norm(got.astype(np.float64) - expected)) / scale


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter prints its progress and warns about optional packages (torchvision): keep
    the command's output to what unfoldgen says."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)
