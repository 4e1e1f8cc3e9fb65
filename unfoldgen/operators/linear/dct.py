"""``dct(x)`` / ``idct(x)``: the orthonormal DCT-II and its inverse, of a vector or (along both
axes) of an image: ``dct(X) = C_m X C_n^T`` with ``C[k, i] = s_k cos(pi (2i + 1) k / 2n)``,
``s_0 = sqrt(1/n)``, ``s_k = sqrt(2/n)`` (scipy.fft.dct(x, norm='ortho')). ``C`` is orthonormal:
``idct`` is its transpose, the norm is 1, and the compiler treats it as the dense constant it
is, computed once when the model is built."""

from __future__ import annotations

from typing import Any

from unfoldgen.operators.linear.base import LinearFunction, TableMatrix


class DctMatrix(TableMatrix):
    """The ``n x n`` orthonormal DCT-II matrix."""

    stem = "dct"
    template, helper = "dct", "dct_matrix"

    def description(self, shape: tuple[int, ...]) -> str:
        return f"the {shape[0]}-point orthonormal DCT-II matrix"

    def torch_code(self, sizes: tuple[int, ...], dtype: str, device: str) -> str:
        return f"dct_matrix({sizes[0]}, dtype={dtype}, device={device})"

    def value(self, sizes: tuple[int, ...], like: Any) -> Any:
        import torch

        (size,) = sizes
        k = torch.arange(size, dtype=torch.float64)[:, None]
        i = torch.arange(size, dtype=torch.float64)[None, :]
        scale = torch.full((size, 1), (2.0 / size) ** 0.5, dtype=torch.float64)
        scale[0] = (1.0 / size) ** 0.5
        return (scale * torch.cos(torch.pi * (2 * i + 1) * k / (2 * size))).to(like.dtype).to(like.device)

    def _sympystr(self, printer: Any) -> str:
        return f"DCT_{printer._print(self.args[0])}"

    def _latex(self, printer: Any) -> str:
        return rf"C_{{{printer._print(self.args[0])}}}"


def _build(inverse: bool) -> Any:
    name = "idct" if inverse else "dct"

    def build(parser: Any, node: Any, args: list[Any]) -> Any:
        parser.expect_args(node, args, 1, name)
        (signal,) = args
        if signal.is_scalar:
            raise parser.error(node, f"{name}(x) transforms a vector or an image")
        if parser.image_product(signal.expr):
            raise parser.error(node, f"{name}(x) of an image operator's output is not supported")
        rows, cols = (DctMatrix(s) for s in signal.expr.shape)
        left = rows.T if inverse else rows
        if len(signal.shape) == 1:
            return type(signal)(left * signal.expr, signal.shape)
        right = cols if inverse else cols.T
        return type(signal)(left * signal.expr * right, signal.shape)
    return build


FUNCTIONS = (
    LinearFunction("dct", "`dct(x)`", "orthonormal DCT-II (scipy's norm='ortho'); of an image, along both axes",
                   _build(False), ("dct_matrix",)),
    LinearFunction("idct", "`idct(x)`", "its inverse (and transpose)", _build(True), ()),
)
