"""The generated module goes through the graph tools of PyTorch: ``torch.export`` with a
dynamic batch, ``torch.compile(fullgraph=True)``, ``torch.jit.trace``, and ``unfoldgen export
--format onnx`` (checked against the module with onnxruntime). Every bundled spec, at test
sizes; eager calls keep their input checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.conftest import SPECS, load_module
from tests.test_training import run_cli, small_spec
from unfoldgen.compiler import build
from unfoldgen.ir import lower
from unfoldgen.onnx_export import onnx_blockers
from unfoldgen.spec import load_spec
from unfoldgen.training.network import weights_payload

NAMES = [path.stem for path in SPECS]
NOT_ONNX = {"admm_lasso", "rpca", "rpca_factorized"}  # matrix inverse per call; SVD
FLOAT32_ONNX = {"learned_primal_dual"}  # CNNs: onnxruntime's CPU Conv has no float64 kernel


def small_network(tmp_path: Path, name: str, dtype: torch.dtype = torch.float64) -> tuple[Any, Any, Path]:
    """The untrained module of bundled spec ``name`` at test sizes, its program and its spec."""
    spec = small_spec(tmp_path, name)
    result = build(spec, tmp_path / "out")
    module = load_module(result.directory / "model.py")
    rng = np.random.default_rng(0)
    constants = {n: rng.standard_normal(shape) / np.sqrt(shape[0]) for n, shape in result.program.constants.items()}
    return module.Unfolded(**constants, dtype=dtype), result.program, spec


def batch_of(program: Any, size: int, dtype: torch.dtype = torch.float64, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {n: torch.randn((size, *shape), generator=generator, dtype=dtype) for n, shape in program.inputs.items()}


def assert_same_outputs(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_torch_export_with_a_dynamic_batch(tmp_path: Path, name: str) -> None:
    model, program, _ = small_network(tmp_path, name)
    batch = torch.export.Dim("batch", min=1)
    exported = torch.export.export(model, (), batch_of(program, 2),
                                   dynamic_shapes={n: {0: batch} for n in program.inputs}).module()
    for size in (1, 5):
        inputs = batch_of(program, size, seed=size)
        with torch.no_grad():
            assert_same_outputs(exported(**inputs), model(**inputs))


@pytest.mark.parametrize("name", NAMES)
def test_compile_captures_the_whole_forward_in_one_graph(tmp_path: Path, name: str) -> None:
    """fullgraph=True fails on any graph break; the eager backend keeps the test fast."""
    model, program, _ = small_network(tmp_path, name)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    inputs = batch_of(program, 3)
    with torch.no_grad():
        assert_same_outputs(compiled(**inputs), model(**inputs))


@pytest.mark.slow
def test_compile_with_inductor(tmp_path: Path) -> None:
    model, program, _ = small_network(tmp_path, "lista_small", torch.float32)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)
    inputs = batch_of(program, 4, torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(compiled(**inputs)["x"], model(**inputs)["x"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_jit_trace_runs_at_other_batch_sizes(tmp_path: Path, name: str) -> None:
    model, program, _ = small_network(tmp_path, name)
    traced = torch.jit.trace(model, tuple(batch_of(program, 2).values()), strict=False, check_trace=False)
    inputs = batch_of(program, 4, seed=4)
    with torch.no_grad():
        assert_same_outputs(traced(*inputs.values()), model(**inputs))


def test_eager_calls_keep_their_input_checks(tmp_path: Path) -> None:
    model, program, _ = small_network(tmp_path, "lista_small")
    inputs = batch_of(program, 2)
    inputs["y"][1, 3] = float("nan")
    with pytest.raises(ValueError, match=r"input 'y' contains NaN or Inf \(first at index \(1, 3\)\)"):
        model(**inputs)


def test_onnx_blockers_name_what_onnx_lacks(tmp_path: Path) -> None:
    for name in NAMES:
        program = lower(load_spec(small_spec(tmp_path, name)))
        assert bool(onnx_blockers(program)) == (name in NOT_ONNX), name


def _untrained_weights(tmp_path: Path, name: str) -> tuple[Any, Any, Path, Path]:
    model, program, spec = small_network(tmp_path, name)
    weights = tmp_path / "weights.pt"
    torch.save(weights_payload(model, program), weights)
    return model, program, spec, weights


@pytest.mark.parametrize("name", sorted(set(NAMES) - NOT_ONNX))
def test_export_onnx_matches_the_module_under_onnxruntime(tmp_path: Path, name: str) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    model, program, spec, weights = _untrained_weights(tmp_path, name)
    dtype = "float32" if name in FLOAT32_ONNX else "float64"
    if name in FLOAT32_ONNX:
        code, output = run_cli("export", spec, "--weights", weights, "-o", tmp_path / "refused", "--format", "onnx",
                               "--dtype", "float64")
        assert code == 2 and "hint: export with --dtype float32" in output, output
        model = model.to(torch.float32)
    code, output = run_cli("export", spec, "--weights", weights, "-o", tmp_path / "onnx", "--format", "onnx",
                           "--dtype", dtype)
    assert code == 0, output
    folder = tmp_path / "onnx"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "manifest.json", "model.onnx"]
    manifest = json.loads((folder / "manifest.json").read_text())
    tolerance = 1e-4 if name in FLOAT32_ONNX else 1e-10
    assert manifest["format"] == "onnx" and manifest["onnxruntime_check"]["max_relative_error"] <= tolerance
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(program.inputs)
    assert [o.name for o in session.get_outputs()] == list(program.outputs)
    for size in (1, 6):
        inputs = {n: t.to(getattr(torch, dtype)) for n, t in batch_of(program, size, seed=size).items()}
        got = session.run(None, {n: t.numpy() for n, t in inputs.items()})
        with torch.no_grad():
            expected = model(**inputs)
        for value, output in zip(got, program.outputs):
            np.testing.assert_allclose(value, expected[output].numpy(), rtol=tolerance * 10, atol=tolerance / 10)


@pytest.mark.parametrize("name", sorted(NOT_ONNX))
def test_export_onnx_refuses_what_onnx_cannot_express(tmp_path: Path, name: str) -> None:
    _, _, spec, weights = _untrained_weights(tmp_path, name)
    code, output = run_cli("export", spec, "--weights", weights, "-o", tmp_path / "onnx", "--format", "onnx")
    assert code == 2, output
    assert "cannot be exported to ONNX" in output and "hint: export it as a Numba kernel" in output
    assert "Traceback" not in output and not (tmp_path / "onnx").exists()
