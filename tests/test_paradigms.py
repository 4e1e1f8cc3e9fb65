"""Issue 3: the four paradigms and the splitting methods.

For every bundled spec of the paradigms the untrained network equals an independent reference
iteration written here in numpy, layer by layer; a backward pass reaches every trainable
parameter; ALISTA's analytic weight has lower mutual coherence than A; `show` reports the
parameter totals.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import ROOT, variant

from unfoldgen.cli import main
from unfoldgen.errors import SpecError

SMALL = {"m": 20, "n": 60}
RPCA_SMALL = {"m": 12, "n": 10, "r": 2}


def soft(v, threshold):
    return np.sign(v) * np.maximum(np.abs(v) - threshold, 0.0)


def svt(M, threshold):
    u, s, vh = np.linalg.svd(M, full_matrices=False)
    return (u * np.maximum(s - threshold, 0.0)) @ vh


def ista_layers(A, y, lam, layers, count=None, weight=None):
    """ISTA (with support selection when ``count`` is given, with W^T for A^T when ``weight``)."""
    t = 1.0 / np.linalg.norm(A, 2) ** 2
    left = A.T if weight is None else weight.T
    x = np.zeros(A.shape[1])
    out = []
    for k in range(layers):
        v = x - t * left @ (A @ x - y)
        new = soft(v, lam * t)
        if count is not None and count[k] > 0:
            cut = np.sort(np.abs(v))[-count[k]]
            new = np.where(np.abs(v) >= cut, v, new)
        x = new
        out.append(x)
    return out


def admm_layers(A, y, lam, layers, rho=1.0, mu=1.0, dual=True):
    n = A.shape[1]
    z, u = np.zeros(n), np.zeros(n)
    out = []
    for _ in range(layers):
        s = np.linalg.solve(A.T @ A + rho * np.eye(n), A.T @ y + rho * (z - (u if dual else 0)))
        z = soft(s + (u if dual else 0), lam / rho)
        if dual:
            u = u + mu * (s - z)
        out.append(z)
    return out


def rpca_layers(Y, lam1, lam2, layers):
    L, S = np.zeros_like(Y), np.zeros_like(Y)
    out = []
    for _ in range(layers):
        L = svt(L - (L + S - Y), lam1)
        S = soft(S - (L + S - Y), lam2)
        out.append((L, S))
    return out


def scaled_gd_layers(Y, rank, zeta0, zeta, eta, layers):
    S = soft(Y, zeta0)
    u, s, vh = np.linalg.svd(Y - S, full_matrices=False)
    U, V = u[:, :rank] * np.sqrt(s[:rank]), vh[:rank].T * np.sqrt(s[:rank])
    out = []
    for _ in range(layers):
        S = soft(Y - U @ V.T, zeta)
        R = U @ V.T + S - Y
        U, V = U - eta * R @ V @ np.linalg.inv(V.T @ V), V - eta * R.T @ U @ np.linalg.inv(U.T @ U)
        out.append(U @ V.T)
    return out


def analytic_weight_reference(A):
    """Each column solves min ||A^T w||^2 s.t. a_i^T w = 1 through its KKT system."""
    m, n = A.shape
    W = np.empty_like(A)
    for i in range(n):
        kkt = np.block([[2 * A @ A.T, A[:, i:i + 1]], [A[:, i:i + 1].T, np.zeros((1, 1))]])
        rhs = np.concatenate([np.zeros(m), [1.0]])
        W[:, i] = np.linalg.solve(kkt, rhs)[:m]
    return W


def run_layers(built, inputs, **constants):
    model = built.model.Unfolded(**constants, dtype=torch.float64)
    with torch.no_grad():
        return model, model(**{k: torch.from_numpy(v) for k, v in inputs.items()}, all_layers=True)


def gaussian_A(rng, m, n):
    A = rng.standard_normal((m, n)) / np.sqrt(m)
    return A / np.linalg.norm(A, axis=0)


def sparse_problem(rng, m, n, batch=3):
    A = gaussian_A(rng, m, n)
    x = rng.standard_normal((batch, n)) * (rng.random((batch, n)) < 0.1)
    return A, x @ A.T + 0.01 * rng.standard_normal((batch, m))


def assert_layers_close(got, expected, tol=1e-10):
    assert len(got) == len(expected)
    for k, (g, e) in enumerate(zip(got, expected)):
        assert np.linalg.norm(g - e) <= tol * max(np.linalg.norm(e), 1.0), f"layer {k}"


@pytest.mark.parametrize("name", ["lista", "lista_cp", "ista_correction", "pnp_pgd"])
def test_untrained_is_ista(tmp_path, rng, name):
    built = variant(name, tmp_path, dims=SMALL, layers=6)
    A, y = sparse_problem(rng, **SMALL)
    _, layers = run_layers(built, {"y": y}, A=A)
    for b in range(len(y)):
        assert_layers_close([l["x"][b].numpy() for l in layers], ista_layers(A, y[b], 0.1, 6))


def test_untrained_lista_cpss_is_ista_with_support_selection(tmp_path, rng):
    dims = {"m": 40, "n": 200}
    built = variant("lista_cpss", tmp_path, dims=dims, layers=8)
    A, y = sparse_problem(rng, **dims)
    _, layers = run_layers(built, {"y": y}, A=A)
    count = [int(min(0.012 * (k + 1), 0.13) * 200) for k in range(8)]
    assert count[0] > 0
    for b in range(len(y)):
        expected = ista_layers(A, y[b], 0.1, 8, count=count)
        assert_layers_close([l["x"][b].numpy() for l in layers], expected)
        assert np.linalg.norm(expected[-1] - ista_layers(A, y[b], 0.1, 8)[-1]) > 1e-6  # it does select


def test_untrained_alista_uses_the_analytic_weight(tmp_path, rng):
    dims = {"m": 40, "n": 200}
    built = variant("alista", tmp_path, dims=dims, layers=6)
    A, y = sparse_problem(rng, **dims)
    model, layers = run_layers(built, {"y": y}, A=A)
    W = analytic_weight_reference(A)
    assert np.allclose(model.W_analytic.numpy(), W, atol=1e-9)
    count = [int(min(0.012 * (k + 1), 0.13) * 200) for k in range(6)]  # ALISTA selects supports too
    for b in range(len(y)):
        assert_layers_close([l["x"][b].numpy() for l in layers], ista_layers(A, y[b], 0.1, 6, weight=W, count=count))


def test_analytic_weight_lowers_mutual_coherence(tmp_path, rng):
    built = variant("alista", tmp_path, dims={"m": 50, "n": 100}, layers=2)
    A = gaussian_A(rng, 50, 100)
    W = built.model.Unfolded(A=A, dtype=torch.float64).W_analytic.numpy()
    gram_w, gram_a = W.T @ A, A.T @ A
    off = ~np.eye(100, dtype=bool)
    assert np.allclose(np.diag(gram_w), 1.0, atol=1e-10)  # the constraint holds
    assert np.linalg.norm(gram_w[off]) < np.linalg.norm(gram_a[off])  # Frobenius coherence
    assert np.abs(gram_w[off]).max() < np.abs(gram_a[off]).max()  # and the largest one


@pytest.mark.parametrize("method", ["admm", "hqs"])
def test_untrained_splitting_is_classical(tmp_path, rng, method):
    dims = {"m": 15, "n": 30}
    algorithm = {"method": method, "layers": 8, "penalty": 1.0}
    learn = {"hyperparameters": {"penalty": "per_layer"}}
    if method == "admm":
        algorithm["dual_step"] = 1.0
        learn["hyperparameters"]["dual_step"] = "per_layer"
    built = variant("admm_lasso", tmp_path, dims=dims, algorithm=algorithm, learn=learn)
    A, y = sparse_problem(rng, **dims)
    _, layers = run_layers(built, {"y": y}, A=A)
    for b in range(len(y)):
        expected = admm_layers(A, y[b], 0.05, 8, dual=method == "admm")
        assert_layers_close([l["x"][b].numpy() for l in layers], expected, tol=1e-9)


def low_rank_plus_sparse(rng, m, n, rank, batch=2):
    L = rng.standard_normal((batch, m, rank)) @ rng.standard_normal((batch, rank, n))
    S = 5 * rng.standard_normal((batch, m, n)) * (rng.random((batch, m, n)) < 0.1)
    return L + S


@pytest.mark.parametrize("learn", [None, {"prox": {"network": "cnn", "widths": [3, 3], "activation": "tanh"}},
                                   {"objective": "weights"}],
                         ids=["rpca", "rpca_cnn_prox", "rpca_objective_weights"])
def test_untrained_rpca_is_block_proximal_gradient(tmp_path, rng, learn):
    changes = {"learn": learn} if learn else {}
    built = variant("rpca", tmp_path, dims=RPCA_SMALL, layers=5, **changes)
    Y = low_rank_plus_sparse(rng, 12, 10, 2)
    _, layers = run_layers(built, {"Y": Y})
    for b in range(len(Y)):
        expected = rpca_layers(Y[b], 2.0, 0.1, 5)
        assert_layers_close([l["L"][b].numpy() for l in layers], [e[0] for e in expected], tol=1e-9)
        assert_layers_close([l["S"][b].numpy() for l in layers], [e[1] for e in expected], tol=1e-9)


def test_untrained_rpca_factorized_is_scaled_gd(tmp_path, rng):
    built = variant("rpca_factorized", tmp_path, dims=RPCA_SMALL, layers=5)
    Y = low_rank_plus_sparse(rng, 12, 10, 2)
    _, layers = run_layers(built, {"Y": Y})
    for b in range(len(Y)):
        got = [(l["U"][b] @ l["V"][b].mT).numpy() for l in layers]
        assert_layers_close(got, scaled_gd_layers(Y[b], 2, 1.0, 0.5, 0.5, 5), tol=1e-8)


PARADIGM_SPECS = ["lista", "lista_cp", "lista_cpss", "alista", "ista_correction", "pnp_pgd",
                  "admm_lasso", "rpca", "rpca_weights", "rpca_factorized"]


def small_instance(name, tmp_path, rng):
    if name.startswith("rpca"):
        changes = {"learn": {"objective": "weights"}} if name == "rpca_weights" else {}
        built = variant(name.removesuffix("_weights"), tmp_path, dims=RPCA_SMALL, layers=4, **changes)
        return built, {}, {"Y": low_rank_plus_sparse(rng, 12, 10, 2)}
    dims = {"m": 20, "n": 100} if name == "lista_cpss" else SMALL
    built = variant(name, tmp_path, dims=dims, layers=4)
    A, y = sparse_problem(rng, **dims)
    return built, {"A": A}, {"y": y}


@pytest.mark.parametrize("name", PARADIGM_SPECS)
def test_backward_reaches_every_trainable_parameter(tmp_path, rng, name):
    built, constants, inputs = small_instance(name, tmp_path, rng)
    model = built.model.Unfolded(**constants, dtype=torch.float64)
    torch.manual_seed(0)
    with torch.no_grad():  # zero-initialised last layers pass no gradient to earlier ones: move off zero
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    loss = sum((value ** 2).sum() for value in out.values())
    loss.backward()
    names = [n for n, _ in model.named_parameters()]
    assert names, "the spec learns something"
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert torch.isfinite(parameter.grad).all(), parameter_name
        assert parameter.grad.abs().sum() > 0, parameter_name


@pytest.mark.parametrize("name,total", [
    ("lista", 16 * (500 * 500 + 500 * 250 + 1)),
    ("lista_cp", 16 * (500 * 250 + 1)),
    ("alista", 32),
    ("admm_lasso", 40),
    ("rpca", 40),
    ("rpca_factorized", 20),
    ("ista_correction", 16 * (1000 * 64 + 64 + 64 * 500 + 500)),
    ("pnp_pgd", 16 + 500 * 128 + 128 + 128 * 500 + 500),
])
def test_show_prints_the_parameter_table(name, total):
    result = CliRunner().invoke(main, ["show", str(ROOT / "specs" / f"{name}.yaml")])
    assert result.exit_code == 0, result.output
    assert "name" in result.output and "tying" in result.output and "count" in result.output
    assert f"total trainable: {total}" in result.output


@pytest.mark.parametrize("changes,message", [
    ({"learn": {"objective": "untied"}}, "custom does not take learned linear maps"),
    ({"learn": {"hyperparameters": {"zeta0": "per_layer"}}}, "no value before the first layer"),
])
def test_custom_iteration_errors(tmp_path, changes, message):
    with pytest.raises(SpecError, match=message):
        variant("rpca_factorized", tmp_path, dims=RPCA_SMALL, **changes)


@pytest.mark.parametrize("name,changes,message", [
    ("rpca", {"learn": {"objective": "untied"}}, "block_proximal_gradient does not take learned linear maps"),
    ("ista_lasso", {"learn": {"objective": "coupled", "hyperparameters": {"step": "per_layer", "threshold": "shared"}}},
     "no layer reads it"),
    ("nnls", {"learn": {"objective": "untied", "support_selection": {"fraction": 0.1, "max_fraction": 0.2}}},
     "soft thresholding"),
    ("admm_lasso", {"learn": {"correction": {"widths": [4]}}}, "admm does not take a learned correction"),
    ("admm_lasso", {"learn": {"objective": "analytic"}}, "admm does not take coupled or analytic linear maps"),
    ("ista_lasso", {"learn": {"prox": {"network": "cnn"}}}, "matrix variable"),
])
def test_paradigm_errors(tmp_path, name, changes, message):
    with pytest.raises(SpecError, match=message):
        variant(name, tmp_path, dims={"m": 8, "n": 12}, layers=2, **changes)


def test_a_weight_read_by_two_blocks_is_learned_once_even_when_its_name_is_taken(tmp_path):
    """``objective: weights`` makes one per-layer parameter per weight the proxes read: here
    ``lam`` is read by both blocks' proxes and the name ``lam_layer`` is already a spec param."""
    built = variant("rpca", tmp_path, dims=RPCA_SMALL, layers=3, learn={"objective": "weights"},
                    params={"lam": 0.5, "lam_layer": 1.0},
                    objective={"smooth": "0.5 * lam_layer * sum_squares(Y - L - S)",
                               "nonsmooth": ["lam * nuclear(L)", "lam * norm1(S)"]})
    learned = [p.name for p in built.program.parameters if p.description.startswith("the objective's weight")]
    assert learned == ["lam_layer_"]  # one, though two blocks read lam and lam_layer was taken
