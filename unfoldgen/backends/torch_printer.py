"""Print IR expressions as batched PyTorch code.

Per-sample tensors (inputs, states, temporaries) carry a leading batch dimension: a vector of
one sample is ``[B, n]``, a matrix ``[B, m, n]``. Constants and parameters have none. A
product ``C @ v`` of a constant and a batched vector is therefore printed ``v @ C.mT`` (and
``C.T @ v`` as ``v @ C``), so no reshapes appear in the common cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import sympy as sp

from unfoldgen.backends.common import shape_literal
from unfoldgen.backends.scalars import ScalarPrinter
from unfoldgen.ir.program import Program
from unfoldgen.names import around
from unfoldgen.symbolic.nodes import AnalyticWeight, LowRankFactor, SpectralNorm, is_negative_term
from unfoldgen.symbolic.prox import ProxOperator
from unfoldgen.symbolic.prox.separable import V

BATCHED_ROLES = ("input", "state", "temporary")
# Attributes of torch.nn.Module (torch 2.13; tests/test_names.py compares) and of the generated
# Unfolded: a constant or param of one of these names is stored under another attribute, while
# its keyword and its key in kernel_params() keep the spec's spelling.
MODULE_ATTRIBUTES = frozenset({
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile",
    "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer",
    "get_extra_state", "get_parameter", "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia",
    "named_buffers", "named_children", "named_modules", "named_parameters", "parameters",
    "register_backward_hook", "register_buffer", "register_forward_hook", "register_forward_pre_hook",
    "register_full_backward_hook", "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter",
    "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_", "set_extra_state",
    "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train", "type", "xpu", "zero_grad",
    "training", "kernel_params", "layer_values",
})


def module_attribute(program: Program, name: str) -> str:
    """The attribute of ``Unfolded`` that stores the constant or param ``name``: its own name,
    unless ``torch.nn.Module`` uses it (``forward``, ``to``, ...)."""
    if name not in MODULE_ATTRIBUTES:
        return name
    return around(name, MODULE_ATTRIBUTES | program.names())


@dataclass(frozen=True)
class Code:
    text: str
    batched: bool
    atomic: bool

    def operand(self) -> str:
        return self.text if self.atomic else f"({self.text})"


class TorchPrinter(ScalarPrinter):
    functions: ClassVar[dict[type, str]] = {sp.Abs: "torch.abs", sp.sqrt: "torch.sqrt", sp.exp: "torch.exp", sp.log: "torch.log",
                 sp.Max: "torch.maximum", sp.Min: "torch.minimum", sp.sign: "torch.sign"}

    def __init__(self, program: Program) -> None:
        super().__init__(self.name_of)
        self.program = program
        self.k = program.local("k")  # the layer index, spelled around the spec's names

    def name_of(self, symbol: sp.Symbol) -> str:
        """Constants, params and stored parameters are attributes; positive parameters (through
        softplus) and derived tensors that depend on trainable parameters are locals of forward."""
        if symbol == V:
            return "v"
        name = symbol.name
        role = self.program.role(name)
        if role in ("constant", "param"):
            return f"self.{module_attribute(self.program, name)}"
        if role == "parameter":
            parameter = self.program.parameter(name)
            stored = name if parameter.positive else f"self.{name}"
            return f"{stored}[{self.k}]" if parameter.per_layer else stored
        if role == "derived":
            derived = self.program.derived_value(name)
            if not derived.shape:
                return name
            stored = name if self.program.is_dynamic(derived) else f"self.{name}"
            return f"{stored}[{self.k}]" if derived.per_layer else stored
        return name

    namespace = "torch"

    def where(self, condition: str, then: str, otherwise: str) -> str:
        return f"{self.namespace}.where({condition}, {then}, {otherwise})"

    def transpose(self, code: Code) -> str:
        return f"{code.operand()}.mT"

    def identity(self, size: int) -> str:
        return f"torch.eye({size}, dtype=dtype, device=device)"

    def zeros_like_batch(self, batch_input: str, shape: tuple[int, ...]) -> str:
        """A zero state of per-sample ``shape`` for every sample of ``batch_input``."""
        sizes = ", ".join(str(n) for n in shape)
        return f"torch.zeros({batch_input}.shape[0], {sizes}, dtype={batch_input}.dtype, device={batch_input}.device)"

    def repeat_for_batch(self, code: str, batch_input: str, shape: tuple[int, ...]) -> str:
        """A per-sample value ``code`` (the same for every sample), one copy per sample."""
        return f"({code}).expand({batch_input}.shape[0], *{shape_literal(shape)}).clone()"

    def column_product(self, left: Code, vector: Code) -> str:
        """Per sample ``left @ vector`` for a batch of matrices and a batch of vectors."""
        return f"({left.operand()} @ {vector.operand()}.unsqueeze(-1)).squeeze(-1)"

    def print(self, expr: sp.Basic) -> str:
        if isinstance(expr, sp.MatrixExpr):
            return self.matrix(expr).text
        if isinstance(expr, SpectralNorm):
            return f"torch.linalg.matrix_norm({self.matrix(expr.matrix).text}, ord=2)"
        return super().print(expr)

    def matrix(self, expr: sp.MatrixExpr) -> Code:
        if isinstance(expr, sp.MatrixSymbol):
            return Code(self.name_of(expr), self.program.role(expr.name) in BATCHED_ROLES, True)
        if isinstance(expr, sp.Transpose):
            inner = self.matrix(expr.arg)
            return Code(self.transpose(inner), inner.batched, True)
        if isinstance(expr, sp.Identity):
            return Code(self.identity(self.program.size(expr.shape[0])), False, True)
        if isinstance(expr, sp.Inverse):
            inner = self.matrix(expr.arg)
            return Code(f"{self.namespace}.linalg.inv({inner.text})", inner.batched, True)
        if isinstance(expr, AnalyticWeight):
            return Code(f"analytic_weight({self.matrix(expr.matrix).text})", False, True)
        if isinstance(expr, LowRankFactor):
            inner = self.matrix(expr.matrix)
            rank = self.program.size(expr.rank)
            return Code(f"svd_factor({inner.text}, {rank}, {expr.side})", inner.batched, True)
        if isinstance(expr, sp.MatAdd):
            return self.matadd(expr)
        if isinstance(expr, sp.MatMul):
            return self.matmul(expr)
        raise NotImplementedError(f"cannot print {expr!r} for torch")

    def matadd(self, expr: sp.MatAdd) -> Code:
        terms = sorted(expr.args, key=is_negative_term)
        first = self.matrix(terms[0])
        text, batched = first.text, first.batched
        for term in terms[1:]:
            if is_negative_term(term):
                code = self.matrix(-term)  # a product: binds tighter than '-', no parentheses
                text += f" - {code.text}"
            else:
                code = self.matrix(term)
                text += f" + {code.text}"
            batched = batched or code.batched
        return Code(text, batched, False)

    def matmul(self, expr: sp.MatMul) -> Code:
        scalars = [a for a in expr.args if not isinstance(a, sp.MatrixExpr)]
        factors = [a for a in expr.args if isinstance(a, sp.MatrixExpr)]
        code = self.chain(factors)
        if not scalars:
            return code
        coeff = sp.Mul(*scalars)
        if coeff.could_extract_minus_sign():
            inner = self.scaled(-coeff, code)
            return Code(f"-{inner.text}", inner.batched, False)
        return self.scaled(coeff, code)

    def scaled(self, coeff: sp.Expr, code: Code) -> Code:
        if coeff == 1:
            return code
        return Code(f"{self.atom(coeff)} * {code.operand()}", code.batched, False)

    def chain(self, factors: list[sp.MatrixExpr]) -> Code:
        """Right-associated product, so matrix-vector products never become matrix-matrix."""
        right = factors[-1]
        code = self.matrix(right)
        is_vector = right.shape[1] == 1
        for factor in reversed(factors[:-1]):
            left = self.matrix(factor)
            if code.batched and is_vector and not left.batched:
                if isinstance(factor, sp.Transpose):
                    text = f"{code.operand()} @ {self.matrix(factor.arg).operand()}"
                else:
                    text = f"{code.operand()} @ {self.transpose(left)}"
            elif code.batched and is_vector and left.batched:
                text = self.column_product(left, code)
            else:
                text = f"{left.operand()} @ {code.operand()}"
            code = Code(text, code.batched or left.batched, False)
        return code


class LocalNames:
    """Mixin for a printer of prox functions: inside one, every symbol is one of its arguments."""

    def name_of(self, symbol: sp.Symbol) -> str:
        return "v" if symbol == V else symbol.name


def state_inits(printer: TorchPrinter, batch_input: str) -> list[dict[str, str]]:
    """The initial value of every state, batched like ``batch_input`` (PyTorch or NumPy, after
    ``printer``): zeros, or the spec's initial value, repeated per sample when it is one value."""
    states = []
    for state in printer.program.states:
        if state.init is None:
            code = printer.zeros_like_batch(batch_input, state.shape)
        else:
            code = printer.print(state.init)
            if not printer.matrix(state.init).batched:
                code = printer.repeat_for_batch(code, batch_input, state.shape)
        states.append({"name": state.name, "code": code})
    return states


def prox_lines(printer: TorchPrinter, prox: ProxOperator) -> list[str]:
    """Body of a batched prox function (PyTorch or NumPy, after ``printer``): one line per
    stage; operators on a whole sample get the axes of one sample."""
    per_sample_axes = "(-1,)" if len(printer.program.tensor_shape(prox.variable)) == 1 else "(-2, -1)"
    lines = []
    for stage in prox.stages:
        if stage.helper is None:
            assert stage.formula is not None
            lines.append(f"v = {printer.print(stage.formula)}")
            continue
        args = [printer.print(a) for a in stage.args]
        if stage.helper.axes:
            args.append(per_sample_axes)
        lines.append(f"v = {stage.helper.name}({', '.join(['v', *args])})")
    return lines
