"""``unfoldgen export``: a trained network as a folder that runs with numpy and numba alone
(``--format numba``, the default) or with onnxruntime (``--format onnx``, see ``onnx_export``).

The Numba folder holds ``kernel.py`` (the generated Numba kernel, with the values that training
left fixed folded in as constants), ``params.npz`` (the trained parameters the kernel reads,
in the deployment dtype, contiguous, in the order the kernel reads them),
``manifest.json`` (what was exported from what) and a ``README.md`` with the call. It is
written to a temporary folder and renamed into place, like a build.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from unfoldgen import __version__
from unfoldgen.backends.numba_kernel import emit_numba_kernel, foldable, params_read
from unfoldgen.backends.registry import EXPORT_FORMATS
from unfoldgen.backends.render import render
from unfoldgen.compiler import write_atomically
from unfoldgen.errors import SpecError
from unfoldgen.ir import Program, lower
from unfoldgen.onnx_export import export_onnx
from unfoldgen.spec import load_spec
from unfoldgen.training.checkpoint import npz_bytes
from unfoldgen.training.network import trained_network

DTYPES = {"float32": np.float32, "float64": np.float64}
FORMATS = EXPORT_FORMATS  # numba (the kernel), onnx (from the module)


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    manifest: dict[str, object]


def trained_parameters(program: Program, weights: Path) -> dict[str, np.ndarray]:
    """``kernel_params()`` of the module with the trained weights loaded."""
    return trained_network(program, weights, torch.float64).kernel_params()


def export(spec_path: Path, weights: Path, outdir: Path, dtype: str = "float32", format: str = "numba") -> ExportResult:
    """Write the network of ``spec_path`` with the trained ``weights`` into ``outdir``."""
    if format not in FORMATS:
        raise SpecError(f"unknown export format '{format}'", hint=f"one of {', '.join(FORMATS)}")
    program = lower(load_spec(spec_path))
    if format == "onnx":
        return _export_onnx(program, weights, Path(outdir), dtype)
    trained = trained_parameters(program, weights)
    scalars_of_spec = program.used_params()
    folded = {name: np.asarray(trained[name]).reshape(() if name in scalars_of_spec else -1) for name in foldable(program)}
    arrays, scalars = params_read(program)
    params = {name: np.ascontiguousarray(trained[name], dtype=DTYPES[dtype])
              for name in (*arrays, *scalars) if name not in folded}
    manifest = _manifest(program, weights, dtype, "numba") | {
        "params": {name: list(value.shape) for name, value in params.items()},
        "folded": {name: np.asarray(value, dtype=np.float64).tolist() for name, value in folded.items()},
    }
    files = {
        "kernel.py": emit_numba_kernel(program, folded),
        "manifest.json": json.dumps(manifest, indent=2) + "\n",
        "README.md": render("export_README.md.j2", manifest=manifest, description=program.description),
    }
    target = Path(outdir)
    write_atomically(target, files, binary={"params.npz": npz_bytes(params)})
    return ExportResult(target, manifest)


def _export_onnx(program: Program, weights: Path, target: Path, dtype: str) -> ExportResult:
    """``model.onnx`` (checked against the module with onnxruntime), ``manifest.json``, ``README.md``."""
    model = trained_network(program, weights, getattr(torch, dtype))
    with tempfile.TemporaryDirectory(prefix="unfoldgen-onnx-") as folder:
        path = Path(folder) / "model.onnx"
        check = export_onnx(program, model, path, dtype)
        manifest = _manifest(program, weights, dtype, "onnx") | {"onnxruntime_check": asdict(check)}
        files = {
            "manifest.json": json.dumps(manifest, indent=2) + "\n",
            "README.md": render("export_onnx_README.md.j2", manifest=manifest, description=program.description),
        }
        write_atomically(target, files, binary={"model.onnx": path.read_bytes()})
    return ExportResult(target, manifest)


def _manifest(program: Program, weights: Path, dtype: str, format: str) -> dict[str, object]:
    """What was exported from what: the same keys for every format."""
    return {
        "name": program.name,
        "format": format,
        "spec_sha256": program.spec_hash,
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "unfoldgen_version": __version__,
        "dtype": dtype,
        "layers": program.layers,
        "inputs": {name: list(shape) for name, shape in program.inputs.items()},
        "outputs": {state.name: list(state.shape) for state in program.states if state.name in program.outputs},
    }
