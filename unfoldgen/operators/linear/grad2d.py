"""``grad2d(X)``: the image gradient, ``dx`` stacked over ``dy`` (a ``2m x n`` matrix).

``dx[i, j] = X[i+1, j] - X[i, j]`` and ``dy[i, j] = X[i, j+1] - X[i, j]``, both zero on the last
row / column (Neumann boundary). Total variation is a norm of it: ``tv(X)`` (isotropic, the sum
over pixels of ``sqrt(dx^2 + dy^2)``) and ``tv1(X)`` (anisotropic, ``|dx| + |dy|``). ``G^T G`` is
the Neumann Laplacian, a Kronecker sum of two path Laplacians, so
``||G||_2 = sqrt(4 cos^2(pi / 2m) + 4 cos^2(pi / 2n))`` exactly (below sqrt(8)).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sympy as sp

from unfoldgen.operators.linear.base import LinearFunction, LinearOperator, TableMatrix


class Gradient2D(LinearOperator):
    """``args``: the image's rows m and columns n; it maps ``m x n`` to ``2m x n``."""

    template = "grad2d"
    image = True

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return (2 * self.args[0], self.args[0])

    def array_call(self, adjoint: bool) -> tuple[str, tuple[sp.Basic, ...]]:
        return "grad2d", (sp.true if adjoint else sp.false,)

    def evaluate(self, x: Any, adjoint: bool, value_of: Callable[[sp.Basic], Any]) -> Any:
        import torch

        if adjoint:
            m = x.shape[-2] // 2
            dx, dy = x[..., :m, :].clone(), x[..., m:, :].clone()
            dx[..., m - 1, :] = 0.0
            dy[..., :, -1] = 0.0
            up = torch.cat([torch.zeros_like(dx[..., :1, :]), dx[..., :-1, :]], dim=-2)
            left = torch.cat([torch.zeros_like(dy[..., :1]), dy[..., :-1]], dim=-1)
            return up - dx + left - dy
        dx = torch.cat([x[..., 1:, :] - x[..., :-1, :], torch.zeros_like(x[..., :1, :])], dim=-2)
        dy = torch.cat([x[..., 1:] - x[..., :-1], torch.zeros_like(x[..., :1])], dim=-1)
        return torch.cat([dx, dy], dim=-2)

    def norm(self) -> sp.Expr | None:
        m, n = self.args
        return 2 * sp.sqrt(sp.cos(sp.pi / (2 * m)) ** 2 + sp.cos(sp.pi / (2 * n)) ** 2)

    def norm_text(self) -> str:
        return r"exact: $2\sqrt{\cos^2(\pi/2m) + \cos^2(\pi/2n)}$"

    def flops(self, columns: int) -> int:
        return 2 * int(self.args[0]) * columns

    def _sympystr(self, printer: Any) -> str:
        return "grad2d"

    def _latex(self, printer: Any) -> str:
        return r"\nabla"


class NeumannSpectrum(TableMatrix):
    """The eigenvalues of ``G^T G`` (``G = grad2d`` on ``m x n`` images) in the 2-D DCT-II basis:
    ``4 sin^2(pi i / 2m) + 4 sin^2(pi j / 2n)`` at ``(i, j)``. With them a system
    ``a I + c G^T G`` is solved exactly by two DCTs and a division (ADMM's x-update)."""

    stem = "laplacian_eigenvalues"
    template, helper = "grad2d", "laplacian_eigenvalues"
    orthonormal = False

    def description(self, shape: tuple[int, ...]) -> str:
        return f"the eigenvalues of grad2d.T @ grad2d on {shape[0]} x {shape[1]} images, in the DCT basis"

    def torch_code(self, sizes: tuple[int, ...], dtype: str, device: str) -> str:
        return f"laplacian_eigenvalues({sizes[0]}, {sizes[1]}, dtype={dtype}, device={device})"

    def value(self, sizes: tuple[int, ...], like: Any) -> Any:
        import torch

        rows, cols = (4 * torch.sin(torch.pi * torch.arange(s, dtype=torch.float64) / (2 * s)) ** 2 for s in sizes)
        return (rows[:, None] + cols[None, :]).to(like.dtype).to(like.device)

    def _sympystr(self, printer: Any) -> str:
        return "laplacian_eigenvalues"

    def _latex(self, printer: Any) -> str:
        return r"\Lambda"


def gradient_of(parser: Any, node: Any, args: list[Any], name: str) -> Any:
    """``grad2d(X)`` as a value, for the functions built on it."""
    parser.expect_args(node, args, 1, name)
    (image,) = args
    if len(image.shape) != 2:
        raise parser.error(node, f"{name}(X) takes an image (a matrix)", hint="for a vector, use diff(x)")
    if any(s < 2 for s in parser.ns.size(image.shape)):
        raise parser.error(node, f"{name}(X) needs an image of at least 2 x 2")
    rows, cols = image.expr.shape
    return parser.apply(node, Gradient2D(rows, cols), image)


def _build_adjoint(parser: Any, node: Any, args: list[Any]) -> Any:
    parser.expect_args(node, args, 1, "grad2d_adjoint")
    (stacked,) = args
    sizes = parser.ns.size(stacked.shape)
    if len(sizes) != 2 or sizes[0] % 2:
        raise parser.error(node, "grad2d_adjoint(Z) takes a stacked [dx; dy], a matrix of an even number of rows")
    rows, cols = stacked.expr.shape
    return parser.apply(node, Gradient2D(rows / 2, cols), stacked, adjoint=True)


FUNCTIONS = (
    LinearFunction("grad2d", "`grad2d(X)`", "image gradient [dx; dy] (2m x n), zero on the last row / column",
                   lambda parser, node, args: gradient_of(parser, node, args, "grad2d"),
                   ("grad2d", "laplacian_eigenvalues")),
    LinearFunction("grad2d_adjoint", "`grad2d_adjoint(Z)`", "its adjoint, minus the divergence of Z = [dx; dy]",
                   _build_adjoint, ()),
)
