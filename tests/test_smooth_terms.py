"""Issue 17: smooth data terms built from elementwise functions.

Each objective of the issue builds as written. Its SymPy gradient equals autograd of the
objective (both evaluated by an evaluator written here, independent of the package's). Its
Lipschitz bound is the documented one, or the build says why there is none. The PyTorch module,
the Numba kernel (per sample and batched) and the NumPy loop agree. A long untrained run of
gradient descent reaches the minimiser that SciPy finds on its own.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch
import yaml
from conftest import Built, write_spec
from reference_operators import apply_factors
from scipy.optimize import minimize

from unfoldgen.compiler import build
from unfoldgen.errors import SpecError
from unfoldgen.operators.linear import has_operator
from unfoldgen.spec import load_spec_text
from unfoldgen.symbolic.language import Namespace
from unfoldgen.symbolic.nodes import EntryMax, EntrySum, Map, SpectralNorm, sigmoid, softplus
from unfoldgen.symbolic.objective import derive_smooth

BASE = {"name": "smooth", "dims": {"m": 5, "n": 7}, "inputs": {"y": ["m"]}, "constants": {"A": ["m", "n"], "w": ["m"]},
        "params": {"delta": 0.5, "eps": 0.1, "lam": 0.05, "mu": 0.3}, "variables": {"x": ["n"]},
        "algorithm": {"method": "proximal_gradient", "layers": 4}}
# name: (smooth, nonsmooth, explicit step or None)
OBJECTIVES = {
    "logistic": ("sum(log(1 + exp(-y * (A @ x))))", ["lam * norm1(x)"], "0.1"),
    "logistic01": ("sum(softplus(A @ x) - y * (A @ x))", ["lam * norm1(x)"], None),
    "huber": ("sum(huber(A @ x - y, delta))", ["lam * norm1(x)"], None),
    "poisson": ("sum(A @ x - y * log(A @ x + eps))", ["nonneg(x)"], "0.01"),
    "weighted": ("0.5 * sum_squares(w * (A @ x - y))", ["lam * norm1(x)"], None),
    "mixed": ("0.5 * sum_squares(A @ x - y) + lam * sum(sqrt(1 + x**2)) + mu * sum(log(cosh(x)))", [], None),
    "functions": (("0.5 * sum_squares(A @ x - y) + sum(tanh(x)**2 + log1p(x**2) + exp(-x**2) + 1 / (2 + x**2) "
                   "+ cosh(x / 3) + sigmoid(x) * x)"), [], "0.05"),
}


def spec_data(name: str) -> dict:
    smooth, nonsmooth, step = OBJECTIVES[name]
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["name"] = name
    data["objective"] = {"smooth": smooth, "nonsmooth": nonsmooth}
    if step:
        data["algorithm"]["step"] = step
    if not nonsmooth:
        data["algorithm"]["method"] = "gradient_descent"
    return data


FUNCTIONS = {sp.exp: torch.exp, sp.log: torch.log, sp.Abs: torch.abs, sp.sign: torch.sign, sp.tanh: torch.tanh,
             sp.cosh: torch.cosh, sp.sinh: torch.sinh, sigmoid: torch.sigmoid, softplus: lambda t: torch.log1p(torch.exp(t))}


def evaluate(expr: sp.Basic, values: dict[sp.Basic, torch.Tensor]) -> torch.Tensor:
    """The value of a tree of the smooth part, written here apart from the package."""
    if expr in values:
        return values[expr]
    if expr.is_Number:
        return torch.tensor(float(expr), dtype=torch.float64)
    if isinstance(expr, Map):
        bound = {v: evaluate(a, values) for v, a in zip(expr.function.variables, expr.arguments, strict=True)}
        return evaluate(expr.function.expr, {**values, **bound})
    if isinstance(expr, EntrySum):
        return evaluate(expr.matrix, values).sum()
    if isinstance(expr, EntryMax):
        return evaluate(expr.matrix, values).max()
    if isinstance(expr, SpectralNorm):
        return torch.linalg.matrix_norm(evaluate(expr.matrix, values), ord=2)
    if isinstance(expr, sp.Transpose):
        return evaluate(expr.arg, values).T
    if isinstance(expr, sp.Trace):
        return torch.trace(evaluate(expr.arg, values))
    if isinstance(expr, (sp.MatAdd, sp.Add)):
        return sum((evaluate(a, values) for a in expr.args), torch.tensor(0.0, dtype=torch.float64))
    if isinstance(expr, sp.MatMul) and has_operator(expr):
        scalars = [a for a in expr.args if not isinstance(a, sp.MatrixExpr)]
        product = apply_factors([a for a in expr.args if isinstance(a, sp.MatrixExpr)], values, evaluate)
        return product * evaluate(sp.Mul(*scalars), values)
    if isinstance(expr, (sp.MatMul, sp.Mul)):
        result = torch.tensor(1.0, dtype=torch.float64)
        for a in expr.args:
            value = evaluate(a, values)
            both_matrices = isinstance(a, sp.MatrixExpr) and result.dim() == 2
            result = result @ value if both_matrices else result * value
        return result
    if isinstance(expr, sp.Pow):
        return evaluate(expr.base, values) ** evaluate(expr.exp, values)
    if isinstance(expr, sp.Piecewise):
        (value, condition), rest = expr.args[0], expr.args[1:]
        if condition is sp.true:
            return evaluate(value, values)
        return torch.where(evaluate(condition, values), evaluate(value, values), evaluate(sp.Piecewise(*rest), values))
    if isinstance(expr, sp.core.relational.Relational):
        compare = {">=": torch.ge, "<=": torch.le, ">": torch.gt, "<": torch.lt}[expr.rel_op]
        return compare(evaluate(expr.lhs, values), evaluate(expr.rhs, values))
    for function, torch_function in FUNCTIONS.items():
        if isinstance(expr, function):
            return torch_function(evaluate(expr.args[0], values))
    raise NotImplementedError(type(expr))


def environment(ns: Namespace, spec, rng: np.random.Generator, positive: bool) -> dict[sp.Basic, torch.Tensor]:
    values: dict[sp.Basic, torch.Tensor] = {}
    for name, value in ns.tensors.items():
        shape = tuple(int(d.subs({s: spec.dims[s.name] for s in d.free_symbols})) for d in value.expr.shape)
        draw = rng.standard_normal(shape)
        values[value.expr] = torch.from_numpy(np.abs(draw) + 0.2 if positive else draw)
    for name, value in spec.params.items():
        values[ns.params[name]] = torch.tensor(value, dtype=torch.float64)
    return values


@pytest.mark.parametrize("name", OBJECTIVES)
def test_gradient_equals_autograd(name: str) -> None:
    spec = load_spec_text(yaml.safe_dump(spec_data(name)))
    ns = Namespace(spec)
    smooth = derive_smooth(ns, spec.smooth)
    values = environment(ns, spec, np.random.default_rng(1), positive=name == "poisson")
    x = ns.matrix_symbol("x")
    values[x].requires_grad_(True)
    evaluate(smooth.expr, values).backward()
    derived = evaluate(smooth.gradients["x"], values).detach()
    torch.testing.assert_close(derived, values[x].grad, rtol=1e-10, atol=1e-10)


def test_gradients_print_as_the_math_reads() -> None:
    spec = load_spec_text(yaml.safe_dump(spec_data("logistic")))
    gradient = derive_smooth(Namespace(spec), spec.smooth).gradients["x"]
    assert str(gradient) == "-A.T*y*sigmoid(-(A*x)*y)"


@pytest.mark.parametrize(("name", "expected"), [
    ("logistic01", lambda A, w, p: np.linalg.norm(A, 2) ** 2 / 4),
    ("huber", lambda A, w, p: np.linalg.norm(A, 2) ** 2),
    ("weighted", lambda A, w, p: np.max(w**2) * np.linalg.norm(A, 2) ** 2),
    ("mixed", lambda A, w, p: np.linalg.norm(A, 2) ** 2 + p["lam"] + p["mu"]),
])
def test_lipschitz_bounds(name: str, expected) -> None:
    spec = load_spec_text(yaml.safe_dump(spec_data(name)))
    ns = Namespace(spec)
    lipschitz = derive_smooth(ns, spec.smooth).lipschitz["x"]
    assert lipschitz is not None and not lipschitz.exact
    values = environment(ns, spec, np.random.default_rng(2), positive=False)
    A, w = (values[ns.matrix_symbol(n)].numpy() for n in ("A", "w"))
    assert float(evaluate(lipschitz.value, values)) == pytest.approx(expected(A, w, spec.params), rel=1e-12)


@pytest.mark.parametrize(("name", "message"), [
    ("logistic", "depends on the inputs"), ("poisson", "depends on the inputs"),
])
def test_no_global_bound_asks_for_a_step(tmp_path, name: str, message: str) -> None:
    data = spec_data(name)
    del data["algorithm"]["step"]
    with pytest.raises(SpecError, match=f"(?s){message}.*give algorithm.step"):
        build(write_spec(tmp_path, data), tmp_path / "out")


def test_an_unbounded_curvature_is_refused_with_its_reason(tmp_path) -> None:
    data = spec_data("mixed")
    data["objective"]["smooth"] = "sum(exp(x)) + 0.5 * sum_squares(A @ x - y)"
    with pytest.raises(SpecError, match=r"(?s)exp\(x\), has no global bound.*give algorithm.step"):
        build(write_spec(tmp_path, data), tmp_path / "out")


def constants_for(name: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    A = rng.standard_normal((5, 7))
    return {"A": np.abs(A) if name == "poisson" else A, "w": rng.standard_normal(5)}


def inputs_for(name: str, rng: np.random.Generator, batch: int) -> np.ndarray:
    if name == "logistic01":
        return (rng.random((batch, 5)) < 0.5).astype(float)
    if name == "logistic":
        return np.sign(rng.standard_normal((batch, 5)))
    return np.abs(rng.standard_normal((batch, 5))) + (0.5 if name == "poisson" else 0.0)


# logistic01, huber and poisson are the bundled specs, which test_backends_agree.py covers
@pytest.mark.parametrize("name", ["logistic", "weighted", "functions"])
def test_module_kernel_and_numpy_loop_agree(tmp_path, name: str) -> None:
    result = build(write_spec(tmp_path, spec_data(name)), tmp_path / "out")
    built = Built(result.directory, result.program)
    rng = np.random.default_rng(3)
    constants = {k: v for k, v in constants_for(name, rng).items() if k in result.program.constants}
    y = inputs_for(name, rng, 20)  # above BLAS_MIN_BATCH: the batched path too
    model = built.model.Unfolded(**constants, dtype=torch.float64)
    with torch.no_grad():
        expected = model(y=torch.from_numpy(y))["x"].numpy()
    params = model.kernel_params()
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(built.kernel.solve(params, y=y)["x"], expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(built.kernel.solve(params, y=y[:3])["x"], expected[:3], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(built.kernel.solve_one(params, y=y[0])["x"], expected[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(built.numpy_loop.solve(params, y=y)["x"], expected, rtol=1e-10, atol=1e-12)


PENALTIES = ["lam * sum(max(abs(x) - 1, 0))", "lam * sum(abs(x) + max(abs(x) - 1, 0))", "lam * sum(max(abs(x), 1))",
             "lam * sum(0.5 * min(abs(x), 1)**2 + max(abs(x) - 1, 0))",
             "lam * sum(0.5 * min(abs(x), delta)**2 + delta * max(abs(x) - delta, 0))",  # a kink at a param
             "lam * sum(x**4)"]  # a cubic optimality condition: its one real root


def prox_by_one_layer(tmp_path, penalty: str, kernel: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(y, prox at y by the NumPy loop, by the kernel if asked)``: one layer of proximal
    gradient on 0.5 ||x - y||^2 + ``penalty`` with step 1 from x = 0 is the prox at y."""
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data.update(name="penalty", inputs={"y": ["n"]}, constants={}, params={"lam": 0.7, "delta": 0.6},
                objective={"smooth": "0.5 * sum_squares(x - y)", "nonsmooth": [penalty]})
    data["algorithm"] = {"method": "proximal_gradient", "layers": 1, "step": 1}
    result = build(write_spec(tmp_path, data), tmp_path / "out")
    built = Built(result.directory, result.program)
    y = np.linspace(-3.2, 3.1, 7)[None]
    params = built.model.Unfolded(dtype=torch.float64).kernel_params()
    by_kernel = built.kernel.solve(params, y=y)["x"][0] if kernel else None
    return y[0], built.numpy_loop.solve(params, y=y)["x"][0], by_kernel


@pytest.mark.parametrize("penalty", PENALTIES)
def test_penalties_once_refused_get_the_right_prox(tmp_path, penalty: str) -> None:
    """These convex penalties were refused (a kink inside another kinked function was replaced
    only at the outer level; a kink at a param was not located). One layer of gradient descent on 0.5 ||x - y||^2 with step 1 from
    x = 0 is the prox at y; SciPy minimises the prox objective entry by entry."""
    from scipy.optimize import minimize_scalar

    y, x, _ = prox_by_one_layer(tmp_path, penalty)
    h = {PENALTIES[0]: lambda u: max(abs(u) - 1, 0), PENALTIES[1]: lambda u: abs(u) + max(abs(u) - 1, 0),
         PENALTIES[2]: lambda u: max(abs(u), 1), PENALTIES[3]: lambda u: 0.5 * min(abs(u), 1) ** 2 + max(abs(u) - 1, 0),
         PENALTIES[4]: lambda u: 0.5 * min(abs(u), 0.6) ** 2 + 0.6 * max(abs(u) - 0.6, 0), PENALTIES[5]: lambda u: u**4}
    for v, got in zip(y, x, strict=True):
        expected = minimize_scalar(lambda u, v=v: 0.5 * (u - v) ** 2 + 0.7 * h[penalty](u),
                                   bounds=(v - 10, v + 10), method="bounded", options={"xatol": 1e-10}).x
        assert got == pytest.approx(expected, abs=1e-6), (v, got, expected)


def test_a_smooth_penalty_under_nonsmooth_is_refused_in_time_with_a_hint(tmp_path, monkeypatch) -> None:
    """SymPy cannot solve u - v + tau*u/sqrt(1 + u**2) = 0 in closed form quickly: the budget
    stops it, and the message says the term is smooth and belongs in objective.smooth."""
    import time

    from unfoldgen.symbolic.prox import compose

    monkeypatch.setattr(compose, "DERIVE_BUDGET_S", 2.0)
    data = spec_data("huber")
    data["objective"]["nonsmooth"] = ["lam * sum(sqrt(1 + x**2))"]
    started = time.perf_counter()
    with pytest.raises(SpecError, match="(?s)took more than 2 s.*move it to objective.smooth"):
        build(write_spec(tmp_path, data), tmp_path / "out")
    assert time.perf_counter() - started < 10


BUNDLED = ["huber_l1", "sparse_logistic", "poisson_deconv"]


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_specs_untrained_long_runs_solve_their_problem(tmp_path, name: str) -> None:
    """20000 untrained layers (the classical algorithm) of each bundled spec reach the minimiser
    of L-BFGS-B on the same problem, written here in NumPy (the l1 term through x = p - q,
    p, q >= 0), to 1e-5 relative."""
    from conftest import ROOT

    data = yaml.safe_load((ROOT / "specs" / f"{name}.yaml").read_text())
    data["algorithm"]["layers"] = 20000
    data.pop("learn", None)
    result = build(write_spec(tmp_path, data), tmp_path / "out")
    built = Built(result.directory, result.program)
    rng = np.random.default_rng(0)
    m, n = result.program.constants["A"]
    A = rng.standard_normal((m, n))
    A = np.abs(A) if name == "poisson_deconv" else A
    A = A if name == "sparse_logistic" else A / np.linalg.norm(A, axis=0)
    truth = rng.standard_normal(n) * (rng.random(n) < 0.2)
    truth = 2 * np.abs(truth) if name == "poisson_deconv" else truth
    u = A @ truth
    y = {"huber_l1": u + 0.05 * rng.standard_normal(m), "sparse_logistic": 1 / (1 + np.exp(-u)), "poisson_deconv": u}[name]
    model = built.model.Unfolded(A=A, dtype=torch.float64)
    x = built.numpy_loop.solve(model.kernel_params(), y=y[None])["x"][0]
    p = data["params"]
    options = {"gtol": 1e-13, "ftol": 1e-16, "maxiter": 50000}
    if name == "poisson_deconv":
        reference = minimize(lambda v: np.sum(A @ v - y * np.log(A @ v + p["eps"])), np.full(n, 0.1),
                             method="L-BFGS-B", bounds=[(0, None)] * n, options=options).x
    else:
        def loss(z: np.ndarray) -> float:
            if name == "huber_l1":
                r, d = z - y, p["delta"]
                return float(np.sum(np.where(np.abs(r) <= d, r**2 / 2, d * (np.abs(r) - d / 2))))
            return float(np.sum(np.logaddexp(0.0, z) - y * z))

        split = minimize(lambda w: loss(A @ (w[:n] - w[n:])) + p["lam"] * np.sum(w), np.zeros(2 * n),
                         method="L-BFGS-B", bounds=[(0, None)] * (2 * n), options=options).x
        reference = split[:n] - split[n:]
    assert np.linalg.norm(x - reference) <= 1e-5 * np.linalg.norm(reference)


@pytest.mark.parametrize("name", BUNDLED)
def test_the_unsupervised_loss_is_the_objective_of_each_new_term(name: str) -> None:
    """Training's objective value (the unsupervised loss) of each bundled spec, per sample,
    against the objective written here in NumPy."""
    from conftest import ROOT

    from unfoldgen.ir import lower
    from unfoldgen.spec import load_spec
    from unfoldgen.training.problem import TrainingProblem

    spec = load_spec(ROOT / "specs" / f"{name}.yaml")
    problem = TrainingProblem(spec, lower(spec))
    rng = np.random.default_rng(5)
    m, n = problem.program.constants["A"]
    A = np.abs(rng.standard_normal((m, n)))
    x = np.abs(rng.standard_normal((3, n))) * (rng.random((3, n)) < 0.5)
    y = np.abs(rng.standard_normal((3, m)))
    got = problem.objective({"y": torch.from_numpy(y)}, {"x": torch.from_numpy(x)}, {"A": torch.from_numpy(A)}).numpy()
    p = spec.params
    u = x @ A.T
    if name == "huber_l1":
        r, d = u - y, p["delta"]
        expected = np.sum(np.where(np.abs(r) <= d, r**2 / 2, d * (np.abs(r) - d / 2)), 1) + p["lam"] * np.abs(x).sum(1)
    elif name == "sparse_logistic":
        expected = np.sum(np.logaddexp(0.0, u) - y * u, 1) + p["lam"] * np.abs(x).sum(1)
    else:
        expected = np.sum(u - y * np.log(u + p["eps"]), 1)  # nonneg(x) holds: its indicator is 0
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_a_log_barrier_gets_its_closed_form_prox(tmp_path) -> None:
    """-lam*log(x) lives on x > 0: of the optimality condition's two roots the prox is the one
    inside, (v + sqrt(v**2 + 4 lam t))/2, checked here against SciPy on (0, oo)."""
    from scipy.optimize import minimize_scalar

    y, x, by_kernel = prox_by_one_layer(tmp_path, "lam * sum(-log(x))", kernel=True)
    np.testing.assert_allclose(by_kernel, x, rtol=1e-12)
    for v, got in zip(y, x, strict=True):
        expected = minimize_scalar(lambda u, v=v: 0.5 * (u - v) ** 2 - 0.7 * np.log(u), bounds=(1e-12, 10),
                                   method="bounded", options={"xatol": 1e-12}).x
        assert got == pytest.approx(expected, abs=1e-6)


def test_networks_join_the_new_terms(tmp_path) -> None:
    """A learned correction (paradigm 3; a learned prox goes through the same network step) acts
    on the gradient step of a non-quadratic term as on any other: after perturbing every
    parameter, module, kernel (per sample and BLAS) and NumPy loop agree. Learned linear maps
    need an affine update and are refused."""
    from conftest import variant
    from test_backends_agree import assert_backends_agree

    built = variant("huber_l1", tmp_path, dims={"m": 8, "n": 6}, layers=3,
                    learn={"correction": {"widths": [5], "activation": "tanh"}})
    assert built.program.networks
    assert_backends_agree(built, np.random.default_rng(6), positive=True)
