"""The linear operators as dense matrices, built from SciPy and NumPy references (apart from
the package's implementations), for the tests' own evaluators."""

from __future__ import annotations

import numpy as np
import scipy.fft
import scipy.ndimage
import sympy as sp
import torch

from unfoldgen.operators.linear import LinearOperator, TableMatrix
from unfoldgen.operators.linear.conv import Convolution
from unfoldgen.operators.linear.diff import Difference
from unfoldgen.operators.linear.grad2d import Gradient2D
from unfoldgen.operators.linear.resample import Resample


def _columns(apply, shape_in: tuple[int, ...]) -> np.ndarray:
    size = int(np.prod(shape_in))
    return np.stack([np.ravel(apply(np.eye(size)[i].reshape(shape_in))) for i in range(size)], axis=1)


def gradient_2d(x: np.ndarray) -> np.ndarray:
    dx, dy = np.zeros_like(x), np.zeros_like(x)
    dx[:-1] = x[1:] - x[:-1]
    dy[:, :-1] = x[:, 1:] - x[:, :-1]
    return np.concatenate([dx, dy])


def dense(operator: LinearOperator, kernel: np.ndarray | None, rows: int, columns: int) -> np.ndarray:
    """The matrix of ``operator`` acting on a (rows x columns) argument flattened row-major."""
    if isinstance(operator, Convolution):
        assert kernel is not None
        mode = "wrap" if operator.wrap else "constant"
        shape = (rows,) if not operator.image else (rows, columns)
        matrix = _columns(lambda x: scipy.ndimage.convolve(x, kernel.reshape(-1) if not operator.image else kernel,
                                                           mode=mode), shape)
        return matrix if operator.image else np.kron(matrix, np.eye(columns))
    if isinstance(operator, Gradient2D):
        return _columns(gradient_2d, (rows, columns))
    if isinstance(operator, Difference):
        matrix = _columns(np.diff, (rows,))
    elif isinstance(operator, Resample):
        factor = int(operator.factor)
        if operator.up:
            matrix = _columns(lambda x: np.stack([x] + [np.zeros_like(x)] * (factor - 1), axis=-1).ravel(), (rows,))
        else:
            matrix = _columns(lambda x: x[::factor], (rows,))
    else:
        raise NotImplementedError(type(operator))
    return np.kron(matrix, np.eye(columns))


def table(matrix: TableMatrix, size: int) -> np.ndarray:
    return scipy.fft.dct(np.eye(size), norm="ortho", axis=0)


def _sizes(values: dict) -> dict[sp.Symbol, int]:
    """The dims' values, read off the tensors bound to matrix symbols."""
    sizes = {}
    for symbol, value in values.items():
        if isinstance(symbol, sp.MatrixSymbol):
            for dim, size in zip(symbol.shape, (*value.shape, 1)[:2], strict=True):
                if isinstance(dim, sp.Symbol):
                    sizes[dim] = size
    return sizes


def apply_factors(factors: list[sp.MatrixExpr], values: dict, evaluate) -> torch.Tensor:
    """A product with operators and tables, right to left, the operators as dense matrices."""
    result = evaluate(factors[-1], values)
    for factor in reversed(factors[:-1]):
        operator, adjoint = (factor.arg, True) if isinstance(factor, sp.Transpose) else (factor, False)
        if isinstance(operator, TableMatrix):
            value = torch.from_numpy(table(operator, result.shape[0]))
            result = (value.T if adjoint else value) @ result
        elif isinstance(operator, LinearOperator):
            kernel = evaluate(operator.args[0], values).detach().numpy() if isinstance(operator, Convolution) else None
            columns = result.shape[1] if result.dim() == 2 else 1
            rows_in = int(sp.sympify(operator.shape[1]).subs(_sizes(values)))
            matrix = torch.from_numpy(dense(operator, kernel, rows_in, columns))
            matrix = matrix.T if adjoint else matrix
            out_rows = matrix.shape[0] // columns
            result = (matrix @ result.reshape(-1)).reshape(out_rows, columns) if result.dim() == 2 else matrix @ result
        else:
            result = evaluate(factor, values) @ result
    return result
