"""A safe parser for the spec's math: Python ``ast`` with a whitelist, mapped to SymPy.

Spec text is never evaluated. ``ast.parse`` only builds a syntax tree; every node type, name and
function is checked against a whitelist before a SymPy object is built from it. Shapes are
checked as the tree is walked, so a mismatch is reported with the sizes the user wrote.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from unfoldgen.errors import SpecError
from unfoldgen.names import around
from unfoldgen.operators.linear import LINEAR_FUNCTIONS, LinearOperator, has_operator
from unfoldgen.operators.linear.mask import Mask
from unfoldgen.operators.prox import FUNCTIONS
from unfoldgen.spec.model import Located, Spec
from unfoldgen.symbolic.nodes import EntrySum, Map, sigmoid, softplus

MAX_EXPRESSION_CHARS = 4000
MAX_AST_NODES = 2000
MAX_ABS_NUMBER = 1e15
MAX_EXPONENT = 16

SCALAR_FUNCTIONS: dict[str, Callable[..., sp.Expr]] = {
    "abs": sp.Abs,
    "sqrt": sp.sqrt,
    "exp": sp.exp,
    "log": sp.log,
    "max": sp.Max,
    "min": sp.Min,
}
# Smooth functions of one scalar, applied entry by entry to vectors and matrices in the smooth
# part (``log1p`` is written ``log(1 + t)``: SymPy keeps it readable and exact).
ELEMENTWISE_FUNCTIONS: dict[str, Callable[[sp.Expr], sp.Expr]] = {
    "exp": sp.exp,
    "log": sp.log,
    "log1p": lambda t: sp.log(1 + t),
    "sqrt": sp.sqrt,
    "softplus": softplus,
    "sigmoid": sigmoid,
    "tanh": sp.tanh,
    "cosh": sp.cosh,
}


@dataclass(frozen=True)
class Value:
    """A parsed expression: a SymPy object and its shape as written (dim names or ints).

    Scalars have shape ``()`` and are plain SymPy expressions; vectors ``(n,)`` are ``n x 1``
    MatrixExprs; matrices ``(m, n)`` are ``m x n`` MatrixExprs.
    """

    expr: sp.Basic
    shape: tuple[str | int, ...]

    @property
    def is_scalar(self) -> bool:
        return self.shape == ()


def shape_text(shape: tuple[str | int, ...]) -> str:
    return "scalar" if not shape else "[" + ", ".join(str(d) for d in shape) + "]"


class Namespace:
    """The SymPy symbols of a spec: one per dim, param, input, constant and variable."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.dims = {name: sp.Symbol(name, integer=True, positive=True) for name in spec.dims}
        self.params = {name: sp.Symbol(name, real=True) for name in spec.params}
        self.tensors: dict[str, Value] = {}
        self.roles: dict[str, str] = {}
        for role, decls in (("input", spec.inputs), ("constant", spec.constants)):
            for decl in decls.values():
                self.tensors[decl.name] = self.tensor(decl.name, decl.shape)
                self.roles[decl.name] = role
        for var in spec.variables.values():
            self.tensors[var.name] = self.tensor(var.name, var.shape)
            self.roles[var.name] = "variable"

    def user_names(self) -> set[str]:
        return set(self.dims) | set(self.params) | set(self.tensors)

    def unused(self, name: str) -> str:
        """``name``, with '_' appended until no name of the spec has that spelling: internal
        names (hyperparameters, helpers) move out of the way, the user's keep theirs."""
        return around(name, self.user_names())

    def dim(self, d: str | int) -> sp.Expr:
        return sp.Integer(d) if isinstance(d, int) else self.dims[d]

    def tensor(self, name: str, shape: tuple[str | int, ...]) -> Value:
        """A matrix symbol (vectors are columns) or, for shape ``[]``, a real scalar symbol."""
        if not shape:
            return Value(sp.Symbol(name, real=True), ())
        rows = self.dim(shape[0])
        cols = self.dim(shape[1]) if len(shape) == 2 else sp.Integer(1)
        return Value(sp.MatrixSymbol(name, rows, cols), shape)

    def matrix_symbol(self, name: str) -> sp.MatrixSymbol:
        expr = self.tensors[name].expr
        assert isinstance(expr, sp.MatrixSymbol)
        return expr

    def dim_values(self) -> dict[sp.Symbol, sp.Integer]:
        """Each dim's symbol and its size: a SymPy size of the spec, substituted, is a number."""
        return {symbol: sp.Integer(self.spec.dims[name]) for name, symbol in self.dims.items()}

    def size(self, shape: tuple[str | int, ...]) -> tuple[int, ...]:
        return self.spec.concrete_shape(shape)


@dataclass
class Parser:
    """Parse one located piece of text in one context.

    ``allowed`` limits which declared names may appear (e.g. an init must not use the
    variables), ``functions`` which matrix functions exist in this context, and ``scalars``
    adds context-only scalar names (``L`` in a step, the element ``x`` inside ``sum(...)``).
    """

    ns: Namespace
    where: Located
    allowed_roles: tuple[str, ...] = ("input", "constant", "variable", "param")
    functions: tuple[str, ...] = ()
    scalars: dict[str, sp.Expr] | None = None
    scalar_functions: bool = False
    elementwise: bool = False  # * / ** and functions act entry by entry on tensors (the smooth part)

    def error(self, node: ast.AST | None, message: str, hint: str | None = None) -> SpecError:
        col = getattr(node, "col_offset", None)
        if col is not None:
            message = f"{message} (at column {col + 1} of '{self.where.text}')"
        return self.where.error(message, hint)

    def parse(self) -> Value:
        tree = parse_tree(self.where)
        return self.visit(tree.body)

    def visit(self, node: ast.AST) -> Value:
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:
            raise self.error(node, f"'{ast.unparse(node)[:40]}' is not allowed in a spec expression",
                             hint="use numbers, declared names, + - * / ** @, .T and the documented functions")
        return method(node)

    # -- leaves ---------------------------------------------------------------------------
    def visit_Constant(self, node: ast.Constant) -> Value:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(node, f"{value!r} is not a number", hint="strings are not values; use a number or a param")
        if abs(value) > MAX_ABS_NUMBER or math.isnan(value):
            raise self.error(node, f"the number {value!r} is out of range")
        return Value(sp.Rational(str(value)) if isinstance(value, float) else sp.Integer(value), ())

    def visit_Name(self, node: ast.Name) -> Value:
        name = node.id
        if self.scalars and name in self.scalars:
            return Value(self.scalars[name], ())
        if name in self.ns.params and "param" in self.allowed_roles:
            return Value(self.ns.params[name], ())
        role = self.ns.roles.get(name)
        if role is not None:
            if role not in self.allowed_roles:
                raise self.error(node, f"the {role} '{name}' cannot be used here",
                                 hint=f"only {', '.join(self.allowed_roles)}s may appear in {self.where.key_path}")
            return self.ns.tensors[name]
        if name in self.ns.dims:
            raise self.error(node, f"'{name}' is a dim, not a value", hint="dims only give shapes")
        raise self.error(node, f"undeclared name '{name}'",
                         hint="declare it under inputs, constants, params or variables")

    # -- operators ------------------------------------------------------------------------
    def visit_UnaryOp(self, node: ast.UnaryOp) -> Value:
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.USub):
            return Value(-operand.expr, operand.shape)
        if isinstance(node.op, ast.UAdd):
            return operand
        raise self.error(node, "only unary + and - are allowed")

    def visit_BinOp(self, node: ast.BinOp) -> Value:
        left, right = self.visit(node.left), self.visit(node.right)
        op = node.op
        if self.elementwise and self.is_entrywise(op, left, right):
            if isinstance(op, ast.Pow) and right.is_scalar:
                self.power(node, Value(sp.Integer(1), ()), right)  # the exponent's limits
            return self.entrywise(node, (left, right), _BINARY[type(op)])
        if isinstance(op, (ast.Add, ast.Sub)):
            if self.ns.size(left.shape) != self.ns.size(right.shape):
                raise self.error(node, f"cannot add shapes {shape_text(left.shape)} and {shape_text(right.shape)}",
                                 hint="both sides of + and - must have the same shape")
            expr = left.expr + right.expr if isinstance(op, ast.Add) else left.expr - right.expr
            return Value(expr, left.shape)
        if isinstance(op, ast.MatMult):
            return self.matmul(node, left, right)
        if isinstance(op, ast.Mult):
            if left.is_scalar or right.is_scalar:
                return Value(left.expr * right.expr, right.shape if left.is_scalar else left.shape)
            weights, signal = (left, right) if self.constant_tensor(left.expr) else (right, left)
            if self.constant_tensor(weights.expr) and self.ns.size(weights.shape) == self.ns.size(signal.shape):
                rows, cols = signal.expr.shape
                return self.apply(node, Mask(weights.expr, rows, cols), signal)  # a mask: a linear operator
            raise self.error(node, "'*' multiplies by a scalar, or by a constant of the same shape (a mask)",
                             hint="use '@' for matrix products")
        if isinstance(op, ast.Div):
            if not right.is_scalar:
                raise self.error(node, "division is by a scalar only")
            if right.expr == 0:
                raise self.error(node, "division by zero")
            return Value(left.expr / right.expr, left.shape)
        if isinstance(op, ast.Pow):
            return self.power(node, left, right)
        raise self.error(node, f"the operator '{type(op).__name__}' is not allowed",
                         hint="use + - * / ** and @")

    def is_entrywise(self, op: ast.operator, left: Value, right: Value) -> bool:
        """An operation the elementwise grammar handles: two tensors of one shape under * and /
        (and + - when either is already elementwise), a scalar added to a tensor or divided by
        one, and powers of tensors. Scaling a tensor (``c * v``, ``v / c``) stays linear."""
        if type(op) not in _BINARY or (left.is_scalar and right.is_scalar):
            return False
        if left.is_scalar or right.is_scalar:
            if isinstance(op, ast.Mult):
                return False
            if isinstance(op, ast.Div):
                return right.is_scalar is False
            return True
        if isinstance(op, (ast.Add, ast.Sub)):
            return isinstance(left.expr, Map) or isinstance(right.expr, Map)
        return not isinstance(op, ast.Pow)

    def entrywise(self, node: ast.AST, values: tuple[Value, ...], function: Callable[..., sp.Expr]) -> Value:
        """``function`` applied entry by entry, fused with the elementwise operands into one Map."""
        tensors = [v for v in values if not v.is_scalar]
        shape = tensors[0].shape
        for other in tensors[1:]:
            if self.ns.size(other.shape) != self.ns.size(shape):
                raise self.error(node, f"elementwise operands must have one shape, got {shape_text(shape)} "
                                       f"and {shape_text(other.shape)}", hint="use '@' for matrix products")
        arguments: list[sp.Basic] = []
        variables: list[sp.Dummy] = []

        def operand(value: Value) -> sp.Expr:
            if value.is_scalar:
                return value.expr
            coeff, expr = _scaling(value.expr)  # -y enters as -t of y
            if coeff != 1:
                return coeff * operand(Value(expr, value.shape))
            parts = (value.expr.function, value.expr.arguments) if isinstance(value.expr, Map) else (None, (value.expr,))
            names = []
            for argument in parts[1]:
                if argument not in arguments:
                    arguments.append(argument)
                    variables.append(sp.Dummy(f"t{len(variables)}", real=True))
                names.append(variables[arguments.index(argument)])
            return parts[0](*names) if parts[0] is not None else names[0]

        body = _readable(function(*(operand(v) for v in values)))
        return Value(Map(sp.Lambda(tuple(variables), body), *arguments), shape)

    def power(self, node: ast.BinOp, base: Value, exponent: Value) -> Value:
        if not (base.is_scalar and exponent.is_scalar):
            raise self.error(node, "'**' applies to scalars only", hint="use sum_squares(v) for ||v||^2")
        if not exponent.expr.is_number or abs(float(exponent.expr)) > MAX_EXPONENT:
            raise self.error(node, f"exponents must be numbers between -{MAX_EXPONENT} and {MAX_EXPONENT}",
                             hint="write a large power as a param, e.g. 'c * norm1(x)' with c in params")
        if base.expr.is_number and abs(float(base.expr)) > 1e3:
            raise self.error(node, "powers of large numbers are not allowed")
        return Value(base.expr ** exponent.expr, ())

    def matmul(self, node: ast.AST, left: Value, right: Value) -> Value:
        if left.is_scalar or right.is_scalar:
            raise self.error(node, "'@' needs a matrix or vector on each side", hint="use '*' with a scalar")
        if len(left.shape) == 1:
            raise self.error(node, "a vector on the left of '@' must be transposed",
                             hint="write dot(a, b) for an inner product")
        inner_left, inner_right = left.shape[-1], right.shape[0]
        if self.ns.spec.size_of(inner_left) != self.ns.spec.size_of(inner_right):
            raise self.error(node, f"shapes {shape_text(left.shape)} and {shape_text(right.shape)} "
                                   f"do not match in '@' ({inner_left} != {inner_right})",
                             hint="the columns of the left factor must equal the rows of the right one; "
                                  "transpose with .T if needed")
        if self.image_product(left.expr):
            raise self.error(node, "the output of an image operator (conv of an image, grad2d) cannot be "
                                   "multiplied from the right", hint="an image operator acts on whole images")
        shape = (left.shape[0],) + right.shape[1:]
        return Value(left.expr * right.expr, shape)

    def visit_Attribute(self, node: ast.Attribute) -> Value:
        if node.attr != "T":
            raise self.error(node, f"'.{node.attr}' is not allowed", hint="only '.T' (transpose) is")
        value = self.visit(node.value)
        if len(value.shape) != 2:
            raise self.error(node, "only matrices can be transposed with .T")
        if self.image_product(value.expr):
            raise self.error(node, "the output of an image operator (conv of an image, grad2d) cannot be transposed")
        return Value(value.expr.T, (value.shape[1], value.shape[0]))

    def visit_Call(self, node: ast.Call) -> Value:
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise self.error(node, "only plain calls of documented functions are allowed",
                             hint="call a function by its name, e.g. norm1(x); docs/spec.md lists them")
        name = node.func.id
        if self.elementwise and name in ELEMENTWISE_FUNCTIONS:
            args = [self.visit(arg) for arg in node.args]
            self.expect_args(node, args, 1, name)
            if args[0].is_scalar:
                return Value(ELEMENTWISE_FUNCTIONS[name](args[0].expr), ())
            return self.entrywise(node, (args[0],), ELEMENTWISE_FUNCTIONS[name])
        if self.scalar_functions and name in SCALAR_FUNCTIONS:
            args = [self.visit(arg) for arg in node.args]
            if any(not a.is_scalar for a in args):
                raise self.error(node, f"{name}() here applies to scalars")
            try:
                return Value(SCALAR_FUNCTIONS[name](*(a.expr for a in args)), ())
            except TypeError:
                raise self.error(node, f"wrong number of arguments to {name}()") from None
        if name in LINEAR_FUNCTIONS:
            return LINEAR_FUNCTIONS[name].build(self, node, [self.visit(arg) for arg in node.args])
        handler = getattr(self, f"call_{name}", None)
        if name not in self.functions or handler is None:
            if name in NONSMOOTH_FUNCTIONS and "sum_squares" in self.functions:
                raise self.error(node, f"{name}() is not differentiable, so it cannot be in the smooth part",
                                 hint="move this term to objective.nonsmooth")
            known = ", ".join(self.functions) or "none"
            raise self.error(node, f"unknown function '{name}' here", hint=f"functions allowed here: {known}")
        return handler(node, [self.visit(arg) for arg in node.args])

    # -- linear operators (unfoldgen.operators.linear) ---------------------------------------
    def apply(self, node: ast.AST, operator: LinearOperator, signal: Value, adjoint: bool = False) -> Value:
        """``operator`` (or its adjoint) applied to ``signal``: the product ``K x``, of the
        operator's output shape."""
        if operator.image and isinstance(signal.expr, sp.MatMul) and any(
                not (isinstance(f, LinearOperator) and f.image)
                for f in [a for a in signal.expr.args if isinstance(a, sp.MatrixExpr)][:-1]):
            raise self.error(node, "an image operator applies to an image, a sum of images or another image "
                                   "operator's output, not to a product", hint="name the product as a variable")
        if operator.image and self.image_product(signal.expr) and not isinstance(signal.expr, sp.MatMul):
            raise self.error(node, "an image operator applies to another one's output directly, not inside a sum")
        factor = operator.T if adjoint else operator
        if factor.shape[0] == signal.expr.shape[0]:
            return Value(factor * signal.expr, signal.shape)
        rows = int(factor.shape[0].subs(self.ns.dim_values()))
        return Value(factor * signal.expr, (rows, *signal.shape[1:]))

    def refuse_operators(self, node: ast.AST, name: str, *values: Value) -> None:
        if any(has_operator(v.expr) for v in values):
            raise self.error(node, f"{name}() of a linear operator's output is not supported",
                             hint="write it with sum_squares(...) or dot(...), which the operators' calculus covers")

    def constant_tensor(self, expr: sp.Basic) -> bool:
        return isinstance(expr, sp.MatrixSymbol) and self.ns.roles.get(expr.name) == "constant"

    @staticmethod
    def image_product(expr: sp.Basic) -> bool:
        """Whether ``expr`` holds an operator acting on whole images (nothing may follow it)."""
        return any(op.image for op in expr.atoms(LinearOperator)) if isinstance(expr, sp.Basic) else False

    def expect_args(self, node: ast.AST, args: list[Value], count: int, name: str) -> None:
        if len(args) != count:
            raise self.error(node, f"{name}() takes {count} argument(s), got {len(args)}")

    # -- smooth functions -----------------------------------------------------------------
    def call_sum_squares(self, node: ast.AST, args: list[Value]) -> Value:
        self.expect_args(node, args, 1, "sum_squares")
        (v,) = args
        if v.is_scalar:
            return Value(v.expr**2, ())
        if v.expr.has(Map) or has_operator(v.expr):  # entry by entry: sum(v**2), differentiated by calculus.py
            return Value(EntrySum(self.entrywise(node, (v,), lambda t: t**2).expr), ())
        return Value(sp.Trace(v.expr.T * v.expr), ())

    def call_quad_form(self, node: ast.AST, args: list[Value]) -> Value:
        self.expect_args(node, args, 2, "quad_form")
        v, q = args
        if len(v.shape) != 1 or len(q.shape) != 2:
            raise self.error(node, "quad_form(x, Q) needs a vector x and a square matrix Q")
        self.refuse_operators(node, "quad_form", v, q)
        self.matmul(node, q, v)
        return Value(sp.Trace(v.expr.T * q.expr * v.expr), ())

    def call_dot(self, node: ast.AST, args: list[Value]) -> Value:
        self.expect_args(node, args, 2, "dot")
        a, b = args
        if self.ns.size(a.shape) != self.ns.size(b.shape) or a.is_scalar:
            raise self.error(node, f"dot() needs two vectors or matrices of one shape, got "
                                   f"{shape_text(a.shape)} and {shape_text(b.shape)}")
        if a.expr.has(Map) or b.expr.has(Map) or has_operator(a.expr) or has_operator(b.expr):
            return Value(EntrySum(self.entrywise(node, (a, b), lambda s, t: s * t).expr), ())
        return Value(sp.Trace(a.expr.T * b.expr), ())

    def call_sum(self, node: ast.AST, args: list[Value]) -> Value:
        """``sum(E)``: the sum of the entries of a vector or matrix expression."""
        self.expect_args(node, args, 1, "sum")
        (v,) = args
        if v.is_scalar:
            raise self.error(node, "sum() sums the entries of a vector or a matrix, got a scalar")
        return Value(EntrySum(v.expr), ())

    def call_huber(self, node: ast.AST, args: list[Value]) -> Value:
        """``huber(r, delta)``, entry by entry: ``r**2/2`` where ``|r| <= delta``, else
        ``delta*(|r| - delta/2)``."""
        self.expect_args(node, args, 2, "huber")
        r, delta = args
        if not delta.is_scalar:
            raise self.error(node, "the delta of huber(r, delta) is a scalar")
        if delta.expr.is_number and not float(delta.expr) > 0:
            raise self.error(node, f"the delta of huber(r, delta) must be positive, got {delta.expr}")
        d = delta.expr

        def huber(t: sp.Expr) -> sp.Expr:
            return sp.Piecewise((t**2 / 2, sp.Abs(t) <= d), (d * (sp.Abs(t) - d / 2), True))

        if r.is_scalar:
            return Value(huber(r.expr), ())
        return self.entrywise(node, (r,), huber)

    def call_trace(self, node: ast.AST, args: list[Value]) -> Value:
        self.expect_args(node, args, 1, "trace")
        (m,) = args
        if len(m.shape) != 2 or self.ns.spec.size_of(m.shape[0]) != self.ns.spec.size_of(m.shape[1]):
            raise self.error(node, "trace() needs a square matrix")
        self.refuse_operators(node, "trace", m)
        return Value(sp.Trace(m.expr), ())


def parse_tree(where: Located) -> ast.Expression:
    """Parse text into a syntax tree, with limits on size and depth (nothing is executed)."""
    text = where.text.strip()
    if not text:
        raise where.error("the expression is empty")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise where.error(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters",
                          hint="name repeated pieces (params, constants) or split the objective into terms")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise where.error(f"invalid expression syntax: {exc.msg}",
                          hint="write Python-style math, e.g. 0.5 * sum_squares(A @ x - y)") from None
    except (RecursionError, MemoryError, ValueError):
        raise where.error("the expression is nested too deeply") from None
    count = sum(1 for _ in ast.walk(tree))
    if count > MAX_AST_NODES:
        raise where.error(f"the expression has more than {MAX_AST_NODES} parts")
    return tree


SMOOTH_FUNCTIONS = ("sum_squares", "quad_form", "dot", "trace", "sum", "huber")
_BINARY: dict[type, Callable[[sp.Expr, sp.Expr], sp.Expr]] = {
    ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a**b,
}
_W = sp.Wild("w")


def _scaling(expr: sp.Basic) -> tuple[sp.Expr, sp.Basic]:
    """``(c, M)`` for ``c * M`` with one matrix factor; ``(1, expr)`` otherwise."""
    if isinstance(expr, sp.MatMul):
        matrices = [a for a in expr.args if isinstance(a, sp.MatrixExpr)]
        if len(matrices) == 1:
            return sp.Mul(*(a for a in expr.args if not isinstance(a, sp.MatrixExpr))), matrices[0]
    return sp.Integer(1), expr


def _readable(body: sp.Expr) -> sp.Expr:
    """``log(1 + exp(u))`` as ``softplus(u)``: stable in every backend, and its derivative
    prints as ``sigmoid(u)``."""
    return body.replace(sp.log(1 + sp.exp(_W)), softplus(_W))
# Functions whose value is not differentiable somewhere: they belong in objective.nonsmooth.
NONSMOOTH_FUNCTIONS = (*(name for name in FUNCTIONS if name not in SMOOTH_FUNCTIONS), "abs")


def parse_smooth(ns: Namespace, where: Located) -> Value:
    value = Parser(ns, where, functions=SMOOTH_FUNCTIONS, elementwise=True).parse()
    if not value.is_scalar:
        raise where.error(f"the smooth objective must be a scalar, got {shape_text(value.shape)}",
                          hint="wrap vector expressions in sum_squares(...) or dot(...)")
    return value


def parse_init(ns: Namespace, where: Located, shape: tuple[str | int, ...]) -> Value | None:
    """A variable's initial value: ``zeros`` (returns None) or an expression of inputs/constants."""
    if where.text.strip() == "zeros":
        return None
    value = Parser(ns, where, allowed_roles=("input", "constant", "param")).parse()
    if ns.size(value.shape) != ns.size(shape):
        raise where.error(f"init has shape {shape_text(value.shape)} but the variable is {shape_text(shape)}")
    return value


def parse_scalar(ns: Namespace, where: Located, extra: dict[str, sp.Expr]) -> sp.Expr:
    """A scalar of params and numbers (and the names in ``extra``, e.g. ``L``)."""
    value = Parser(ns, where, allowed_roles=("param",), scalars=extra, scalar_functions=True).parse()
    if not value.is_scalar:
        raise where.error("expected a scalar")
    return value.expr
