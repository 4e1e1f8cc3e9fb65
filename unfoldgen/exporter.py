"""``unfoldgen export``: a trained network as a folder that runs with numpy and numba alone
(``--format numba``, the default) or with onnxruntime (``--format onnx``, see ``onnx_export``).

The Numba folder holds ``kernel.py`` (the generated Numba kernel, with the values that training
left fixed folded in as constants), ``params.npz`` (the trained parameters the kernel reads,
in the deployment dtype, contiguous, in the order the kernel reads them),
``manifest.json`` (what was exported from what) and a ``README.md`` with the call. It is
written to a temporary folder and renamed into place, like a build.

``--weights-dtype float16|bfloat16|int8`` stores the dense weights that the kernel reads row by
row in that format (see ``unfoldgen.backends.weights``) and records in the manifest what it
costs in accuracy: the NMSE of the network on test data with the float32 weights and with the
stored ones, computed by the NumPy loop with the dequantised weights (the same arithmetic as
the kernel's, without compiling it).
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
from unfoldgen.backends.numba_kernel import emit_numba_kernel, foldable, low_precision_params, params_read
from unfoldgen.backends.registry import BACKENDS, EXPORT_FORMATS
from unfoldgen.backends.render import render
from unfoldgen.backends.weights import WEIGHT_FORMATS, WeightFormat
from unfoldgen.compiler import write_atomically
from unfoldgen.errors import SpecError
from unfoldgen.ir import Program, lower
from unfoldgen.onnx_export import export_onnx
from unfoldgen.spec import load_spec
from unfoldgen.spec.model import Spec
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


TEST_SAMPLES = 256  # test samples for the manifest's accuracy figures of low-precision weights


def export(spec_path: Path, weights: Path, outdir: Path, dtype: str = "float32", format: str = "numba",
           weights_dtype: str | None = None) -> ExportResult:
    """Write the network of ``spec_path`` with the trained ``weights`` into ``outdir``; with
    ``weights_dtype``, its dense weights in that low-precision format."""
    if format not in FORMATS:
        raise SpecError(f"unknown export format '{format}'", hint=f"one of {', '.join(FORMATS)}")
    if weights_dtype is not None and weights_dtype not in WEIGHT_FORMATS:
        raise SpecError(f"unknown weights dtype '{weights_dtype}'", hint=f"one of {', '.join(WEIGHT_FORMATS)}")
    if weights_dtype is not None and format != "numba":
        raise SpecError(f"--weights-dtype applies to the Numba kernel, not to --format {format}",
                        hint="export with --format numba, or leave --weights-dtype out")
    spec = load_spec(spec_path)
    program = lower(spec)
    if format == "onnx":
        return _export_onnx(program, weights, Path(outdir), dtype)
    trained = trained_parameters(program, weights)
    scalars_of_spec = program.used_params()
    folded = {name: np.asarray(trained[name]).reshape(() if name in scalars_of_spec else -1) for name in foldable(program)}
    arrays, scalars = params_read(program)
    params = {name: np.ascontiguousarray(trained[name], dtype=DTYPES[dtype])
              for name in (*arrays, *scalars) if name not in folded}
    manifest = _manifest(program, weights, dtype, "numba")
    if weights_dtype is not None:
        weight_format = WEIGHT_FORMATS[weights_dtype]
        full = dict(params)
        params, names = low_precision_params(program, params, weight_format)
        manifest["weights_dtype"] = _accuracy(spec, program, full, params, names, folded, weight_format)
    manifest |= {
        "params": {name: list(value.shape) for name, value in params.items()},
        "folded": {name: np.asarray(value, dtype=np.float64).tolist() for name, value in folded.items()},
    }
    files = {
        "kernel.py": emit_numba_kernel(program, folded, weights_dtype),
        "manifest.json": json.dumps(manifest, indent=2) + "\n",
        "README.md": render("export_README.md.j2", manifest=manifest, description=program.description),
    }
    target = Path(outdir)
    write_atomically(target, files, binary={"params.npz": npz_bytes(params)})
    return ExportResult(target, manifest)


def _accuracy(spec: Spec, program: Program, full: dict[str, np.ndarray], stored: dict[str, np.ndarray],
              names: list[str], folded: dict[str, np.ndarray], weight_format: WeightFormat) -> dict[str, object]:
    """What the low-precision weights ``names`` cost: the network's NMSE on test data (float32
    inputs) with the full and with the stored weights, and their outputs' relative difference."""
    from unfoldgen.compiler import load_generated_module
    from unfoldgen.training.data import DataSource
    from unfoldgen.training.losses import nmse_db
    from unfoldgen.training.problem import TrainingProblem

    dequantized = weight_format.restore(stored, names)
    scales = [weight_format.scale_name(name) for name in names] if weight_format.scaled else []
    figures: dict[str, object] = {
        "format": weight_format.name, "description": weight_format.description, "params": names,
        "bytes": int(sum(stored[n].nbytes for n in [*names, *scales])),
        "bytes_float32": int(sum(full[n].size * 4 for n in names)),
    }
    if spec.data is None:
        return figures | {"test": None, "why_no_test": "the spec has no data section to draw test samples from"}
    with tempfile.TemporaryDirectory(prefix="unfoldgen-export-") as folder:
        path = Path(folder) / "numpy_loop.py"
        path.write_text(BACKENDS["numpy"].emit(program), encoding="utf-8")
        loop = load_generated_module(path, f"unfoldgen_export_check_{program.name}")
    test = DataSource(spec, TrainingProblem(spec, program)).fixed("test", TEST_SAMPLES)
    inputs = {name: value.numpy().astype(np.float32) for name, value in test.inputs.items()}
    truth = {name: value.numpy() for name, value in test.truth.items()}
    everything = {name: np.asarray(value) for name, value in folded.items()}
    outputs = {label: loop.solve(everything | {n: v.astype(np.float32) for n, v in weights.items()}, **inputs)
               for label, weights in (("float32", full), (weight_format.name, dequantized))}
    keys = [name for name in truth if name in outputs["float32"]]
    reference = sum(float(np.sum(truth[n].astype(np.float64) ** 2)) for n in keys)

    def nmse(label: str) -> float:
        return nmse_db(sum(float(np.sum((outputs[label][n] - truth[n]) ** 2)) for n in keys), reference)

    difference = sum(float(np.sum((outputs[weight_format.name][n] - outputs["float32"][n]).astype(np.float64) ** 2)) for n in keys)
    size = sum(float(np.sum(outputs["float32"][n].astype(np.float64) ** 2)) for n in keys)
    return figures | {"test": {
        "samples": len(test), "nmse_db_float32": round(nmse("float32"), 3), "nmse_db": round(nmse(weight_format.name), 3),
        "nmse_change_db": round(nmse(weight_format.name) - nmse("float32"), 3),
        "relative_difference": float(np.sqrt(difference / max(size, 1e-300))),
    }}


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
