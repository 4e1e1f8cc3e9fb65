"""What a linear operator is to the compiler: a SymPy matrix node applied by a helper.

A :class:`LinearOperator` is a ``MatrixExpr`` of shape ``(rows out, rows in)`` that stands on
the left of its argument in a product, so ``conv(h, x)`` is the product ``C x`` and SymPy's
matrix algebra (sums, compositions, transposes) and the compiler's calculus treat it as a
matrix: the gradient of ``sum_squares(conv(h, x) - y)`` comes out as ``C^T (C x - y)``, the
Lipschitz constant as ``||C||^2``. No matrix is ever formed: the backends apply the operator
and its adjoint (``C^T``, a ``Transpose`` node) with helper functions, one file
``templates/linear/<module>.py.j2`` per module, holding a Jinja macro per backend.

``image`` operators act on a whole matrix argument (a 2-D convolution, the image gradient):
``C X`` is then not a product row by row, so nothing may multiply ``C X`` from the right (the
parser refuses it; see :func:`check_image_products`).

A spec function that builds such products is a :class:`LinearFunction`, listed in its module's
``FUNCTIONS``; the registry (``unfoldgen.operators.linear``) collects them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import sympy as sp

if TYPE_CHECKING:
    from typing_extensions import Self


class LinearOperator(sp.MatrixExpr):
    """A structured linear map; subclasses set the helper names and say how to print."""

    template: ClassVar[str]  # templates/linear/<template>.py.j2
    image: ClassVar[bool] = False

    @property
    def loop_helpers(self) -> tuple[str, ...]:
        """The helpers of templates/numba_products.py.j2 its Numba helper calls (they may depend
        on its arguments: a vector's convolution and an image's call different ones)."""
        return ()

    def __new__(cls, *args: sp.Basic) -> Self:
        return sp.MatrixExpr.__new__(cls, *(sp.sympify(a) for a in args))

    # -- what the backends need -----------------------------------------------------------
    def array_call(self, adjoint: bool) -> tuple[str, tuple[sp.Basic, ...]]:
        """The PyTorch and NumPy helper that applies ``K`` (or ``K^T``), and its arguments
        after the batched operand: tensors (printed as arrays) and numbers or booleans."""
        raise NotImplementedError

    def numba_call(self, adjoint: bool) -> tuple[str, tuple[sp.Basic, ...]]:
        """The Numba helper for one sample, ``helper(x, *arguments, out)``."""
        return self.array_call(adjoint)

    def evaluate(self, x: Any, adjoint: bool, value_of: Callable[[sp.Basic], Any]) -> Any:
        """``K x`` (or ``K^T x``) on PyTorch tensors laid out 2-D per sample (a vector is
        ``[..., n, 1]``), for training's measurement models and objectives; ``value_of`` gives
        the tensors of the operator's arguments. Written apart from the emitted helpers, so the
        tests compare two implementations."""
        raise NotImplementedError

    def norm(self) -> sp.Expr | None:
        """``||K||_2`` exactly (a SymPy expression of the constants), or None when only power
        iteration finds it."""
        return None

    def norm_bound(self) -> sp.Expr:
        """An upper bound of ``||K||_2`` where :meth:`norm` has no exact value."""
        raise NotImplementedError

    def norm_text(self) -> str:
        """How ``norm`` is known, for DERIVATION.md."""
        return "power iteration when the model is built"

    def flops(self, columns: int) -> int:
        """Multiply-adds of one application (per sample)."""
        return int(self.shape[0]) * columns


def is_operator(expr: sp.Basic) -> bool:
    """An operator or its adjoint, as a factor of a product."""
    return isinstance(expr, LinearOperator) or (isinstance(expr, sp.Transpose) and isinstance(expr.arg, LinearOperator))


def operator_of(factor: sp.Basic) -> tuple[LinearOperator, bool]:
    """``(K, adjoint)`` of a factor ``K`` or ``K^T``."""
    if isinstance(factor, sp.Transpose):
        return factor.arg, True
    return factor, False


def has_operator(expr: sp.Basic) -> bool:
    """Whether ``expr`` applies an operator or a table: SymPy's matrix calculus cannot
    differentiate through either, so such terms go through ``symbolic/calculus.py``."""
    return bool(expr.atoms(LinearOperator, TableMatrix)) if isinstance(expr, sp.Basic) else False


class TableMatrix(sp.MatrixExpr):
    """A dense constant matrix known from its sizes alone (the DCT's, a spectrum): the program
    computes it once, when the model is built, as a derived tensor, and every backend reads it
    like a constant. One size: square; two: rows and columns."""

    stem: ClassVar[str]  # the derived tensor's name starts so, e.g. dct_64
    template: ClassVar[str]  # templates/linear/<template>.py.j2 holds the PyTorch helper that computes it
    helper: ClassVar[str]
    orthonormal: ClassVar[bool] = True

    def __new__(cls, *sizes: sp.Expr) -> Self:
        return sp.MatrixExpr.__new__(cls, *(sp.sympify(s) for s in sizes))

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return (self.args[0], self.args[-1])

    def description(self, shape: tuple[int, ...]) -> str:
        return f"the {' x '.join(map(str, shape))} {self.stem} table"

    def torch_code(self, sizes: tuple[int, ...], dtype: str, device: str) -> str:
        """The PyTorch code that computes the matrix (``sizes``: the dims' values)."""
        raise NotImplementedError

    def value(self, sizes: tuple[int, ...], like: Any) -> Any:
        """The matrix as a PyTorch tensor of ``like``'s dtype and device (for training)."""
        raise NotImplementedError


@dataclass(frozen=True)
class LinearFunction:
    """A spec function that applies a linear operator, e.g. ``conv(h, x)``.

    ``build(parser, node, args)`` checks the arguments (:class:`~unfoldgen.symbolic.language.Value`)
    and returns the value of the application; ``usage`` and ``summary`` are the docs' table row.
    """

    name: str
    usage: str
    summary: str
    build: Callable[[Any, Any, list[Any]], Any]
    helpers: tuple[str, ...]  # the emitted helpers' names (reserved: custom steps may call them)



class SameShape(sp.MatrixExpr):
    """A matrix computed from one matrix expression, of its shape."""

    def __new__(cls, matrix: sp.MatrixExpr) -> Self:
        return sp.MatrixExpr.__new__(cls, matrix)

    @property
    def matrix(self) -> sp.MatrixExpr:
        return self.args[0]

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return self.matrix.shape


class Materialized(SameShape):
    """The dense ``n x n`` matrix of a square map built from operators and constants, formed
    once when the model is built by applying the map to the ``n`` unit vectors (an ADMM
    x-update's system, inverted there too; never per layer)."""

    def _sympystr(self, printer: Any) -> str:
        return f"dense({printer._print(self.matrix)})"

    def _latex(self, printer: Any) -> str:
        return printer._print(self.matrix)
