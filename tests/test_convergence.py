"""Test 3: untrained networks with many layers reach the exact minimiser computed by independent
reference solvers written here (coordinate descent, scipy), to 1e-5 relative."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import variant
from scipy.optimize import lsq_linear, nnls


def problem(rng, m: int, n: int):
    A = rng.standard_normal((m, n)) / np.sqrt(m)
    x = rng.standard_normal(n) * (rng.random(n) < 0.3)
    y = A @ x + 0.05 * rng.standard_normal(m)
    return A, y


def coordinate_descent(A, y, l1: float, l2: float = 0.0, sweeps: int = 20000) -> np.ndarray:
    """min 0.5||Ax - y||^2 + l1 ||x||_1 + l2/2 ||x||^2, exact coordinate minimisation."""
    x = np.zeros(A.shape[1])
    residual = y - A @ x
    norms = np.sum(A * A, axis=0)
    for _ in range(sweeps):
        previous = x.copy()
        for j in range(A.shape[1]):
            rho = A[:, j] @ residual + norms[j] * x[j]
            new = np.sign(rho) * max(abs(rho) - l1, 0.0) / (norms[j] + l2)
            residual += A[:, j] * (x[j] - new)
            x[j] = new
        if np.max(np.abs(x - previous)) < 1e-15:
            break
    return x


def run(built, A, y, **params) -> np.ndarray:
    model = built.model.Unfolded(A=A, dtype=torch.float64, **params)
    with torch.no_grad():
        return model(y=torch.from_numpy(y[None]))["x"][0].numpy()


def relative(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("name, layers", [("ista_lasso", 3000), ("fista_lasso", 500)])
def test_lasso_reaches_minimiser(tmp_path, rng, name, layers):
    built = variant(name, tmp_path, dims={"m": 30, "n": 20}, layers=layers)
    A, y = problem(rng, 30, 20)
    assert relative(run(built, A, y), coordinate_descent(A, y, 0.1)) < 1e-5


def test_elastic_net_reaches_minimiser(tmp_path, rng):
    built = variant("elastic_net", tmp_path, dims={"m": 30, "n": 20}, layers=3000)
    A, y = problem(rng, 30, 20)
    assert relative(run(built, A, y), coordinate_descent(A, y, 0.1, 0.5)) < 1e-5


def test_nnls_reaches_minimiser(tmp_path, rng):
    built = variant("nnls", tmp_path, dims={"m": 30, "n": 20}, layers=3000)
    A, y = problem(rng, 30, 20)
    assert relative(run(built, A, y), nnls(A, y)[0]) < 1e-5


def test_box_ls_reaches_minimiser(tmp_path, rng):
    built = variant("box_ls", tmp_path, dims={"m": 30, "n": 20}, layers=3000)
    A, y = problem(rng, 30, 20)
    y = 3 * y  # make some bounds active
    reference = lsq_linear(A, y, bounds=(-0.5, 0.5), tol=1e-14, method="bvls").x
    assert relative(run(built, A, y), reference) < 1e-5


def test_untrained_lista_is_ista_layer_by_layer(tmp_path, rng):
    """An independent ISTA iteration, compared after every layer."""
    built = variant("lista", tmp_path, dims={"m": 20, "n": 40})
    A, y = problem(rng, 20, 40)
    model = built.model.Unfolded(A=A, dtype=torch.float64)
    with torch.no_grad():
        layers = model(y=torch.from_numpy(y[None]), all_layers=True)
    step = 1 / np.linalg.norm(A, 2) ** 2
    x = np.zeros(40)
    for output in layers:
        v = x - step * A.T @ (A @ x - y)
        x = np.sign(v) * np.maximum(np.abs(v) - step * 0.1, 0)
        np.testing.assert_allclose(output["x"][0].numpy(), x, rtol=1e-12, atol=1e-14)
