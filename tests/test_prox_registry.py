"""Every registered prox function, everywhere: its prox against a numerical minimisation of its
definition, the Moreau identity where the conjugate is registered too, its value, its cost, and
PyTorch = NumPy = Numba.

One spec holds them all: a variable ``x_<f>`` per function ``f``, each with the data term
``0.5 ||x_f - y_f||^2`` and the term ``f``, started at ``y_f`` and run for one layer of block
proximal gradient with step ``T/L`` (``L = 1``). The output is then exactly ``prox_{T h}(y_f)``,
so each backend's prox is checked through the whole compiler, with one Numba compilation.

``DEFINITIONS`` holds an independent NumPy definition of each function (written here, not read
from the registry); a registered function without one fails ``test_every_function_is_defined``.
A composite function ``h(K X)`` (``tv``) is defined, valued and proxed on ``Z = K X``: its helper,
as each backend emits it for a primal-dual spec, is checked against the minimisation directly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import Built, write_spec
from scipy.optimize import minimize

from unfoldgen.compiler import build
from unfoldgen.operators.prox import FUNCTIONS, HELPERS

T = 0.7  # the step, so the prox of T*h is checked
PARAMS = {"lam": 0.4, "lo": -0.5, "hi": 1.0, "r": 1.5, "alpha": 0.3, "mu": 1.0}
ARGS = {"elastic_net": "alpha, mu", "box": "lo, hi", "ball2": "r", "ball1": "r", "simplex": "r"}
VECTOR, MATRIX = (6,), (4, 3)
STACKED = (8, 3)  # grad2d of a 4 x 3 image: what a composite function's prox and value act on
DIRECT = [name for name, function in FUNCTIONS.items() if function.linear is None]
COMPOSITE = [name for name, function in FUNCTIONS.items() if function.linear is not None]


def _rows(u: np.ndarray) -> np.ndarray:
    return np.linalg.norm(u, axis=-1)


# name -> (h(u) without the weight, or None for a constraint; the constraint's set as a test of u)
DEFINITIONS: dict[str, tuple[Callable[[np.ndarray], float] | None, Callable[[np.ndarray], bool] | None]] = {
    "norm1": (lambda u: np.abs(u).sum(), None),
    "sum_squares": (lambda u: (u**2).sum(), None),
    "elastic_net": (lambda u: 0.3 * np.abs(u).sum() + 0.5 * (u**2).sum(), None),
    "norm2": (lambda u: np.linalg.norm(u), None),
    "nuclear": (lambda u: np.linalg.svd(u, compute_uv=False).sum(), None),
    "norm_inf": (lambda u: np.abs(u).max(), None),
    "norm21": (lambda u: _rows(u).sum(), None),
    "l0": (lambda u: float(np.count_nonzero(u)), None),
    "nonneg": (None, lambda u: bool((u >= -1e-12).all())),
    "box": (None, lambda u: bool(((u >= -0.5 - 1e-12) & (u <= 1.0 + 1e-12)).all())),
    "ball2": (None, lambda u: bool(np.linalg.norm(u) <= 1.5 + 1e-9)),
    "ball1": (None, lambda u: bool(np.abs(u).sum() <= 1.5 + 1e-9)),
    "simplex": (None, lambda u: bool((u >= -1e-12).all() and abs(u.sum() - 1.5) <= 1e-9)),
    "tv": (lambda z: np.sqrt(z[:4] ** 2 + z[4:] ** 2).sum(), None),  # on Z = [dx; dy] of a 4 x 3 image
    "tv1": (lambda z: np.abs(z).sum(), None),
}
# Pairs (f, g) with g the indicator whose projection is the prox of f's conjugate (weight lam):
# v = prox_{T lam f}(v) + projection of v onto g's set of radius T lam.
MOREAU = [("norm1", "box"), ("norm2", "ball2"), ("norm_inf", "ball1")]


def shape_of(name: str) -> tuple[int, ...]:
    if FUNCTIONS[name].linear is not None:
        return STACKED
    return MATRIX if FUNCTIONS[name].matrix_only else VECTOR


def term(name: str) -> str:
    args = f", {ARGS[name]}" if name in ARGS else ""
    weight = "lam * " if FUNCTIONS[name].weighted else ""
    return f"{weight}{name}(x_{name}{args})"


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> Built:
    names = DIRECT
    dims = {"n": VECTOR[0], "m": MATRIX[0], "p": MATRIX[1]}
    shape = {VECTOR: ["n"], MATRIX: ["m", "p"]}
    data = {
        "name": "registry_case", "dims": dims, "params": PARAMS,
        "inputs": {f"y_{n}": shape[shape_of(n)] for n in names},
        "variables": {f"x_{n}": {"shape": shape[shape_of(n)], "init": f"y_{n}"} for n in names},
        "objective": {"smooth": " + ".join(f"0.5 * sum_squares(x_{n} - y_{n})" for n in names),
                      "nonsmooth": [term(n) for n in names]},
        "algorithm": {"method": "block_proximal_gradient", "layers": 1, "step": f"{T}/L"},
    }
    tmp = tmp_path_factory.mktemp("registry")
    result = build(write_spec(tmp, data), tmp / "out")
    return Built(result.directory, result.program)


@pytest.fixture(scope="module")
def samples() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {f"y_{n}": rng.standard_normal((3, *shape_of(n))) * 1.2 for n in FUNCTIONS}


@pytest.fixture(scope="module")
def outputs(everything: Built, samples: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    samples = {f"y_{n}": samples[f"y_{n}"] for n in DIRECT}
    model = everything.model.Unfolded(dtype=torch.float64)
    with torch.no_grad():
        torch_out = {k: v.numpy() for k, v in model(**samples).items()}
    params = model.kernel_params()
    return {
        "torch": torch_out,
        "numpy": everything.numpy_loop.solve(params, **samples),
        "numba": everything.kernel.solve(params, **samples),
        "numba_one": {k: v[None] for k, v in everything.kernel.solve_one(
            params, **{n: s[0] for n, s in samples.items()}).items()},
    }


def test_every_function_is_defined() -> None:
    assert set(DEFINITIONS) == set(FUNCTIONS)
    for name, function in FUNCTIONS.items():
        assert (DEFINITIONS[name][0] is None) == (not function.weighted), name


def numerical_prox(name: str, v: np.ndarray) -> np.ndarray:
    """argmin_u 0.5 ||u - v||^2 + T lam h(u), or the projection onto the set, by SciPy."""
    h = DEFINITIONS[name][0]
    shape = v.shape
    if name == "l0":  # separable and not convex: each entry's minimum is at 0 or at v_i
        keep = 0.5 * v**2 > T * PARAMS["lam"]
        return np.where(keep, v, 0.0)
    if name == "norm_inf":  # its epigraph makes it smooth: min 0.5||u - v||^2 + T lam s, -s <= u_i <= s
        n = v.size
        epigraph = lambda z: 0.5 * np.sum((z[:n] - v.ravel()) ** 2) + T * PARAMS["lam"] * z[n]
        found = minimize(epigraph, np.append(v.ravel(), np.abs(v).max()), method="SLSQP",
                         constraints=[{"type": "ineq", "fun": lambda z: z[n] - z[:n]},
                                      {"type": "ineq", "fun": lambda z: z[n] + z[:n]}],
                         options={"ftol": 1e-15, "maxiter": 1000})
        return found.x[:n].reshape(shape)
    if h is not None:
        objective = lambda u: 0.5 * np.sum((u - v.ravel()) ** 2) + T * PARAMS["lam"] * h(u.reshape(shape))
        best = None
        for start in (v.ravel(), np.zeros(v.size)):
            found = minimize(objective, start, method="Powell", options={"xtol": 1e-12, "ftol": 1e-15, "maxfev": 200000})
            best = found if best is None or found.fun < best.fun else best
        return best.x.reshape(shape)
    constraints: list[dict[str, Any]] = []
    bounds = None
    if name == "nonneg":
        bounds = [(0, None)] * v.size
    elif name == "box":
        bounds = [(-0.5, 1.0)] * v.size
    elif name == "ball2":
        constraints = [{"type": "ineq", "fun": lambda u: 1.5**2 - np.sum(u**2)}]
    elif name == "ball1":  # split u = p - q, p, q >= 0: a smooth problem with linear constraints
        n = v.size
        objective = lambda z: 0.5 * np.sum((z[:n] - z[n:] - v.ravel()) ** 2)
        found = minimize(objective, np.zeros(2 * n), bounds=[(0, None)] * (2 * n), method="SLSQP",
                         constraints=[{"type": "ineq", "fun": lambda z: 1.5 - z.sum()}],
                         options={"ftol": 1e-15, "maxiter": 1000})
        return (found.x[:n] - found.x[n:]).reshape(shape)
    elif name == "simplex":
        bounds = [(0, None)] * v.size
        constraints = [{"type": "eq", "fun": lambda u: u.sum() - 1.5}]
    found = minimize(lambda u: 0.5 * np.sum((u - v.ravel()) ** 2), np.zeros(v.size), bounds=bounds,
                     constraints=constraints, method="SLSQP", options={"ftol": 1e-15, "maxiter": 1000})
    return found.x.reshape(shape)


@pytest.mark.parametrize("name", DIRECT)
def test_prox_equals_a_numerical_minimisation_of_its_definition(name: str, outputs, samples) -> None:
    h, inside = DEFINITIONS[name]
    for v, got in zip(samples[f"y_{name}"], outputs["torch"][f"x_{name}"], strict=True):
        expected = numerical_prox(name, v)
        if inside is not None:
            assert inside(got), (name, got)
            assert 0.5 * np.sum((got - v) ** 2) <= 0.5 * np.sum((expected - v) ** 2) + 1e-10
        else:
            objective = lambda u, v=v: 0.5 * np.sum((u - v) ** 2) + T * PARAMS["lam"] * h(u)
            assert objective(got) <= objective(expected) + 1e-10, (name, objective(got), objective(expected))
        np.testing.assert_allclose(got, expected, atol=2e-5, err_msg=name)


@pytest.fixture(scope="module")
def composite(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """A primal-dual spec with every composite function, each on its own dual variable."""
    data = {
        "name": "composite_case", "dims": {"m": MATRIX[0], "p": MATRIX[1]}, "params": {"lam": PARAMS["lam"]},
        "inputs": {"Y": ["m", "p"]}, "variables": {"X": {"shape": ["m", "p"], "init": "Y"}},
        "objective": {"smooth": "0.5 * sum_squares(X - Y)", "nonsmooth": [term(n).replace(f"x_{n}", "X")
                                                                          for n in COMPOSITE]},
        "algorithm": {"method": "primal_dual", "layers": 1},
    }
    tmp = tmp_path_factory.mktemp("composite")
    result = build(write_spec(tmp, data), tmp / "out")
    return Built(result.directory, result.program)


@pytest.mark.parametrize("name", COMPOSITE)
def test_composite_prox_helpers_minimise_their_definition(name: str, composite: Built, samples) -> None:
    """prox_{T lam h}(z) of each backend's helper against SciPy's minimisation of its definition."""
    helper = FUNCTIONS[name].helper
    threshold = T * PARAMS["lam"]
    for v in samples[f"y_{name}"]:
        expected = numerical_prox(name, v)
        got = {"torch": getattr(composite.model, helper.name)(torch.from_numpy(v[None]), threshold)[0].numpy(),
               "numpy": getattr(composite.numpy_loop, helper.name)(v[None], threshold)[0]}
        numba = getattr(composite.kernel, helper.name)
        if helper.elementwise:
            got["numba"] = np.vectorize(lambda u, scalar=numba: scalar(u, threshold))(v)
        else:
            got["numba"] = v.copy()
            numba(got["numba"], threshold)
        for backend, value in got.items():
            np.testing.assert_allclose(value, expected, atol=2e-5, err_msg=f"{backend}: {name}")


@pytest.mark.parametrize("backend", ["numpy", "numba", "numba_one"])
def test_every_backend_applies_the_same_prox(outputs, backend: str) -> None:
    for name in outputs["torch"]:
        np.testing.assert_allclose(outputs[backend][name], outputs["torch"][name][: len(outputs[backend][name])],
                                   rtol=1e-12, atol=1e-12, err_msg=f"{backend}: {name}")


@pytest.mark.parametrize(("function", "indicator"), MOREAU)
def test_moreau_identity(tmp_path: Path, function: str, indicator: str, samples) -> None:
    """v = prox_{t lam f}(v) + projection of v onto the conjugate's set, scaled by t lam."""
    radius = T * PARAMS["lam"]
    data = {
        "name": "moreau_case", "dims": {"n": VECTOR[0]}, "params": {"lam": PARAMS["lam"], "r": radius},
        "inputs": {"y": ["n"]}, "variables": {"x": {"shape": ["n"], "init": "y"}, "z": {"shape": ["n"], "init": "y"}},
        "objective": {"smooth": "0.5 * sum_squares(x - y) + 0.5 * sum_squares(z - y)",
                      "nonsmooth": [f"lam * {function}(x)",
                                    "box(z, -r, r)" if indicator == "box" else f"{indicator}(z, r)"]},
        "algorithm": {"method": "block_proximal_gradient", "layers": 1, "step": f"{T}/L"},
    }
    built = build(write_spec(tmp_path, data), tmp_path / "out")
    model = Built(built.directory, built.program).model.Unfolded(dtype=torch.float64)
    v = samples[f"y_{function}"] if shape_of(function) == VECTOR else samples["y_norm1"]
    with torch.no_grad():
        out = model(y=v)
    np.testing.assert_allclose(out["x"].numpy() + out["z"].numpy(), v, atol=1e-12)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_value_is_the_definition(name: str, samples) -> None:
    h = DEFINITIONS[name][0]
    function = FUNCTIONS[name]
    x = samples[f"y_{name}"]
    args = tuple(PARAMS[a.strip()] for a in ARGS.get(name, "").split(",") if a.strip())
    args = tuple(float(a) for a in function.complete(args))  # type: ignore[arg-type]
    got = function.value(torch, torch.from_numpy(x), args).numpy()
    if h is None:
        np.testing.assert_array_equal(got, np.zeros(len(x)))
    else:
        np.testing.assert_allclose(got, [h(sample) for sample in x], rtol=1e-12)


@pytest.mark.parametrize("name", list(HELPERS))
def test_cost_is_a_positive_count_that_grows_with_size(name: str) -> None:
    helper = HELPERS[name]
    small, large = ((4, 3), (8, 6)) if helper.matrix_only else ((6,), (60,))
    assert isinstance(helper.flops(small), int) and 0 < helper.flops(small) < helper.flops(large)


def test_derivation_shows_every_definition_and_closed_form(everything: Built) -> None:
    text = (everything.directory / "DERIVATION.md").read_text()
    for name in DIRECT:
        function = FUNCTIONS[name]
        assert f"x_{name}" in text, name
        assert function.helper.name in (everything.directory / "model.py").read_text(), name


def test_the_non_convex_l0_is_named_as_such() -> None:
    assert [n for n, f in FUNCTIONS.items() if not f.convex] == ["l0"]
    assert "not convex" in FUNCTIONS["l0"].summary


def test_the_spec_page_lists_every_function_from_the_registry() -> None:
    from conftest import ROOT

    from unfoldgen.operators.prox import markdown_table

    assert markdown_table() in (ROOT / "docs" / "spec.md").read_text(), (
        "docs/spec.md is out of date: paste unfoldgen.operators.prox.markdown_table() into it")
