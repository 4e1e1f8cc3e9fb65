"""Generated code checks its inputs where Python calls it: names, dtypes, shapes, finite values.

The checks run before any Numba function is called, so these tests compile nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from conftest import ROOT, Built, variant

M, N = 6, 4


@pytest.fixture(scope="module")
def nnls(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return variant("nnls", tmp_path_factory.mktemp("nnls"), dims={"m": M, "n": N}, layers=3)


@pytest.fixture(scope="module")
def model(nnls: Built) -> Any:
    return nnls.model.Unfolded(A=np.ones((M, N)), dtype=torch.float64)


def entry_points(nnls: Built, model: Any) -> dict[str, Callable[..., Any]]:
    """Every way to run the network on a batch, with the kernel's params."""
    params = model.kernel_params()
    return {
        "module": lambda **inputs: model(**{k: torch.as_tensor(v) for k, v in inputs.items()}),
        "kernel": lambda **inputs: nnls.kernel.solve(params, **inputs),
        "numpy_loop": lambda **inputs: nnls.numpy_loop.solve(params, **inputs),
    }


@pytest.mark.parametrize("entry", ["module", "kernel", "numpy_loop"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_reported_with_its_position(nnls: Built, model: Any, entry: str, bad: float) -> None:
    y = np.zeros((3, M))
    y[1, 4] = bad
    with pytest.raises(ValueError, match=r"input 'y' contains NaN or Inf \(first at index \(1, 4\)\)"):
        entry_points(nnls, model)[entry](y=y)


@pytest.mark.parametrize("entry", ["module", "kernel", "numpy_loop"])
@pytest.mark.parametrize("shape", [(3, M + 1), (M,), (3, M, 1)])
def test_wrong_shape_names_the_input_and_the_expected_shape(nnls: Built, model: Any, entry: str,
                                                            shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=rf"input 'y' must have shape \[batch, {M}\], got"):
        entry_points(nnls, model)[entry](y=np.zeros(shape))


@pytest.mark.parametrize("entry", ["module", "kernel", "numpy_loop"])
def test_complex_or_boolean_input_is_a_type_error(nnls: Built, model: Any, entry: str) -> None:
    for value in (np.zeros((2, M), complex), np.zeros((2, M), bool)):
        with pytest.raises(TypeError, match="input 'y' must hold real numbers"):
            entry_points(nnls, model)[entry](y=value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_kernel_single_sample_entry_checks_too(nnls: Built, model: Any, bad: float) -> None:
    """solve_one scans inside its compiled call (_one_sample): the errors are the same."""
    params = model.kernel_params()
    with pytest.raises(ValueError, match=rf"input 'y' must have shape \[{M}\]"):
        nnls.kernel.solve_one(params, y=np.zeros((1, M)))
    for position in (0, M - 1):
        y = np.zeros(M)
        y[position] = bad
        with pytest.raises(ValueError, match=rf"input 'y' contains NaN or Inf \(first at index \({position},\)\)"):
            nnls.kernel.solve_one(params, y=y)
    with pytest.raises(FloatingPointError, match="output 'x' has NaN or Inf .* the params hold NaN or Inf"):
        nnls.kernel.solve_one({**params, "step": np.full_like(params["step"], bad)}, y=np.ones(M))
    assert np.isfinite(nnls.kernel.solve_one(params, y=np.ones(M))["x"]).all()


def test_the_kernels_compiled_scan_finds_any_non_finite_entry(nnls: Built) -> None:
    all_finite = nnls.kernel.all_finite
    assert all_finite(np.zeros((3, 4))) and all_finite(np.array(2.0)) and all_finite(np.zeros(0))
    for bad in (np.nan, np.inf, -np.inf):
        for index in ((0, 0), (2, 3), (1, 2)):
            array = np.zeros((3, 4), np.float32)
            array[index] = bad
            assert not all_finite(array)
        assert not all_finite(np.array(bad))


@pytest.mark.parametrize("runner", ["kernel", "numpy_loop"])
def test_params_are_checked_by_name_and_shape_and_non_finite_values_show_in_the_outputs(nnls: Built, model: Any, runner: str) -> None:
    solve = getattr(nnls, runner).solve
    y = np.zeros((2, M))
    params = model.kernel_params()
    with pytest.raises(ValueError, match=r"params lack \['A'\]"):
        solve({k: v for k, v in params.items() if k != "A"}, y=y)
    with pytest.raises(ValueError, match=rf"param 'A' must have shape \[{M}, {N}\], got \[{N}, {M}\]"):
        solve({**params, "A": params["A"].T}, y=y)
    with pytest.raises(FloatingPointError, match="output 'x' has NaN or Inf .* the params hold NaN or Inf"):
        solve({**params, "step": np.full_like(params["step"], np.nan)}, y=y)


def test_unknown_or_missing_inputs_are_named(nnls: Built, model: Any) -> None:
    with pytest.raises(ValueError, match=r"expected inputs \['y'\], got \['z'\]"):
        nnls.kernel.solve(model.kernel_params(), z=np.zeros((2, M)))
    with pytest.raises(TypeError, match="'y'"):
        model()


def test_module_constants_and_params_are_checked_at_construction(nnls: Built) -> None:
    A = np.ones((M, N))
    A[2, 3] = np.inf
    with pytest.raises(ValueError, match=r"constant 'A' contains NaN or Inf \(first at index \(2, 3\)\)"):
        nnls.model.Unfolded(A=A)
    with pytest.raises(ValueError, match=rf"constant 'A' must have shape \[{M}, {N}\]"):
        nnls.model.Unfolded(A=np.ones((N, M)))


def test_integer_inputs_are_accepted_as_real_numbers(model: Any) -> None:
    y = np.arange(2 * M).reshape(2, M)
    out = model(y=torch.as_tensor(y))["x"]
    assert out.dtype == torch.float64 and torch.isfinite(out).all()


def test_python_floats_keep_float64_precision(tmp_path) -> None:
    """A param given as a Python float is not rounded through float32 on its way in."""
    built = variant("ista_lasso", tmp_path, dims={"m": M, "n": N}, layers=2)
    model = built.model.Unfolded(A=np.ones((M, N)), lam=0.1, dtype=torch.float64)
    assert model.lam.item() == 0.1


# -- dtype: the module's dtype, and the rule for inputs of another one -------------------------

def test_a_higher_precision_input_is_refused_not_downcast(nnls: Built) -> None:
    model32 = nnls.model.Unfolded(A=np.ones((M, N)), dtype=torch.float32)
    with pytest.raises(TypeError, match=r"input 'y' is torch.float64 but the module computes in torch.float32.*"
                                        r"lose precision.*dtype=torch.float64"):
        model32(y=np.ones((2, M)))


def test_a_lower_precision_input_is_converted_up_exactly(model: Any) -> None:
    y32 = torch.randn(2, M, dtype=torch.float32)
    out = model(y=y32)["x"]
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, model(y=y32.double())["x"], rtol=0, atol=0)


def test_module_dtype_follows_the_argument_then_the_spec_then_the_constants(tmp_path) -> None:
    plain = variant("nnls", tmp_path / "plain", dims={"m": M, "n": N}, layers=2)
    assert plain.model.Unfolded(A=np.ones((M, N))).A.dtype == torch.float64  # numpy's float64
    assert plain.model.Unfolded(A=torch.ones(M, N)).A.dtype == torch.float32
    assert plain.model.Unfolded(A=np.ones((M, N), dtype=np.int64)).A.dtype == torch.get_default_dtype()
    declared = variant("nnls", tmp_path / "declared", dims={"m": M, "n": N}, layers=2, dtype="float32")
    assert declared.model.Unfolded(A=np.ones((M, N))).A.dtype == torch.float32  # the spec's, A converted
    assert declared.model.Unfolded(A=np.ones((M, N)), dtype=torch.float64).A.dtype == torch.float64


def test_a_spec_without_constants_computes_in_its_declared_dtype(tmp_path) -> None:
    """RPCA has no constants: it used to fall back to float32 and round float64 inputs silently."""
    default = variant("rpca", tmp_path / "default", dims={"m": 6, "n": 5}, layers=3)
    declared = variant("rpca", tmp_path / "declared", dims={"m": 6, "n": 5}, layers=3, dtype="float64")
    Y = np.random.default_rng(0).standard_normal((2, 6, 5))
    with pytest.raises(TypeError, match="lose precision"):
        default.model.Unfolded()(Y=Y)
    model = declared.model.Unfolded()
    assert next(model.buffers()).dtype == torch.float64
    exact = default.model.Unfolded(dtype=torch.float64)(Y=Y)
    for name, value in model(Y=Y).items():
        torch.testing.assert_close(value, exact[name], rtol=0, atol=0)
    assert load_spec_dtype(tmp_path / "declared") == "float64"


def load_spec_dtype(folder) -> str:
    """train.dtype defaults to the spec's dtype."""
    from unfoldgen.spec import load_spec

    (path,) = folder.glob("*.yaml")
    return load_spec(path).train.dtype


def test_a_division_by_zero_in_the_kernel_is_reported_like_the_modules_inf(tmp_path: Any) -> None:
    """The kernel's arithmetic follows NumPy's error model, as PyTorch's does: Poisson's
    y / (A x + eps) with eps = 0 at x = 0 gives inf (Python's model would raise
    ZeroDivisionError from inside the compiled loop, and test every divisor), and the scan of
    the outputs reports it, one sample and a batch on the BLAS path alike."""
    built = variant("poisson_deconv", tmp_path, dims={"n": 6}, layers=2)
    A = np.abs(np.random.default_rng(0).standard_normal((6, 6)))
    module = built.model.Unfolded(A=A, dtype=torch.float64, eps=0.0)
    params = module.kernel_params()
    y = np.ones((40, 6))
    assert not torch.isfinite(module(y=torch.from_numpy(y))["x"]).all()
    with pytest.raises(FloatingPointError, match="output 'x' has NaN or Inf"):
        built.kernel.solve_one(params, y=y[0])
    assert 40 >= built.kernel.BLAS_MIN_BATCH
    with pytest.raises(FloatingPointError, match="output 'x' has NaN or Inf"), np.errstate(invalid="ignore"):
        built.kernel.solve(params, y=y)  # NumPy's matmul warns of the inf too
    params["eps"] = np.asarray(0.1)
    assert np.isfinite(built.kernel.solve(params, y=y)["x"]).all()


def test_every_compiled_function_of_the_bundled_kernels_follows_numpys_error_model() -> None:
    """A template's @njit without error_model="numpy" would raise ZeroDivisionError where the
    others give inf, and keep its loops with a division from being vectorised."""
    decorators = [line.strip() for path in sorted((ROOT / "generated").glob("*/kernel.py"))
                  for line in path.read_text().splitlines() if line.strip().startswith("@njit(")]
    assert len(decorators) > 100
    assert [d for d in decorators if 'error_model="numpy"' not in d] == []
