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
from conftest import Built, variant, write_spec

from unfoldgen.compiler import build
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


def test_the_gradient_reaches_every_learned_filter_step_and_network(tmp_path, rng):
    """learn.objective untied: each layer's blur kernel is a parameter, initialised to the
    model's; with learn.prox, the CNNs of the primal and dual proxes. A supervised loss has a
    nonzero gradient in every one of them (per layer)."""
    learn = {"objective": "untied", "hyperparameters": {"primal_step": "per_layer", "dual_step": "per_layer"},
             "prox": {"network": "cnn", "widths": [3], "activation": "relu", "tying": "per_layer"}}
    built = _deblur(tmp_path, 12, 3, learn)
    h = gaussian_kernel((5, 5), 1.0)
    model = built.model.Unfolded(h=h, dtype=torch.float64)
    np.testing.assert_array_equal(model.h_layer.detach().numpy(), np.stack([h] * 3))  # the model's kernel
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "prox_net" in name:  # CNNs start with a zero last layer: move them off zero
                parameter.add_(0.1 * torch.randn_like(parameter))
    truth = torch.from_numpy(piecewise_constant(rng, 4, (12, 12), 4))
    blurred = torch.from_numpy(np.stack([scipy.ndimage.convolve(x, h, mode="wrap") for x in truth.numpy()]))
    loss = (model(Y=blurred)["X"] - truth).square().sum()
    loss.backward()
    for name, parameter in model.named_parameters():
        grad = parameter.grad
        assert grad is not None, name
        per_layer = grad.reshape(3, -1) if name in ("h_layer", "primal_step_raw", "dual_step_raw") else grad.reshape(1, -1)
        assert (per_layer.abs().sum(dim=1) > 0).all(), name


def test_derivation_states_the_operators_and_their_norms(tmp_path):
    text = (_deblur(tmp_path, 12, 2).directory / "DERIVATION.md").read_text()
    assert "## Linear operators" in text and "largest modulus of the DFT" in text
    assert r"2\sqrt{\cos^2(\pi/2m) + \cos^2(\pi/2n)}" in text and "`lam * tv(X)` with $K = \\nabla$" in text


def test_other_methods_refuse_a_penalty_of_a_linear_map(tmp_path):
    from unfoldgen.errors import SpecError

    with pytest.raises(SpecError, match=r"(?s)penalises a linear map of .x.*use algorithm.method: primal_dual"):
        variant("tv_denoise_1d", tmp_path, algorithm={"method": "proximal_gradient", "layers": 3})


ADMM = {"method": "admm", "layers": 400, "penalty": 1.0}


def test_admm_with_a_linear_constraint(tmp_path, rng):
    """z = diff(x): the x-update's system H + rho D^T D is formed from the operators and inverted
    when the model is built. Long runs reach CVXPY; the backends agree with a learned penalty."""
    from test_backends_agree import assert_backends_agree

    admm = ADMM
    built = variant("tv_denoise_1d", tmp_path / "long", algorithm=admm, learn=None)
    assert "dense_matrix(lambda" in (built.directory / "model.py").read_text()
    y = piecewise_constant(rng, 1, (64,), 6)[0] + 0.3 * rng.standard_normal(64)
    with torch.no_grad():
        out = built.model.Unfolded(dtype=torch.float64)(y=torch.from_numpy(y[None]))["x"][0].numpy()
    x = cp.Variable(64)
    _solve(cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - y) + 0.5 * cp.norm1(cp.diff(x)))))
    assert np.abs(out - x.value).max() < 1e-4
    learned = variant("tv_denoise_1d", tmp_path / "learned", dims={"n": 12},
                      algorithm={**admm, "layers": 4}, learn={"hyperparameters": {"penalty": "per_layer"}})
    assert_backends_agree(learned, rng)


def test_admm_solves_an_image_system_by_dcts(tmp_path, rng):
    """z = grad2d(X) with H = I: the x-update by two 2-D DCTs and the Laplacian's eigenvalues."""
    from test_backends_agree import assert_backends_agree

    admm = ADMM
    image = {"name": "tv_denoise_2d", "dims": {"m": 12, "n": 10}, "inputs": {"Y": ["m", "n"]}, "params": {"lam": 0.2},
             "variables": {"X": {"shape": ["m", "n"], "init": "Y"}},
             "objective": {"smooth": "0.5 * sum_squares(X - Y)", "nonsmooth": ["lam * tv(X)"]},
             "algorithm": {**admm, "layers": 300}}
    result = build(write_spec(tmp_path / "image", image), tmp_path / "image" / "out")
    assert "laplacian_eigenvalues" in (result.directory / "model.py").read_text()
    y = rng.standard_normal((12, 10))
    model = Built(result.directory, result.program).model.Unfolded(dtype=torch.float64)
    with torch.no_grad():
        out = model(Y=torch.from_numpy(y[None]))["X"][0].numpy()
    X = cp.Variable((12, 10))
    _solve(cp.Problem(cp.Minimize(0.5 * cp.sum_squares(X - y) + 0.2 * _tv_cvxpy(X))))
    assert np.abs(out - X.value).max() < 1e-4
    small = {**image, "name": "tv_denoise_2d_small", "algorithm": {**admm, "layers": 3},
             "learn": {"hyperparameters": {"penalty": "per_layer"}}}
    result = build(write_spec(tmp_path / "small", small), tmp_path / "small" / "out")
    assert_backends_agree(Built(result.directory, result.program), rng)


def test_admm_solves_a_circulant_system_by_dfts(tmp_path, rng):
    """Circular convolutions in H and K: the x-update in the DFT basis (real cos / sin matrices);
    a blur with TV is diagonal in no one basis, and is refused with a hint."""
    from test_backends_agree import assert_backends_agree

    from unfoldgen.errors import SpecError

    admm = ADMM
    y = rng.standard_normal((12, 10))
    filtered = {"name": "deblur_filter", "dims": {"m": 12, "n": 10}, "inputs": {"Y": ["m", "n"]},
                "constants": {"h": [5, 5], "d": [3, 3]}, "params": {"lam": 0.05},
                "variables": {"X": {"shape": ["m", "n"], "init": "Y"}},
                "objective": {"smooth": "0.5 * sum_squares(conv(h, X) - Y) + 0.1 * sum_squares(X)",
                              "nonsmooth": ["lam * norm1(conv(d, X))"]},
                "algorithm": {**admm, "layers": 4000}}
    result = build(write_spec(tmp_path / "dft", filtered), tmp_path / "dft" / "out")
    assert "dft_cos" in (result.directory / "model.py").read_text()
    h, d = gaussian_kernel((5, 5), 1.0), np.array([[0.0, -1, 0], [-1, 4, -1], [0, -1, 0]])
    with torch.no_grad():
        out = Built(result.directory, result.program).model.Unfolded(h=h, d=d, dtype=torch.float64)(
            Y=torch.from_numpy(y[None]))["X"][0].numpy()
    X = cp.Variable((12, 10))

    def circulant(kernel):
        return np.stack([scipy.ndimage.convolve(e.reshape((12, 10), order="F"), kernel, mode="wrap").ravel(order="F")
                         for e in np.eye(120)], axis=1)

    v = cp.vec(X, order="F")
    _solve(cp.Problem(cp.Minimize(0.5 * cp.sum_squares(circulant(h) @ v - y.ravel(order="F")) + 0.1 * cp.sum_squares(v)
                                  + 0.05 * cp.norm1(circulant(d) @ v))))
    assert np.abs(out - X.value).max() < 1e-4
    small = {**filtered, "name": "deblur_filter_small", "algorithm": {**admm, "layers": 3},
             "learn": {"hyperparameters": {"penalty": "per_layer"}}}
    result = build(write_spec(tmp_path / "dft_small", small), tmp_path / "dft_small" / "out")
    assert_backends_agree(Built(result.directory, result.program), rng)
    with pytest.raises(SpecError, match="use primal_dual"):  # a blur and TV: not diagonal in one basis
        variant("deblur_tv", tmp_path / "blur", dims={"m": 12, "n": 12}, algorithm={**admm, "layers": 3}, learn=None)
