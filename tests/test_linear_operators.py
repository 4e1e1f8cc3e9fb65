"""Linear operators (conv, conv_zero, diff, grad2d, downsample/upsample, dct/idct): each
backend's helper against an independent reference (SciPy, NumPy), the adjoint identity
``<K x, y> = <x, K^T y>`` to 1e-12 in float64 in every backend and in training's evaluator, the
exact norms against the largest singular value of the dense matrix, and compositions through the
derived gradient."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import scipy.ndimage
import sympy as sp
import torch
import yaml
from conftest import Built, write_spec

from unfoldgen.compiler import build
from unfoldgen.operators.linear.conv import Convolution, DftPeak
from unfoldgen.operators.linear.diff import Difference
from unfoldgen.operators.linear.grad2d import Gradient2D
from unfoldgen.operators.linear.mask import LargestMagnitude, Mask
from unfoldgen.operators.linear.resample import Resample
from unfoldgen.spec.load import load_spec
from unfoldgen.training.problem import TrainingProblem

VECTOR = {
    "name": "vector_operators", "dims": {"n": 12}, "inputs": {"y": ["n"]}, "constants": {"h": [5]},
    "variables": {"x": {"shape": ["n"], "init": "y"}},
    "objective": {"smooth": "0.5 * sum_squares(conv(h, x) - y) + 0.5 * sum_squares(conv_zero(h, x)) "
                            "+ sum_squares(diff(x)) + sum_squares(upsample(downsample(x, 2), 2) - y) "
                            "+ dot(y, idct(dct(x)))"},
    "algorithm": {"method": "gradient_descent", "layers": 2, "step": 0.05},
}
IMAGE = {
    "name": "image_operators", "dims": {"m": 6, "n": 8}, "inputs": {"Y": ["m", "n"]}, "constants": {"g": [3, 5]},
    "variables": {"X": {"shape": ["m", "n"], "init": "Y"}},
    "objective": {"smooth": "0.5 * sum_squares(conv(g, X) - Y) + 0.5 * sum_squares(conv_zero(g, X)) "
                            "+ sum_squares(grad2d(X)) + dot(Y, idct(dct(X)))"},
    "algorithm": {"method": "gradient_descent", "layers": 2, "step": 0.05},
}


def _build(tmp_path_factory, data) -> Built:
    tmp = tmp_path_factory.mktemp(data["name"])
    result = build(write_spec(tmp, data), tmp / "out")
    return Built(result.directory, result.program)


@pytest.fixture(scope="module")
def vector(tmp_path_factory) -> Built:
    return _build(tmp_path_factory, VECTOR)


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Built:
    return _build(tmp_path_factory, IMAGE)


def _grad2d(x):
    dx = np.zeros_like(x)
    dy = np.zeros_like(x)
    dx[:-1] = x[1:] - x[:-1]
    dy[:, :-1] = x[:, 1:] - x[:, :-1]
    return np.concatenate([dx, dy])


# name -> (input shape, output shape, reference forward, torch/numpy call, numba call)
def _cases(kernel1, kernel2):
    def conv(h, wrap):
        return lambda x: scipy.ndimage.convolve(x, h, mode="wrap" if wrap else "constant")

    return {
        "conv_wrap_1d": ((12,), (12,), conv(kernel1, True), ("conv", (kernel1, True)), ("conv_1d", (kernel1, True))),
        "conv_zero_1d": ((12,), (12,), conv(kernel1, False), ("conv", (kernel1, False)), ("conv_1d", (kernel1, False))),
        "conv_wrap_2d": ((6, 8), (6, 8), conv(kernel2, True), ("conv", (kernel2, True)), ("conv_2d", (kernel2, True))),
        "conv_zero_2d": ((6, 8), (6, 8), conv(kernel2, False), ("conv", (kernel2, False)), ("conv_2d", (kernel2, False))),
        "diff": ((12,), (11,), np.diff, ("diff", ()), ("diff", ())),
        "grad2d": ((6, 8), (12, 8), _grad2d, ("grad2d", ()), ("grad2d", ())),
    }


KERNEL1 = np.array([0.1, -0.4, 1.0, 0.3, 0.2])
KERNEL2 = np.random.default_rng(3).standard_normal((3, 5))
CASES = _cases(KERNEL1, KERNEL2)


def _module(built_vector, built_image, shape):
    return built_vector if len(shape) == 1 else built_image


@pytest.mark.parametrize("case", CASES)
def test_helpers_equal_the_reference_and_their_adjoints(vector, image, rng, case):
    shape_in, shape_out, reference, (array_helper, array_args), (numba_helper, numba_args) = CASES[case]
    built = _module(vector, image, shape_in)
    x, y = rng.standard_normal(shape_in), rng.standard_normal(shape_out)
    expected = reference(x)
    torch_call = getattr(built.model, array_helper)
    numpy_call = getattr(built.numpy_loop, array_helper)
    numba_call = getattr(built.kernel, numba_helper)
    targs = [torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in array_args]

    def numba_apply(value, adjoint, shape):
        out = np.empty(shape)
        numba_call(value, *numba_args, adjoint, out)
        return out

    forward = {
        "torch": torch_call(torch.from_numpy(x[None]), *targs)[0].numpy(),  # with a batch axis
        "numpy": numpy_call(x[None], *array_args)[0],
        "numba": numba_apply(x, False, shape_out),
    }
    adjoint = {
        "torch": torch_call(torch.from_numpy(y[None]), *targs, adjoint=True)[0].numpy(),
        "numpy": numpy_call(y[None], *array_args, adjoint=True)[0],
        "numba": numba_apply(y, True, shape_in),
    }
    for backend, value in forward.items():
        np.testing.assert_allclose(value, expected, rtol=0, atol=1e-12, err_msg=backend)
        inner = np.vdot(x, adjoint[backend])
        assert abs(np.vdot(value, y) - inner) < 1e-12 * (1 + abs(inner)), backend


@pytest.mark.parametrize("wrap", [True, False])
@pytest.mark.parametrize("shape", [(5,), (1,), (5, 3), (3, 5), (1, 1)])
def test_numba_convolutions_with_a_kernel_as_large_as_the_signal(vector, image, rng, wrap, shape):
    """The largest kernel a spec accepts: the padded border is as wide as the signal's half,
    and every tap's shift reaches the far end (circularly when wrap)."""
    h, x = rng.standard_normal(shape), rng.standard_normal(shape)
    helper = image.kernel.conv_2d if len(shape) == 2 else vector.kernel.conv_1d
    mode = "wrap" if wrap else "constant"
    for adjoint, reference in ((False, scipy.ndimage.convolve), (True, scipy.ndimage.correlate)):
        out = np.empty(shape)
        helper(x, h, wrap, adjoint, out)
        np.testing.assert_allclose(out, reference(x, h, mode=mode), rtol=0, atol=1e-12, err_msg=f"adjoint={adjoint}")


def test_resampling_is_an_adjoint_pair(vector, rng):
    x, z = rng.standard_normal(12), rng.standard_normal(6)
    down, up = vector.model.downsample, vector.model.upsample
    np.testing.assert_array_equal(down(torch.from_numpy(x), 2).numpy(), x[::2])
    assert abs(np.vdot(down(torch.from_numpy(x), 2).numpy(), z) - np.vdot(x, up(torch.from_numpy(z), 2).numpy())) < 1e-12
    for module in (vector.numpy_loop,):
        np.testing.assert_array_equal(module.upsample(z, 2)[::2], z)
        assert abs(np.vdot(module.downsample(x, 2), z) - np.vdot(x, module.upsample(z, 2))) < 1e-12
    out_down, out_up = np.empty(6), np.empty(12)
    vector.kernel.downsample(x, 2, out_down)
    vector.kernel.upsample(z, 2, out_up)
    assert abs(np.vdot(out_down, z) - np.vdot(x, out_up)) < 1e-12


def test_dct_matrix_is_scipys_orthonormal_dct(vector, rng):
    matrix = vector.model.dct_matrix(12, dtype=torch.float64, device="cpu").numpy()
    x = rng.standard_normal(12)
    np.testing.assert_allclose(matrix @ x, scipy.fft.dct(x, norm="ortho"), atol=1e-12)
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(12), atol=1e-12)


def _dense(apply, shape_in):
    """The matrix of a linear map, column by column."""
    size = int(np.prod(shape_in))
    return np.stack([np.ravel(apply(np.eye(size)[i].reshape(shape_in))) for i in range(size)], axis=1)


def _evaluate(operator, x, adjoint, values):
    value = operator.evaluate(torch.from_numpy(x if x.ndim == 2 else x[:, None]), adjoint, lambda s: values[s])
    return value.numpy() if x.ndim == 2 else value.numpy()[:, 0]


H1, H2 = sp.MatrixSymbol("h", 5, 1), sp.MatrixSymbol("g", 3, 5)
W1, W2 = sp.MatrixSymbol("w", 12, 1), sp.MatrixSymbol("W", 6, 8)
_weights = np.random.default_rng(5)
VALUES = {H1: torch.from_numpy(KERNEL1[:, None]), H2: torch.from_numpy(KERNEL2),
          W1: torch.from_numpy((_weights.random((12, 1)) < 0.5) * 1.0),
          W2: torch.from_numpy(_weights.standard_normal((6, 8)))}
OPERATORS = {
    "conv_wrap_1d": (Convolution(H1, 1, 12, 1), (12,)),
    "conv_zero_1d": (Convolution(H1, 0, 12, 1), (12,)),
    "conv_wrap_2d": (Convolution(H2, 1, 6, 8), (6, 8)),
    "conv_zero_2d": (Convolution(H2, 0, 6, 8), (6, 8)),
    "diff": (Difference(12), (12,)),
    "grad2d": (Gradient2D(6, 8), (6, 8)),
    "downsample": (Resample(2, 0, 12), (12,)),
    "upsample": (Resample(2, 1, 6), (6,)),
    "mask_1d": (Mask(W1, 12, 1), (12,)),
    "mask_2d": (Mask(W2, 6, 8), (6, 8)),
}


@pytest.mark.parametrize("name", OPERATORS)
def test_training_evaluator_and_exact_norms(rng, name):
    """Training's implementation equals the helpers' reference; the exact norm is the largest
    singular value of the dense matrix (where the operator knows one)."""
    operator, shape_in = OPERATORS[name]
    dense = _dense(lambda x: _evaluate(operator, x, False, VALUES), shape_in)
    if name in CASES:
        x = rng.standard_normal(shape_in)
        np.testing.assert_allclose(_evaluate(operator, x, False, VALUES), CASES[name][2](x), atol=1e-12)
    adjoint_dense = _dense(lambda y: _evaluate(operator, y, True, VALUES), dense.shape[0:1] if len(shape_in) == 1
                           else (dense.shape[0] // shape_in[1], shape_in[1]))
    np.testing.assert_allclose(adjoint_dense, dense.T, atol=1e-12)
    norm = operator.norm()
    if norm is None:
        assert name.startswith("conv_zero")
        return
    assert _norm_value(norm) == pytest.approx(np.linalg.norm(dense, 2), rel=1e-12)


def _norm_value(norm):
    if isinstance(norm, DftPeak):
        return _dft_peak(norm)
    if isinstance(norm, LargestMagnitude):
        return float(VALUES[norm.args[0]].abs().max())
    return float(norm)


def _dft_peak(norm):
    kernel, rows, cols = norm.args
    sizes = (int(rows),) if cols == 1 else (int(rows), int(cols))
    array = VALUES[kernel].numpy()
    return float(np.abs(np.fft.fftn(array[:, 0] if cols == 1 else array, s=sizes, axes=range(len(sizes)))).max())


@pytest.mark.parametrize("data", [VECTOR, IMAGE], ids=lambda d: d["name"])
def test_derived_gradient_is_autograds(rng, data, vector, image):
    """The gradient the compiler derives through compositions, sums and adjoints (one gradient
    step of the network) equals autograd of the objective evaluated by training's evaluator."""
    built = vector if data is VECTOR else image
    variable, source = ("x", "y") if data is VECTOR else ("X", "Y")
    constants = {name: rng.standard_normal(shape) for name, shape in built.program.constants.items()}
    model = built.model.Unfolded(**constants, dtype=torch.float64)
    start = rng.standard_normal((2, *built.program.inputs[source]))
    with torch.no_grad():
        two_steps = model(**{source: torch.from_numpy(start)})[variable].numpy()
    problem = TrainingProblem(load_spec(built.directory.parent.parent / f"{data['name']}.yaml"), built.program)
    x = torch.from_numpy(start).requires_grad_(True)
    tensors = {name: torch.from_numpy(value) for name, value in constants.items()}
    current = x
    for _ in range(2):
        value = problem.objective({source: torch.from_numpy(start)}, {variable: current}, tensors).sum()
        (gradient,) = torch.autograd.grad(value, current, create_graph=True)
        current = current - 0.05 * gradient
    np.testing.assert_allclose(two_steps, current.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_the_spec_page_lists_every_operator_from_the_registry():
    from conftest import ROOT

    from unfoldgen.operators.linear import markdown_table

    assert markdown_table() in (ROOT / "docs" / "spec.md").read_text(), (
        "docs/spec.md is out of date: paste unfoldgen.operators.linear.markdown_table() into it")


@pytest.mark.parametrize(("text", "reference"), [
    ("conv_adjoint(h, y)", lambda v, h, g: scipy.ndimage.correlate(v["y"], h, mode="wrap")),
    ("conv_zero_adjoint(h, y)", lambda v, h, g: scipy.ndimage.correlate(v["y"], h, mode="constant")),
    ("conv_adjoint(g, Y)", lambda v, h, g: scipy.ndimage.correlate(v["Y"], g, mode="wrap")),
    ("diff_adjoint(y)", lambda v, h, g: np.concatenate([[-v["y"][0]], v["y"][:-1] - v["y"][1:], [v["y"][-1]]])),
    ("grad2d_adjoint(Z)", lambda v, h, g: _dense(_grad2d, (6, 8)).T @ v["Z"].ravel()),
])
def test_adjoints_can_be_written(rng, text, reference):
    """The adjoint spellings, parsed and evaluated (training's evaluator), against SciPy/NumPy."""
    from unfoldgen.spec import load_spec_text
    from unfoldgen.spec.model import Located
    from unfoldgen.symbolic.language import Namespace, Parser
    from unfoldgen.training.expressions import evaluate

    spec = load_spec_text(yaml.safe_dump({
        "name": "adjoints", "dims": {"n": 12, "m": 6, "p": 8, "q": 12},
        "inputs": {"y": ["n"], "Y": ["m", "p"], "Z": ["q", "p"]}, "constants": {"h": [5], "g": [3, 5]},
        "variables": {"x": {"shape": ["n"], "init": "zeros"}},
        "objective": {"smooth": "0.5 * sum_squares(x - y)"}, "algorithm": {"method": "gradient_descent", "layers": 1}}))
    ns = Namespace(spec)
    value = Parser(ns, Located(text, "test", 1)).parse()
    values = {"y": rng.standard_normal(12), "Y": rng.standard_normal((6, 8)), "Z": rng.standard_normal((12, 8))}
    env = {ns.tensors[name].expr: torch.from_numpy(v if v.ndim == 2 else v[:, None]) for name, v in values.items()}
    env |= {ns.tensors["h"].expr: torch.from_numpy(KERNEL1[:, None]), ns.tensors["g"].expr: torch.from_numpy(KERNEL2)}
    env |= {symbol: float(spec.dims[name]) for name, symbol in ns.dims.items()}
    got = evaluate(value.expr, env).numpy()
    expected = np.asarray(reference(values, KERNEL1, KERNEL2))
    np.testing.assert_allclose(got.reshape(expected.shape), expected, atol=1e-12)


COMPOSITIONS = [
    "conv(h, diff(y))", "upsample(downsample(conv_zero(h, y), 2), 2)", "dct(conv(h, y)) + 2 * y",
    "A @ diff(y)", "diff_adjoint(diff(y)) - conv_adjoint(h, y)", "conv(g, Y) + grad2d_adjoint(grad2d(Y))",
    "idct(conv_zero(h, y)) - 0.5 * y",
]


def _problem():
    from unfoldgen.spec import load_spec_text
    from unfoldgen.symbolic.language import Namespace

    spec = load_spec_text(yaml.safe_dump({
        "name": "compositions", "dims": {"n": 12, "m": 6, "p": 8, "k": 11},
        "inputs": {"y": ["n"], "Y": ["m", "p"]}, "constants": {"h": [5], "g": [3, 5], "A": ["n", "k"]},
        "variables": {"x": {"shape": ["n"], "init": "zeros"}},
        "objective": {"smooth": "0.5 * sum_squares(x - y)"}, "algorithm": {"method": "gradient_descent", "layers": 1}}))
    return spec, Namespace(spec)


@pytest.mark.parametrize("text", COMPOSITIONS)
def test_compositions_have_the_derived_adjoint(rng, text):
    """For K x written as a composition and sum, the compiler's K^T (the transpose of the product,
    as the calculus derives it) satisfies <K x, z> = <x, K^T z> to 1e-12 in float64."""
    from unfoldgen.spec.model import Located
    from unfoldgen.symbolic.language import Parser
    from unfoldgen.symbolic.objective import linear_map
    from unfoldgen.training.expressions import evaluate

    spec, ns = _problem()
    value = Parser(ns, Located(text, "test", 1)).parse()
    argument = ns.matrix_symbol("y" if "y" in text else "Y")
    operator = linear_map(value.expr, argument)
    out_rows = int(value.expr.shape[0].subs({s: spec.dims[n] for n, s in ns.dims.items()}))
    out_shape = (out_rows,) + ((8,) if argument.name == "Y" else (1,))
    x = rng.standard_normal(tuple(int(d.subs({s: spec.dims[n] for n, s in ns.dims.items()})) for d in argument.shape))
    z = rng.standard_normal(out_shape)
    probe = sp.MatrixSymbol("z", value.expr.shape[0], argument.shape[1])
    env = {ns.tensors["h"].expr: torch.from_numpy(KERNEL1[:, None]), ns.tensors["g"].expr: torch.from_numpy(KERNEL2),
           ns.tensors["A"].expr: torch.from_numpy(rng.standard_normal((12, 11))),
           argument: torch.from_numpy(x), probe: torch.from_numpy(z)}
    env |= {symbol: float(spec.dims[name]) for name, symbol in ns.dims.items()}
    forward = evaluate(sp.expand(operator * argument), env).numpy()
    adjoint = evaluate(sp.expand(operator.T * probe), env).numpy()
    inner = float(np.vdot(x, adjoint))
    assert abs(float(np.vdot(forward, z)) - inner) < 1e-12 * (1 + abs(inner))


@pytest.mark.parametrize("name", [n for n in OPERATORS if not n.startswith("conv_zero")])
def test_exact_norms_against_power_iteration(rng, name):
    """The exact norm against matrix-free power iteration on K^T K (applying the operator and its
    adjoint, never forming K)."""
    operator, shape_in = OPERATORS[name]
    exact = _norm_value(operator.norm())
    x = rng.standard_normal(shape_in)
    for _ in range(3000):
        x = _evaluate(operator, _evaluate(operator, x, False, VALUES), True, VALUES)
        x /= np.linalg.norm(x)
    estimate = np.linalg.norm(_evaluate(operator, x, False, VALUES))
    assert estimate == pytest.approx(exact, rel=1e-6)
