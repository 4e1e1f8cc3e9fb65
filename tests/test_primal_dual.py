"""The primal-dual method on composite penalties h(K x): untrained, the network is a PDHG /
Condat-Vu iteration written separately here in NumPy (with SciPy's convolution); long untrained
runs reach CVXPY's solution of 1-D TV denoising and of 16x16 TV deblurring; the gradient of a
loss reaches every learned step and every learned filter."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import scipy.ndimage
import torch
from conftest import variant

from unfoldgen.training.data import gaussian_kernel, piecewise_constant


def _gradient(x):
    """[dx; dy], zero on the last row / column."""
    dx, dy = np.zeros_like(x), np.zeros_like(x)
    dx[:-1] = x[1:] - x[:-1]
    dy[:, :-1] = x[:, 1:] - x[:, :-1]
    return np.concatenate([dx, dy])


def _gradient_adjoint(z):
    m = z.shape[0] // 2
    dx, dy = z[:m].copy(), z[m:].copy()
    dx[-1], dy[:, -1] = 0.0, 0.0
    out = -dx - dy
    out[1:] += dx[:-1]
    out[:, 1:] += dy[:, :-1]
    return out


def _pair_clip(z, radius):
    """Projection onto {|(a_ij, b_ij)| <= radius}: the prox of the pair norm's conjugate."""
    m = z.shape[0] // 2
    norm = np.sqrt(z[:m] ** 2 + z[m:] ** 2)
    scale = np.maximum(norm / radius, 1.0)
    return z / np.concatenate([scale, scale])


def pdhg_deblur(y, h, lam, iterations, tau, sigma):
    """Condat-Vu for 0.5 ||h * x - y||^2 + lam TV(x), from x = y (circular convolution)."""
    def blur(x):
        return scipy.ndimage.convolve(x, h, mode="wrap")

    def blur_adjoint(x):
        return scipy.ndimage.correlate(x, h, mode="wrap")

    x, xbar, dual = y.copy(), y.copy(), np.zeros((2 * y.shape[0], y.shape[1]))
    for _ in range(iterations):
        dual = _pair_clip(dual + sigma * _gradient(xbar), lam)
        x_next = x - tau * (blur_adjoint(blur(x) - y) + _gradient_adjoint(dual))
        xbar, x = 2 * x_next - x, x_next
    return x


def _deblur(tmp_path, size, layers, learn=None):
    changes = {"learn": learn} if learn is not None else {}
    return variant("deblur_tv", tmp_path, dims={"m": size, "n": size}, layers=layers, **changes)


def _steps(model):
    return [value.detach().numpy() for value in model.layer_values()]


def test_untrained_network_is_numpy_pdhg(tmp_path, rng):
    built = _deblur(tmp_path, 12, 8)
    h = gaussian_kernel((5, 5), 1.0)
    model = built.model.Unfolded(h=h, dtype=torch.float64)
    dual_step, primal_step = _steps(model)
    assert np.ptp(dual_step) == 0 and np.ptp(primal_step) == 0  # the classical steps, one per layer
    y = piecewise_constant(rng, 1, (12, 12), 4)[0] + 0.05 * rng.standard_normal((12, 12))
    with torch.no_grad():
        out = model(Y=torch.from_numpy(y[None]))["X"][0].numpy()
    expected = pdhg_deblur(y, h, 0.02, 8, float(primal_step[0]), float(dual_step[0]))
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    # the classical steps: s = 1/||K||, t = 0.99/(L/2 + ||K||), ||K|| the image gradient's, L = max|DFT(h)|^2
    norm = 2 * np.sqrt(2) * np.cos(np.pi / 24)
    lipschitz = np.abs(np.fft.fft2(h, s=(12, 12))).max() ** 2
    assert dual_step[0] == pytest.approx(1 / norm, rel=1e-12)
    assert primal_step[0] == pytest.approx(0.99 / (lipschitz / 2 + norm), rel=1e-12)


def _tv_cvxpy(x):
    """Isotropic TV with the compiler's boundary: pairs inside, single differences on the edges."""
    dx, dy = x[1:, :] - x[:-1, :], x[:, 1:] - x[:, :-1]
    inner = cp.norm(cp.vstack([cp.vec(dx[:, :-1], order="F"), cp.vec(dy[:-1, :], order="F")]), 2, axis=0)
    return cp.sum(inner) + cp.norm1(dy[-1, :]) + cp.norm1(dx[:, -1])


def _solve(problem):
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11)


@pytest.mark.slow
def test_long_runs_reach_cvxpy(tmp_path, rng):
    # 1-D TV denoising, n = 64
    built = variant("tv_denoise_1d", tmp_path / "1d", layers=3000)
    y = piecewise_constant(rng, 1, (64,), 6)[0] + 0.3 * rng.standard_normal(64)
    with torch.no_grad():
        out = built.model.Unfolded(dtype=torch.float64)(y=torch.from_numpy(y[None]))["x"][0].numpy()
    x = cp.Variable(64)
    _solve(cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - y) + 0.5 * cp.norm1(cp.diff(x)))))
    assert np.abs(out - x.value).max() < 1e-4
    # 16x16 TV deblurring
    built = _deblur(tmp_path / "2d", 16, 4000)
    h = gaussian_kernel((5, 5), 1.0)
    image = piecewise_constant(rng, 1, (16, 16), 4)[0]
    y = scipy.ndimage.convolve(image, h, mode="wrap") + 0.02 * rng.standard_normal((16, 16))
    with torch.no_grad():
        out = built.model.Unfolded(h=h, dtype=torch.float64)(Y=torch.from_numpy(y[None]))["X"][0].numpy()
    blur = np.stack([scipy.ndimage.convolve(e.reshape((16, 16), order="F"), h, mode="wrap").ravel(order="F")
                     for e in np.eye(256)], axis=1)
    X = cp.Variable((16, 16))
    _solve(cp.Problem(cp.Minimize(0.5 * cp.sum_squares(blur @ cp.vec(X, order="F") - y.ravel(order="F"))
                                  + 0.02 * _tv_cvxpy(X))))
    assert np.abs(out - X.value).max() < 1e-4
