"""Parse one ``objective.nonsmooth`` entry into a :class:`NonsmoothTerm`.

A term is ``weight * f(x, args...)`` with ``f`` a registered prox function, or ``weight * sum(<scalar
expression of the element x>)`` for a separable elementwise penalty. A term ``weight * f(K x, ...)``
of a linear map of one variable (``norm1(diff(x))``, ``tv(X)``) is *composite*: its prox has no
closed form in ``x``, so only methods that split ``K x`` off (``primal_dual``) take it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import sympy as sp

from unfoldgen.operators.linear import LINEAR_FUNCTIONS
from unfoldgen.operators.prox import FUNCTIONS, ProxFunction
from unfoldgen.spec.model import Located
from unfoldgen.symbolic.language import Namespace, Parser, Value, parse_tree
from unfoldgen.symbolic.nodes import Map

# The element of a variable inside sum(...): a Dummy so it can never clash with a spec name.
ELEMENT = sp.Dummy("u", real=True)


@dataclass(frozen=True)
class NonsmoothTerm:
    variable: str
    entry: ProxFunction | None
    weight: sp.Expr
    args: tuple[sp.Expr, ...]
    penalty: sp.Expr | None
    where: Located
    linear: sp.MatrixExpr | None = None  # K x, for a composite term

    @property
    def is_composite(self) -> bool:
        return self.linear is not None

    @property
    def is_separable(self) -> bool:
        if self.is_composite:
            return False
        return self.penalty is not None or (self.entry is not None and self.entry.scalar_penalty is not None)

    @property
    def is_interval(self) -> bool:
        return self.entry is not None and self.entry.interval is not None

    def scalar_penalty(self) -> sp.Expr:
        """The penalty on one element, ``h(u)``, of a separable term."""
        if self.penalty is not None:
            return self.weight * self.penalty
        assert self.entry is not None and self.entry.scalar_penalty is not None
        return self.entry.scalar_penalty(ELEMENT, self.weight, self.args)

    def latex(self) -> str:
        if self.entry is None:
            assert self.penalty is not None
            element = sp.Symbol(self.variable + "_i")
            body = sp.latex(self.weight * self.penalty.subs(ELEMENT, element))
            return rf"\sum_i {body}"
        shown = self.variable if self.linear is None or self.entry.linear else sp.latex(self.linear)
        fields = {"x": shown, "w": _latex_weight(self.weight)}
        fields.update({f"a{i}": sp.latex(a) for i, a in enumerate(self.args)})
        return self.entry.definition.format(**fields)


def _latex_weight(weight: sp.Expr) -> str:
    return "" if weight == 1 else sp.latex(weight)


def parse_nonsmooth_term(ns: Namespace, where: Located) -> NonsmoothTerm:
    tree = parse_tree(where)
    factors: list[ast.expr] = []
    divisors: list[ast.expr] = []
    _split_product(tree.body, factors, divisors)
    calls = [f for f in factors if isinstance(f, ast.Call) and isinstance(f.func, ast.Name)
             and (f.func.id in FUNCTIONS or f.func.id == "sum")]
    if len(calls) != 1:
        raise where.error(
            "a nonsmooth term must be one penalty times a weight",
            hint="e.g. 'lam * norm1(x)', 'box(x, 0, 1)' or 'sum(lam*abs(x) + mu*x**2)'; "
                 "known penalties: " + ", ".join(FUNCTIONS) + ", sum",
        )
    call = calls[0]
    scalar = Parser(ns, where, allowed_roles=("param",), scalar_functions=False)
    weight: sp.Expr = sp.Integer(1)
    for factor in factors:
        if factor is not call:
            weight = weight * _scalar(scalar, factor)
    for divisor in divisors:
        weight = weight / _scalar(scalar, divisor)
    if call.keywords:
        raise where.error("keyword arguments are not allowed")
    name = call.func.id  # type: ignore[attr-defined]
    if name == "sum":
        term = _separable_term(ns, where, call, weight)
    else:
        term = _catalog_term(ns, where, call, FUNCTIONS[name], weight, scalar)
    _check_weight(ns, term)
    return term


def _split_product(node: ast.expr, factors: list[ast.expr], divisors: list[ast.expr]) -> None:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        _split_product(node.left, factors, divisors)
        _split_product(node.right, factors, divisors)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        _split_product(node.left, factors, divisors)
        divisors.append(node.right)
    else:
        factors.append(node)


def _scalar(parser: Parser, node: ast.expr) -> sp.Expr:
    value = parser.visit(node)
    if not value.is_scalar:
        raise parser.error(node, "a weight must be a scalar of params and numbers")
    return value.expr


def _argument(ns: Namespace, where: Located, node: ast.expr, entry: ProxFunction) -> tuple[str, Value | None]:
    """The variable the term penalises, and ``K x`` where the penalty is of a linear map of it."""
    parser = Parser(ns, where, allowed_roles=("constant", "variable", "param"))
    if entry.linear is not None:
        if not (isinstance(node, ast.Name) and ns.roles.get(node.id) == "variable"):
            raise where.error(f"{entry.name}() takes a variable, got '{ast.unparse(node)}'")
        value = LINEAR_FUNCTIONS[entry.linear].build(parser, node, [ns.tensors[node.id]])
        return node.id, value
    if isinstance(node, ast.Name) and ns.roles.get(node.id) == "variable":
        return node.id, None
    value = parser.visit(node)
    variables = sorted({s.name for s in value.expr.free_symbols if ns.roles.get(s.name) == "variable"})
    if len(variables) != 1 or value.is_scalar:
        raise where.error(f"the first argument of {entry.name}() must be a variable or a linear map of one, "
                          f"got '{ast.unparse(node)}'", hint="e.g. norm1(x), or norm1(diff(x)) with method primal_dual")
    var = ns.matrix_symbol(variables[0])
    expanded = sp.expand(value.expr)
    for term in expanded.args if isinstance(expanded, sp.MatAdd) else (expanded,):
        factors = [f for f in (term.args if isinstance(term, sp.MatMul) else (term,)) if isinstance(f, sp.MatrixExpr)]
        if factors[-1] != var or any(f.has(var) for f in factors[:-1]) or value.expr.has(Map):
            raise where.error(f"'{ast.unparse(node)}' is not a linear map K {var.name} of the variable",
                              hint="a composite penalty is h(K x), with K made of constants and linear operators")
    return variables[0], value


def _catalog_term(ns: Namespace, where: Located, call: ast.Call, entry: ProxFunction, weight: sp.Expr,
                  scalar: Parser) -> NonsmoothTerm:
    if not call.args:
        raise where.error(f"{entry.name}() needs the variable as its first argument")
    variable, linear = _argument(ns, where, call.args[0], entry)
    extra = call.args[1:]
    if not entry.accepts(len(extra)):
        raise where.error(f"{entry.name}() takes {entry.arity} argument(s) after the variable, got {len(extra)}")
    args = entry.complete(tuple(_scalar(scalar, a) for a in extra))
    shape = linear.shape if linear is not None and not entry.linear else ns.spec.variables[variable].shape
    if entry.matrix_only and len(shape) != 2:
        raise where.error(f"{entry.name}() applies to a matrix variable; '{variable}' is a vector")
    if entry.vector_only and len(shape) != 1:
        raise where.error(f"{entry.name}() applies to a vector variable; '{variable}' is a matrix")
    if not entry.weighted and weight != 1:
        raise where.error(f"{entry.name}() is a constraint and takes no weight",
                          hint=f"write '{entry.name}(...)' alone")
    return NonsmoothTerm(variable, entry, weight, args, None, where, linear.expr if linear is not None else None)


def _separable_term(ns: Namespace, where: Located, call: ast.Call, weight: sp.Expr) -> NonsmoothTerm:
    if len(call.args) != 1:
        raise where.error("sum() takes one scalar expression of a variable's element")
    names = {n.id for n in ast.walk(call.args[0]) if isinstance(n, ast.Name)}
    variables = sorted(n for n in names if ns.roles.get(n) == "variable")
    if len(variables) != 1:
        raise where.error("sum(...) must use exactly one variable",
                          hint="e.g. sum(lam*abs(x) + 0.5*mu*x**2), applied to each element of x")
    variable = variables[0]
    parser = Parser(ns, where, allowed_roles=("param",), scalars={variable: ELEMENT}, scalar_functions=True)
    penalty = parser.visit(call.args[0]).expr
    if not penalty.has(ELEMENT):
        raise where.error("sum(...) does not depend on the variable")
    return NonsmoothTerm(variable, None, weight, (), penalty, where)


def _check_weight(ns: Namespace, term: NonsmoothTerm) -> None:
    values = {ns.params[p]: v for p, v in ns.spec.params.items()}
    weight = term.weight.subs(values)
    if not weight.is_number or not float(weight) > 0:
        raise term.where.error(f"the weight {term.weight} must be positive (it is {weight} with the spec's params)")
