"""``conv(h, x)`` and ``conv_zero(h, x)``: convolution with a kernel of odd size, same size out.

``conv`` is circular: it equals ``scipy.ndimage.convolve(x, h, mode='wrap')``, i.e.
``(h * x)[i] = sum_j h[j] x[(i + c - j) mod n]`` with ``c = len(h) // 2`` (per axis for an
image). ``conv_zero`` reads zeros outside the signal: ``mode='constant'``. The adjoint is the
correlation with ``h`` (the convolution with the flipped kernel) under the same boundary rule.
The circular operator is diagonalised by the DFT, so ``||C||_2 = max |DFT(h)|`` (``h`` zero-padded
to the signal's size); the zero-boundary one is found by power iteration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import sympy as sp

from unfoldgen.operators.linear.base import LinearFunction, LinearOperator, TableMatrix

if TYPE_CHECKING:
    from typing_extensions import Self


class Convolution(LinearOperator):
    """``args``: the kernel (a matrix symbol), wrap (1 or 0), and the argument's rows, cols."""

    template = "conv"

    @property
    def loop_helpers(self) -> tuple[str, ...]:
        """conv_1d adds shifted copies of x; conv_2d pads x, flat, and crops its sum."""
        return ("pad_flat",) if self.image else ("add_shifted",)

    @property
    def kernel(self) -> sp.MatrixExpr:
        return self.args[0]

    @property
    def wrap(self) -> bool:
        return bool(self.args[1])

    @property
    def image(self) -> bool:  # type: ignore[override]
        return self.args[3] != 1

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return (self.args[2], self.args[2])

    def array_call(self, adjoint: bool) -> tuple[str, tuple[sp.Basic, ...]]:
        return "conv", (self.kernel, sp.true if self.wrap else sp.false, sp.true if adjoint else sp.false)

    def numba_call(self, adjoint: bool) -> tuple[str, tuple[sp.Basic, ...]]:
        return ("conv_2d" if self.image else "conv_1d"), self.array_call(adjoint)[1]

    def evaluate(self, x: Any, adjoint: bool, value_of: Callable[[sp.Basic], Any]) -> Any:
        import torch

        kernel = value_of(self.kernel)
        half = (kernel.shape[0] // 2, kernel.shape[1] // 2)
        padded = x
        for axis, c in zip((-2, -1), half, strict=True):
            if c:
                edge = [padded.narrow(axis, padded.shape[axis] - c, c), padded, padded.narrow(axis, 0, c)]
                if not self.wrap:
                    edge[0], edge[2] = torch.zeros_like(edge[0]), torch.zeros_like(edge[2])
                padded = torch.cat(edge, dim=axis)
        out = torch.zeros_like(x)
        rows, cols = x.shape[-2:]
        for a in range(kernel.shape[0]):
            for b in range(kernel.shape[1]):
                # K x reads x[i + c - a] = padded[i + 2c - a]; K^T y reads y[i - c + a] = padded[i + a]
                r, s = (a, b) if adjoint else (2 * half[0] - a, 2 * half[1] - b)
                out = out + kernel[a, b] * padded[..., r:r + rows, s:s + cols]
        return out

    def norm(self) -> sp.Expr | None:
        return DftPeak(self.kernel, self.args[2], self.args[3]) if self.wrap else None

    def norm_bound(self) -> sp.Expr:
        """The zero-boundary convolution is a block of the circular one on a signal padded by
        the kernel's half-width, so that one's norm bounds it."""
        rows, cols = self.args[2], self.args[3]
        taps = self.kernel.shape
        return DftPeak(self.kernel, rows + taps[0] - 1, cols + taps[1] - 1 if cols != 1 else 1)

    def norm_text(self) -> str:
        if self.wrap:
            return r"exact: the largest modulus of the DFT of the zero-padded kernel"
        return "bound: the circular convolution's norm on the signal padded by the kernel's half-widths"

    def flops(self, columns: int) -> int:
        rows, taps = int(self.args[2]), int(self.kernel.shape[0]) * int(self.kernel.shape[1])
        return 2 * rows * columns * taps

    def _sympystr(self, printer: Any) -> str:
        return f"{'conv' if self.wrap else 'conv_zero'}({printer._print(self.kernel)})"

    def _latex(self, printer: Any) -> str:
        mode = r"\circledast" if self.wrap else r"\ast_0"
        return rf"\left({printer._print(self.kernel)} {mode}\right)"


class DftPeak(sp.Expr):
    """``max |DFT(h)|`` over a ``rows x cols`` grid: the norm of a circular convolution."""

    is_real = True
    is_positive = True
    is_commutative = True

    def __new__(cls, kernel: sp.MatrixExpr, rows: sp.Expr, cols: sp.Expr) -> Self:
        return sp.Expr.__new__(cls, kernel, sp.sympify(rows), sp.sympify(cols))

    def _sympystr(self, printer: Any) -> str:
        return f"max|dft({printer._print(self.args[0])})|"

    def _latex(self, printer: Any) -> str:
        return rf"\max\left|\mathcal{{F}}\,{printer._print(self.args[0])}\right|"


class DftPower(sp.MatrixExpr):
    """``|DFT(h)|^2`` on a ``rows x cols`` grid (the kernel zero-padded): the eigenvalues of
    ``C^T C`` for the circular convolution ``C`` with ``h``, in the 2-D DFT basis."""

    def __new__(cls, kernel: sp.MatrixExpr, rows: sp.Expr, cols: sp.Expr) -> Self:
        return sp.MatrixExpr.__new__(cls, kernel, sp.sympify(rows), sp.sympify(cols))

    @property
    def kernel(self) -> sp.MatrixExpr:
        return self.args[0]

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return (self.args[1], self.args[2])

    def _sympystr(self, printer: Any) -> str:
        return f"|dft({printer._print(self.kernel)})|**2"

    def _latex(self, printer: Any) -> str:
        return rf"\left|\mathcal{{F}}\,{printer._print(self.kernel)}\right|^2"


class _DftPart(TableMatrix):
    """``trig(2 pi j k / n)`` for ``trig`` cos or sin: the real part, or minus the imaginary part,
    of the ``n``-point DFT matrix (both symmetric)."""

    template = "conv"
    orthonormal = False
    trig: ClassVar[str]

    def description(self, shape: tuple[int, ...]) -> str:
        return f"{self.trig}(2 pi j k / n) of the {shape[0]}-point DFT matrix"

    def torch_code(self, sizes: tuple[int, ...], dtype: str, device: str) -> str:
        return f"{self.helper}({sizes[0]}, dtype={dtype}, device={device})"

    def value(self, sizes: tuple[int, ...], like: Any) -> Any:
        import torch

        (n,) = sizes
        k = torch.arange(n, dtype=torch.float64)
        angles = 2 * torch.pi * k[:, None] * k[None, :] / n
        return getattr(torch, self.trig)(angles).to(like.dtype).to(like.device)


class DftCos(_DftPart):
    stem = helper = "dft_cos"
    trig = "cos"


class DftSin(_DftPart):
    stem = helper = "dft_sin"
    trig = "sin"


def _build(wrap: bool, adjoint: bool = False) -> Any:
    def build(parser: Any, node: Any, args: list[Any]) -> Any:
        name = ("conv" if wrap else "conv_zero") + ("_adjoint" if adjoint else "")
        parser.expect_args(node, args, 2, name)
        kernel, signal = args
        if signal.is_scalar or kernel.is_scalar:
            raise parser.error(node, f"{name}(h, x) convolves a vector or a matrix x with a kernel h")
        if len(kernel.shape) != len(signal.shape):
            raise parser.error(node, f"the kernel of {name}(h, x) has {len(kernel.shape)} axes and x has "
                                     f"{len(signal.shape)}", hint="a vector takes a vector kernel, an image a matrix kernel")
        if not parser.constant_tensor(kernel.expr):
            raise parser.error(node, f"the kernel of {name}(h, x) must be a constant",
                               hint="declare h under constants (learn.objective: untied makes it trainable)")
        sizes, taps = parser.ns.size(signal.shape), parser.ns.size(kernel.shape)
        if any(t % 2 == 0 or t > s for t, s in zip(taps, sizes, strict=True)):
            raise parser.error(node, f"the kernel of {name}(h, x) must have odd sizes no larger than x's, "
                                     f"got {list(taps)} for x of {list(sizes)}", hint="e.g. a 5-tap or 5x5 kernel")
        rows, cols = signal.expr.shape
        return parser.apply(node, Convolution(kernel.expr, int(wrap), rows, cols), signal, adjoint)
    return build


FUNCTIONS = (
    LinearFunction("conv", "`conv(h, x)`", "circular convolution, same size out: scipy.ndimage.convolve(x, h, "
                   "mode='wrap'); vectors and images", _build(True),
                   ("conv", "conv_1d", "conv_2d", "dft_cos", "dft_sin")),
    LinearFunction("conv_zero", "`conv_zero(h, x)`", "convolution reading zeros outside x: "
                   "scipy.ndimage.convolve(x, h, mode='constant')", _build(False), ()),
    LinearFunction("conv_adjoint", "`conv_adjoint(h, y)`", "the adjoint of conv: correlation with h, "
                   "scipy.ndimage.correlate(y, h, mode='wrap')", _build(True, adjoint=True), ()),
    LinearFunction("conv_zero_adjoint", "`conv_zero_adjoint(h, y)`", "the adjoint of conv_zero: "
                   "scipy.ndimage.correlate(y, h, mode='constant')", _build(False, adjoint=True), ()),
)
