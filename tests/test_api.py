"""The Python API (``import unfoldgen``): compile in memory, and the CLI's commands as functions."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import unfoldgen
from tests.conftest import ROOT
from tests.test_training import small_spec


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("UNFOLDGEN_CACHE", str(folder))
    return folder


def test_import_is_cheap_and_exports_the_api() -> None:
    code = "import sys, unfoldgen; print(sorted(m for m in ('torch', 'numba', 'sympy') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    assert {"compile", "build", "train", "evaluate", "export", "load", "SpecError"} <= set(unfoldgen.__all__)


def test_every_public_name_is_documented() -> None:
    page = (ROOT / "docs" / "api.md").read_text()
    for name in unfoldgen.__all__:
        assert f"`{name}" in page or f"unfoldgen.{name}" in page, name
    readme = (ROOT / "README.md").read_text()
    assert "unfoldgen.compile(" in readme and "docs/api.md" in readme


def test_compile_writes_nothing_in_the_working_folder(tmp_path: Path, cache: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    spec = small_spec(tmp_path, "lista_small")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    net = unfoldgen.compile(spec)
    assert net.name == "lista_small" and net.directory.parent == cache
    assert net.derivation == net.files["DERIVATION.md"] and "# lista_small" in net.derivation
    assert net.model.LAYERS == 3
    rng = np.random.default_rng(0)
    A = rng.standard_normal(net.program.constants["A"])
    y = rng.standard_normal((4, *net.program.inputs["y"]))
    model = net.Unfolded(A=A)
    x = model(y=y)["x"].detach().numpy()
    loop = net.numpy_loop.solve(model.kernel_params(), y=y)["x"]
    np.testing.assert_allclose(loop, x, rtol=1e-10, atol=1e-12)
    assert list(work.iterdir()) == []
    again = unfoldgen.compile(spec)
    assert again.directory == net.directory  # same content, same folder: Numba's cache is reused


def test_compile_of_a_bad_spec_raises_spec_error(tmp_path: Path, cache: Path) -> None:
    with pytest.raises(unfoldgen.SpecError, match="lr must be a positive number"):
        unfoldgen.compile(ROOT / "tests" / "bad_specs" / "negative_lr.yaml")
    assert not cache.exists()


@pytest.mark.slow
def test_build_train_evaluate_export_and_load(tmp_path: Path) -> None:
    spec = small_spec(tmp_path, "lista_small")
    built = unfoldgen.build(spec, tmp_path / "generated")
    assert (built.directory / "model.py").is_file()
    with pytest.raises(unfoldgen.SpecError, match="--batch-size"):
        unfoldgen.train(spec, tmp_path / "run", batch_size=0)
    result = unfoldgen.train(spec, tmp_path / "run", steps=6, batch_size=8, validate_every=3,
                             validation_samples=16, dtype="float64")
    assert result.finished and result.name == "lista_small" and (tmp_path / "run" / "weights.pt").is_file()
    report = unfoldgen.evaluate(spec, tmp_path / "run" / "weights.pt", samples=8, classical_iterations=20)
    assert len(report.trained) == 3 and re.search(r"layer", report.table())
    model = unfoldgen.load(spec, tmp_path / "run" / "weights.pt")
    assert not model.training and model.A.dtype == torch.float64
    saved = np.load(tmp_path / "run" / "params.npz")
    for name, value in model.kernel_params().items():
        np.testing.assert_array_equal(value, saved[name])
    exported = unfoldgen.export(spec, tmp_path / "run" / "weights.pt", tmp_path / "deploy", dtype="float64")
    manifest = json.loads((exported.directory / "manifest.json").read_text())
    assert manifest["format"] == "numba" and manifest["dtype"] == "float64"
