"""Test 4: the PyTorch module and the Numba kernel agree on the same parameters, for every
bundled spec (1e-8 relative in float64, 1e-4 in float32), also after perturbing every
trainable parameter, and the single-sample path agrees with the batched one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import SPECS, variant


def random_inputs(built, rng, batch: int) -> dict[str, np.ndarray]:
    return {name: rng.standard_normal((batch, *shape)) for name, shape in built.program.inputs.items()}


def relative(a, b) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_torch_and_numba_agree(tmp_path, rng, path):
    built = variant(path.stem, tmp_path, dims={"m": 12, "n": 8}, layers=6)
    constants = {name: rng.standard_normal(shape) / 3 for name, shape in built.program.constants.items()}
    model = built.model.Unfolded(**constants, dtype=torch.float64)
    with torch.no_grad():
        for parameter in model.parameters():  # perturb every trainable parameter
            parameter.mul_(1 + 0.2 * torch.rand_like(parameter))
    inputs = random_inputs(built, rng, 5)
    with torch.no_grad():
        expected = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    params = model.kernel_params()
    got64 = built.kernel.solve(params, **inputs)
    got32 = built.kernel.solve(params, **{k: v.astype(np.float32) for k, v in inputs.items()})
    one = built.kernel.solve_one(params, **{k: v[2] for k, v in inputs.items()})
    for name, value in expected.items():
        reference = value.numpy()
        assert relative(got64[name], reference) < 1e-8
        assert got32[name].dtype == np.float32
        assert relative(got32[name], reference) < 1e-4
        assert relative(one[name], reference[2]) < 1e-8


def test_kernel_rejects_wrong_shapes(tmp_path, rng):
    built = variant("ista_lasso", tmp_path, dims={"m": 6, "n": 4}, layers=2)
    model = built.model.Unfolded(A=rng.standard_normal((6, 4)))
    with pytest.raises(ValueError, match="input 'y'"):
        built.kernel.solve(model.kernel_params(), y=np.zeros((3, 5)))
    with pytest.raises(ValueError, match="input 'y'"):
        model(y=torch.zeros(3, 5))
    with pytest.raises(ValueError, match="constant 'A'"):
        built.model.Unfolded(A=np.zeros((5, 4)))
