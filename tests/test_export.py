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


@pytest.fixture(scope="module")
def lista_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("lista_low_precision")
    spec = small_spec(folder, "lista_small")
    trained(spec, folder / "run", steps=10, batch_size=8, lr=0.005)
    return spec, folder / "run" / "weights.pt"


@pytest.mark.parametrize("weights_dtype", ["float16", "bfloat16", "int8"])
def test_low_precision_weights_are_dequantised_in_the_kernel(tmp_path: Path, lista_weights: tuple[Path, Path],
                                                             weights_dtype: str) -> None:
    """The kernel with stored low-precision weights computes what the float32 NumPy loop
    computes with the dequantised weights (one sample, and a batch on the BLAS path); the manifest
    records the format and the NMSE change on test data."""
    from tests.test_backends_agree import solve_through_blas
    from unfoldgen.backends.registry import BACKENDS
    from unfoldgen.backends.weights import WEIGHT_FORMATS
    from unfoldgen.compiler import load_generated_module
    from unfoldgen.ir import lower
    from unfoldgen.spec import load_spec

    spec, weights = lista_weights
    code, output = run_cli("export", spec, "--weights", weights, "-o", tmp_path / "export", "--weights-dtype", weights_dtype)
    assert code == 0, output
    folder = tmp_path / "export"
    manifest = json.loads((folder / "manifest.json").read_text())
    low = manifest["weights_dtype"]
    assert low["format"] == weights_dtype and low["params"] == ["W_y", "W_x"]
    assert low["bytes"] < low["bytes_float32"]
    test = low["test"]
    assert test["samples"] == 256 and test["nmse_change_db"] == pytest.approx(test["nmse_db"] - test["nmse_db_float32"], abs=2e-3)
    assert 0 < test["relative_difference"] < 0.05
    params = dict(np.load(folder / "params.npz"))
    weight_format = WEIGHT_FORMATS[weights_dtype]
    assert params["W_x"].dtype == np.dtype(weight_format.stored)
    assert ("W_x_scale" in params) == weight_format.scaled

    dequantized = weight_format.restore(params, ["W_y", "W_x"])
    assert sorted(dequantized) == ["W_x", "W_y", "threshold"]
    program = lower(load_spec(spec))
    (tmp_path / "numpy_loop.py").write_text(BACKENDS["numpy"].emit(program))
    loop = load_generated_module(tmp_path / "numpy_loop.py", f"low_precision_loop_{weights_dtype}")
    kernel = load_generated_module(folder / "kernel.py", f"low_precision_kernel_{weights_dtype}")
    y = np.random.default_rng(0).standard_normal((20, *program.inputs["y"])).astype(np.float32)
    expected = loop.solve(dequantized, y=y)["x"]
    relative = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))
    assert relative(kernel.solve_one(params, y=y[0])["x"], expected[0]) < 1e-5  # the serial unrolled of small batches
    assert relative(solve_through_blas(kernel, params, {"y": y})["x"], expected) < 1e-5


def test_low_precision_export_refuses_what_it_cannot_store(tmp_path: Path, lista_weights: tuple[Path, Path]) -> None:
    from unfoldgen.backends.weights import WEIGHT_FORMATS
    from unfoldgen.errors import SpecError

    spec, weights = lista_weights
    code, output = run_cli("export", spec, "--weights", weights, "-o", tmp_path / "onnx", "--format", "onnx",
                           "--weights-dtype", "int8")
    assert code == 2 and "applies to the Numba kernel" in output
    rpca = small_spec(tmp_path, "rpca")
    trained(rpca, tmp_path / "rpca_run", steps=1, batch_size=2)
    code, output = run_cli("export", rpca, "--weights", tmp_path / "rpca_run" / "weights.pt", "-o", tmp_path / "rpca",
                           "--weights-dtype", "bfloat16")
    assert code == 2 and "no dense weights" in output and not (tmp_path / "rpca").exists()
    with pytest.raises(SpecError, match="does not fit float16"):
        WEIGHT_FORMATS["float16"].quantize(np.array([[1e5, 0.0]]))


def test_weight_formats_round_trip_within_their_precision() -> None:
    """Quantise then dequantise: float16 and bfloat16 round to nearest (relative error at most
    half a unit in the last place: 2**-11 and 2**-8), int8 to within half a level of the row's
    scale; exact values survive."""
    from unfoldgen.backends.weights import WEIGHT_FORMATS

    weights = np.random.default_rng(3).standard_normal((4, 6, 9)).astype(np.float32)
    weights[0, 0] = 0.0  # a row of zeros: int8 scale 0
    for name, bound in (("float16", 2.0**-11), ("bfloat16", 2.0**-8)):
        back = WEIGHT_FORMATS[name].dequantize(WEIGHT_FORMATS[name].quantize(weights))
        assert np.all(np.abs(back - weights) <= bound * np.abs(weights) + 1e-30)
        assert np.array_equal(WEIGHT_FORMATS[name].dequantize(WEIGHT_FORMATS[name].quantize(np.float32([0.5, -2.0, 1.0]))),
                              np.float32([0.5, -2.0, 1.0]))
    stored = WEIGHT_FORMATS["int8"].quantize(weights)
    back = WEIGHT_FORMATS["int8"].dequantize(stored)
    assert np.all(np.abs(back - weights) <= 0.5 * stored["scale"][..., None] * (1 + 1e-6))
    assert np.all(back[0, 0] == 0.0) and stored["scale"][0, 0] == 0.0
    levels = np.abs(stored["weights"].astype(np.int32)).max(axis=-1)
    assert levels[0, 0] == 0 and np.all(levels[stored["scale"] > 0] == 127)  # each row spans the 8 bits


@pytest.mark.parametrize("weights_dtype", ["bfloat16", "int8"])
def test_low_precision_weights_of_a_dense_network_are_dequantised_in_the_kernel(tmp_path: Path, weights_dtype: str) -> None:
    """A learned prox's dense layers are matrix-vector products of the kernel's own, so their
    weights can be stored in low precision too: the kernel with them computes what the NumPy
    loop computes with the dequantised weights, for one sample (fused rows) and for a batch
    (BLAS products of the dequantised weights)."""
    from conftest import load_module, variant

    from tests.test_backends_agree import relative, solve_through_blas
    from unfoldgen.backends.numba_kernel import emit_numba_kernel, low_precision_params
    from unfoldgen.backends.weights import WEIGHT_FORMATS

    built = variant("pnp_pgd", tmp_path, dims={"m": 8, "n": 12}, layers=3)
    model = built.model.Unfolded(A=np.random.default_rng(1).standard_normal((8, 12)) / 3, dtype=torch.float64)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():  # the last dense layer starts at zero
            parameter.add_(0.1 * torch.randn_like(parameter))
    params = {name: np.asarray(value, np.float32) for name, value in model.kernel_params().items()}
    weight_format = WEIGHT_FORMATS[weights_dtype]
    stored, names = low_precision_params(built.program, params, weight_format)
    assert names == ["prox_net_w0", "prox_net_w1"]
    (tmp_path / "low.py").write_text(emit_numba_kernel(built.program, weights_dtype=weights_dtype))
    kernel = load_module(tmp_path / "low.py")
    y = np.random.default_rng(2).standard_normal((20, 8)).astype(np.float32)
    expected = built.numpy_loop.solve(weight_format.restore(stored, names), y=y)["x"]
    assert relative(kernel.solve_one(stored, y=y[3])["x"], expected[3]) < 1e-5
    assert relative(solve_through_blas(kernel, stored, {"y": y})["x"], expected) < 1e-5
    assert relative(expected, built.numpy_loop.solve(params, y=y)["x"]) > 1e-7  # the weights did change
