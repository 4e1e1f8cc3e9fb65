"""Check that the generated PyTorch modules run on CUDA and agree with the CPU.

``python scripts/cuda_check.py prepare DIR``: here (where unfoldgen is installed), build every
bundled spec into DIR with seeded random constants and inputs and the CPU outputs in float64.
``python scripts/cuda_check.py run DIR``: on a machine with a GPU, where only torch and numpy
are needed (the generated ``model.py`` imports nothing else), run each module on CUDA in
float64 and float32, through ``torch.compile`` for one spec, and compare with the CPU outputs.
Prints one line per spec and exits non-zero if one disagrees.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

TOLERANCE = {"float64": 1e-9, "float32": 2e-3}  # relative, against the CPU in float64


def _constants(shapes: dict[str, list[int]], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Seeded constants; square ones positive semidefinite, as quadratic forms need."""
    values = {}
    for name, shape in shapes.items():
        value = rng.standard_normal(shape) / np.sqrt(shape[0] if shape else 1)
        if len(shape) == 2 and shape[0] == shape[1]:
            value = value.T @ value
        values[name] = value
    return values


def prepare(folder: Path) -> None:
    import torch

    from unfoldgen.compiler import build
    from unfoldgen.resources import bundled

    cases = []
    for spec in sorted(bundled("specs").glob("*.yaml")):
        result = build(spec, folder)
        program = result.program
        rng = np.random.default_rng(0)
        positive = "log(" in spec.read_text()  # a likelihood: nonnegative data
        constants = {n: np.abs(v) if positive else v
                     for n, v in _constants({n: list(s) for n, s in program.constants.items()}, rng).items()}
        inputs = {n: rng.standard_normal((4, *s)) for n, s in program.inputs.items()}
        inputs = {n: np.abs(v) if positive else v for n, v in inputs.items()}
        module = _load(result.directory / "model.py")
        model = module.Unfolded(**constants, dtype=torch.float64)
        with torch.no_grad():
            outputs = model(**{n: torch.from_numpy(v) for n, v in inputs.items()})
        np.savez(result.directory / "case.npz", **{f"constant_{n}": v for n, v in constants.items()},
                 **{f"input_{n}": v for n, v in inputs.items()},
                 **{f"output_{n}": v.numpy() for n, v in outputs.items()})
        cases.append(program.name)
    (folder / "cases.json").write_text(json.dumps(cases))


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"cuda_check_{path.parent.name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(folder: Path) -> int:
    import torch

    assert torch.cuda.is_available(), "no CUDA device"
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    failures = 0
    for name in json.loads((folder / "cases.json").read_text()):
        data = np.load(folder / name / "case.npz")
        constants = {k[len("constant_"):]: data[k] for k in data.files if k.startswith("constant_")}
        inputs = {k[len("input_"):]: data[k] for k in data.files if k.startswith("input_")}
        expected = {k[len("output_"):]: data[k] for k in data.files if k.startswith("output_")}
        module = _load(folder / name / "model.py")
        line = [name]
        for dtype_name, tolerance in TOLERANCE.items():
            dtype = getattr(torch, dtype_name)
            model = module.Unfolded(**constants, dtype=dtype, device="cuda")
            tensors = {n: torch.from_numpy(v).to(dtype=dtype, device="cuda") for n, v in inputs.items()}
            with torch.no_grad():
                outputs = model(**tensors)
            error = max(float(np.linalg.norm(outputs[n].cpu().double().numpy() - v) / max(np.linalg.norm(v), 1e-12))
                        for n, v in expected.items())
            ok = error <= tolerance and all(o.device.type == "cuda" for o in outputs.values())
            failures += not ok
            line.append(f"{dtype_name} {error:.1e} {'ok' if ok else 'FAIL'}")
        if name == "lista_small":
            compiled = torch.compile(module.Unfolded(**constants, dtype=torch.float32, device="cuda"))
            tensors = {n: torch.from_numpy(v).float().cuda() for n, v in inputs.items()}
            with torch.no_grad():
                outputs = compiled(**tensors)
            error = max(float(np.linalg.norm(outputs[n].cpu().double().numpy() - v) / max(np.linalg.norm(v), 1e-12))
                        for n, v in expected.items())
            failures += error > TOLERANCE["float32"]
            line.append(f"torch.compile float32 {error:.1e} {'ok' if error <= TOLERANCE['float32'] else 'FAIL'}")
        print(": ".join([line[0], ", ".join(line[1:])]))
    return 1 if failures else 0


if __name__ == "__main__":
    command, target = sys.argv[1], Path(sys.argv[2])
    if command == "prepare":
        prepare(target)
    else:
        raise SystemExit(run(target))
