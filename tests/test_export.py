"""``unfoldgen export``: the folder runs in an environment holding only numpy and numba."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_training import run_cli, small_spec, trained

RUNNER = """
import json
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import kernel
for forbidden in ("torch", "scipy", "unfoldgen"):
    try:
        __import__(forbidden)
    except ImportError:
        pass
    else:
        raise SystemExit(f"{forbidden} is importable: the environment is not bare")
params = dict(np.load(sys.argv[1] + "/params.npz"))
inputs = dict(np.load(sys.argv[2]))
batch = kernel.solve(params, **inputs)
one = kernel.solve_one(params, **{name: value[0] for name, value in inputs.items()})
np.savez(sys.argv[3], **batch, **{"one_" + name: value for name, value in one.items()})
"""


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with numpy and numba only (from the package registry)."""
    folder = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = folder / "bin" / "python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "numpy", "numba"],
                               capture_output=True, text=True, check=False)
    assert installed.returncode == 0, installed.stderr[-2000:]
    return python


@pytest.mark.slow
@pytest.mark.parametrize(("name", "dtype"), [("lista_small", "float32"), ("lista_small", "float64"),
                                             ("rpca_factorized", "float64")])
def test_exported_kernel_runs_with_numpy_and_numba_alone(tmp_path: Path, bare_python: Path, name: str,
                                                         dtype: str) -> None:
    spec = small_spec(tmp_path, name)
    trainer = trained(spec, tmp_path / "run", steps=5, stage_steps=2, batch_size=4, lr=0.01)
    code, output = run_cli("export", spec, "--weights", tmp_path / "run" / "weights.pt", "-o", tmp_path / "export",
                           "--dtype", dtype)
    assert code == 0, output
    folder = tmp_path / "export"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "kernel.py", "manifest.json", "params.npz"]
    manifest = json.loads((folder / "manifest.json").read_text())
    program = trainer.session.program
    assert manifest["dtype"] == dtype
    assert manifest["inputs"] == {k: list(v) for k, v in program.inputs.items()}
    assert set(manifest["outputs"]) == set(program.outputs)
    assert all(np.load(folder / "params.npz")[k].dtype == np.dtype(dtype) for k in manifest["params"])

    batch = trainer.session.source.fixed("test", 8)
    np.savez(tmp_path / "inputs.npz", **{k: v.numpy().astype(dtype) for k, v in batch.inputs.items()})
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    result = subprocess.run([str(bare_python), str(script), str(folder), str(tmp_path / "inputs.npz"),
                             str(tmp_path / "outputs.npz")], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    with torch.no_grad():
        expected = trainer.model(**batch.inputs)
    got = np.load(tmp_path / "outputs.npz")
    tolerance = 1e-4 if dtype == "float32" else 1e-9
    for output_name, value in expected.items():
        reference = value.numpy()
        scale = max(1.0, float(np.abs(reference).max()))
        np.testing.assert_allclose(got[output_name], reference, atol=tolerance * scale)
        np.testing.assert_allclose(got["one_" + output_name], reference[0], atol=tolerance * scale)


def test_export_of_unreadable_weights_exits_2(tmp_path: Path) -> None:
    spec = small_spec(tmp_path, "lista_small")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    code, output = run_cli("export", spec, "--weights", tmp_path / "bad.pt", "-o", tmp_path / "export")
    assert code == 2 and "cannot read the weights" in output
    assert not (tmp_path / "export").exists()


def test_export_folds_fixed_values_into_the_kernel(tmp_path: Path) -> None:
    """Values training cannot change (the step and lam of ISTA with a learned correction) are
    compiled into kernel.py; params.npz holds only what the kernel reads (LISTA's A is not)."""
    from unfoldgen.compiler import load_generated_module

    spec = small_spec(tmp_path, "ista_correction")
    trainer = trained(spec, tmp_path / "run", steps=3, batch_size=4, lr=0.01)
    code, output = run_cli("export", spec, "--weights", tmp_path / "run" / "weights.pt", "-o", tmp_path / "export",
                           "--dtype", "float64")
    assert code == 0, output
    folder = tmp_path / "export"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["folded"]) == {"step", "lam"}
    params = dict(np.load(folder / "params.npz"))
    assert not set(params) & {"step", "lam"}
    source = (folder / "kernel.py").read_text()
    assert f"lam = {manifest['folded']['lam']!r}" in source
    kernel = load_generated_module(folder / "kernel.py", "exported_ista_correction_kernel")
    assert "step" not in kernel.ARRAY_PARAMS and "lam" not in kernel.SCALAR_PARAMS
    batch = trainer.session.source.fixed("test", 4)
    with torch.no_grad():
        expected = trainer.model(**batch.inputs)
    got = kernel.solve(params, **{k: v.numpy() for k, v in batch.inputs.items()})
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value.numpy(), rtol=1e-9, atol=1e-12)

    lista = small_spec(tmp_path, "lista_small")
    trained(lista, tmp_path / "lista_run", steps=2, batch_size=4)
    code, output = run_cli("export", lista, "--weights", tmp_path / "lista_run" / "weights.pt", "-o", tmp_path / "lista")
    assert code == 0, output
    assert sorted(np.load(tmp_path / "lista" / "params.npz").files) == ["W_x", "W_y", "threshold"]
