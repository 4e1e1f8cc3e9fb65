"""Test 2: every catalog prox and every derived separable prox, as emitted in model.py, equals a
numerical minimisation of 0.5*||u - v||^2 + t*h(u); the Moreau identity holds where it applies."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from conftest import Built, write_spec
from scipy.optimize import minimize, minimize_scalar

from unfoldgen.compiler import build

T = 0.7  # the prox scale t


def prox_module(tmp_path, term: str, shape: list[str], params: dict[str, float]) -> Built:
    data = {
        "name": "prox_case",
        "dims": {"m": 4, "n": 3} if len(shape) == 2 else {"n": 6},
        "inputs": {"y": shape},
        "params": params,
        "variables": {"x": {"shape": shape}},
        "objective": {"smooth": "0.5 * sum_squares(x - y)", "nonsmooth": [term]},
        "algorithm": {"method": "proximal_gradient", "layers": 1, "step": 1},
    }
    tmp_path.mkdir(parents=True, exist_ok=True)
    result = build(write_spec(tmp_path, data), tmp_path / "out")
    built = Built(result.directory, result.program)
    built.params = params
    return built


def apply(module: Built, v: np.ndarray, **hyper: float) -> np.ndarray:
    """Call the emitted prox_x with the hyperparameters given and the spec's params."""
    accepted = inspect.signature(module.model.prox_x).parameters
    values = {**{k: val for k, val in module.params.items() if k in accepted}, **hyper}
    tensors = {k: torch.tensor(val, dtype=torch.float64) for k, val in values.items()}
    return module.model.prox_x(torch.from_numpy(v[None]), **tensors)[0].numpy()


def separable_minimum(h, v: np.ndarray) -> np.ndarray:
    return np.array([minimize_scalar(lambda u, vi=vi: 0.5 * (u - vi) ** 2 + T * h(u), bounds=(vi - 20, vi + 20),
                                     method="bounded", options={"xatol": 1e-12}).x for vi in v])


VECTORS = [np.array([-2.0, -0.3, 0.0, 0.1, 0.9, 3.0]), np.array([0.05, -0.02, 0.01, 0.0, -0.04, 0.03])]


@pytest.mark.parametrize("v", VECTORS)
def test_norm1_soft_threshold(tmp_path, v):
    module = prox_module(tmp_path, "lam * norm1(x)", ["n"], {"lam": 0.3})
    got = apply(module, v, threshold=T * 0.3)
    np.testing.assert_allclose(got, separable_minimum(lambda u: 0.3 * abs(u), v), atol=1e-6)
    # Moreau: v = prox_{t h}(v) + t prox_{h*/t}(v/t); h* is the indicator of the l_inf ball of radius lam
    np.testing.assert_allclose(got + np.clip(v, -T * 0.3, T * 0.3), v, atol=1e-12)


@pytest.mark.parametrize("term, h, hyper", [
    ("lam * sum_squares(x)", lambda u: 0.3 * u**2, {"scale": 1 / (1 + 2 * T * 0.3)}),
    ("nonneg(x)", None, {}),
    ("box(x, lo, hi)", None, {}),
    ("elastic_net(x, lam, mu)", lambda u: 0.3 * abs(u) + 0.5 * u**2, {"threshold": T * 0.3, "scale": 1 / (1 + T)}),
])
def test_separable_catalog_entries(tmp_path, term, h, hyper):
    module = prox_module(tmp_path, term, ["n"], {"lam": 0.3, "mu": 1.0, "lo": -0.5, "hi": 1.0})
    module.params = {"lam": 0.3, "mu": 1.0, "lo": -0.5, "hi": 1.0}
    v = VECTORS[0]
    got = apply(module, v, **hyper)
    if h is not None:
        expected = separable_minimum(h, v)
    else:
        bounds = [(0, None)] * 6 if term.startswith("nonneg") else [(-0.5, 1.0)] * 6
        expected = minimize(lambda u: 0.5 * np.sum((u - v) ** 2), np.zeros(6), bounds=bounds,
                            method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-12}).x
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_norm1_plus_nonneg_composes_exactly(tmp_path):
    data_term = "lam * norm1(x)"
    module = prox_module(tmp_path, data_term, ["n"], {"lam": 0.3})
    # same program, plus the constraint: prox of lam*|u| + indicator(u >= 0)
    data = {
        "name": "prox_combo", "dims": {"n": 6}, "inputs": {"y": ["n"]}, "params": {"lam": 0.3},
        "variables": {"x": {"shape": ["n"]}},
        "objective": {"smooth": "0.5 * sum_squares(x - y)", "nonsmooth": [data_term, "nonneg(x)"]},
        "algorithm": {"method": "proximal_gradient", "layers": 1, "step": 1},
    }
    combo = Built(build(write_spec(tmp_path, data), tmp_path / "out").directory, None)
    combo.params = {"lam": 0.3}
    v = VECTORS[0]
    h = lambda u: 0.3 * abs(u) if u >= 0 else 1e6 * abs(u)
    expected = separable_minimum(h, v)
    np.testing.assert_allclose(apply(combo, v, threshold=T * 0.3), expected, atol=1e-5)
    assert module is not None


@pytest.mark.parametrize("v", VECTORS)
def test_norm2_block_shrink_and_ball_moreau(tmp_path, v):
    shrink = prox_module(tmp_path, "lam * norm2(x)", ["n"], {"lam": 0.3})
    got = apply(shrink, v, threshold=T * 0.3)
    objective = lambda u: 0.5 * np.sum((u - v) ** 2) + T * 0.3 * np.linalg.norm(u)
    numeric = minimize(objective, v, method="Powell", options={"xtol": 1e-12, "ftol": 1e-15}).x
    assert objective(got) <= objective(numeric) + 1e-10
    np.testing.assert_allclose(got, numeric, atol=1e-4)
    ball = prox_module(tmp_path / "b", "ball2(x, r)", ["n"], {"r": T * 0.3})
    # Moreau: the conjugate of r*||.||_2 is the indicator of the ball of radius r
    np.testing.assert_allclose(got + apply(ball, v), v, atol=1e-12)


def test_ball2_projection(tmp_path):
    module = prox_module(tmp_path, "ball2(x, r)", ["n"], {"r": 1.5})
    v = VECTORS[0]
    got = apply(module, v)
    constraint = {"type": "ineq", "fun": lambda u: 1.5**2 - np.sum(u**2)}
    numeric = minimize(lambda u: 0.5 * np.sum((u - v) ** 2), np.zeros(6), constraints=[constraint],
                       method="SLSQP", options={"ftol": 1e-14}).x
    np.testing.assert_allclose(got, numeric, atol=1e-6)


def test_simplex_projection(tmp_path):
    module = prox_module(tmp_path, "simplex(x, r)", ["n"], {"r": 2.0})
    v = VECTORS[0]
    got = apply(module, v)
    constraint = {"type": "eq", "fun": lambda u: np.sum(u) - 2.0}
    numeric = minimize(lambda u: 0.5 * np.sum((u - v) ** 2), np.full(6, 1 / 3), constraints=[constraint],
                       bounds=[(0, None)] * 6, method="SLSQP", options={"ftol": 1e-14}).x
    np.testing.assert_allclose(got, numeric, atol=1e-6)


def test_nuclear_singular_value_threshold(tmp_path, rng):
    module = prox_module(tmp_path, "lam * nuclear(x)", ["m", "n"], {"lam": 0.5})
    v = rng.standard_normal((4, 3))
    got = apply(module, v, threshold=T * 0.5)
    objective = lambda u: 0.5 * np.sum((u - v) ** 2) + T * 0.5 * np.linalg.norm(u, "nuc")
    for _ in range(200):
        assert objective(got) <= objective(got + 1e-3 * rng.standard_normal((4, 3))) + 1e-12
    u, s, vt = np.linalg.svd(v, full_matrices=False)
    spectral_ball = (u * np.minimum(s, T * 0.5)) @ vt  # projection onto {||.||_2 <= t*lam}
    np.testing.assert_allclose(got + spectral_ball, v, atol=1e-12)


@pytest.mark.parametrize("penalty, h", [
    ("sum(lam*abs(x) + 0.5*mu*x**2)", lambda u: 0.3 * abs(u) + 0.5 * 2.0 * u**2),
    ("sum(abs(x - 1) + x**2)", lambda u: abs(u - 1) + u**2),
    ("sum(lam*max(x, 0))", lambda u: 0.3 * max(u, 0)),
    ("sum(0.5*mu*x**2)", lambda u: u**2),
    ("mu * sum(abs(x) + abs(x + 1))", lambda u: 2.0 * (abs(u) + abs(u + 1))),
])
def test_derived_separable_prox(tmp_path, penalty, h):
    module = prox_module(tmp_path, penalty, ["n"], {"lam": 0.3, "mu": 2.0})
    for v in VECTORS:
        np.testing.assert_allclose(apply(module, v, prox_step=T), separable_minimum(h, v), atol=1e-6)
