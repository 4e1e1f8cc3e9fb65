"""Test 1: the derived gradient equals torch autograd of the objective, for every bundled spec.

The objective and the gradient are evaluated by a small evaluator written here (walking the
SymPy trees numerically), independent of the code generators; autograd differentiates the
objective, SymPy's derivation gives the gradient.
"""

from __future__ import annotations

import pytest
import sympy as sp
import torch
from conftest import SPECS

from unfoldgen.spec import Spec, load_spec
from unfoldgen.symbolic.language import Namespace
from unfoldgen.symbolic.objective import derive_smooth


def evaluate(expr: sp.Basic, values: dict[str, torch.Tensor]) -> torch.Tensor:
    if isinstance(expr, (sp.MatrixSymbol, sp.Symbol)):
        return values[expr.name]
    if isinstance(expr, sp.Transpose):
        return evaluate(expr.arg, values).T
    if isinstance(expr, sp.Trace):
        return torch.trace(evaluate(expr.arg, values))
    if isinstance(expr, (sp.MatAdd, sp.Add)):
        return sum((evaluate(a, values) for a in expr.args), torch.tensor(0.0, dtype=torch.float64))
    if isinstance(expr, sp.MatMul):
        result = None
        for a in expr.args:
            value = evaluate(a, values)
            if result is None:
                result = value
            elif value.dim() == 2 and result.dim() == 2:
                result = result @ value
            else:
                result = result * value
        return result
    if isinstance(expr, sp.Mul):
        result = torch.tensor(1.0, dtype=torch.float64)
        for a in expr.args:
            result = result * evaluate(a, values)
        return result
    if isinstance(expr, sp.Pow):
        return evaluate(expr.base, values) ** float(expr.exp)
    if expr.is_Number:
        return torch.tensor(float(expr), dtype=torch.float64)
    raise NotImplementedError(type(expr))


SMOOTH_SPECS = [p for p in SPECS if "\nobjective:" in p.read_text()]  # custom iterations may have none


@pytest.mark.parametrize("path", SMOOTH_SPECS, ids=lambda p: p.stem)
def test_gradient_matches_autograd(path):
    assert_gradient_matches_autograd(load_spec(path))


def assert_gradient_matches_autograd(spec: Spec, context: str = "") -> None:
    """SymPy's gradient of the smooth part, evaluated at random tensors, equals autograd of the
    smooth part itself (both through the evaluator above)."""
    ns = Namespace(spec)
    smooth = derive_smooth(ns, spec.smooth)
    generator = torch.Generator().manual_seed(0)
    values: dict[str, torch.Tensor] = {}
    for name, value in ns.tensors.items():
        shape = tuple(int(d.subs({s: spec.dims[s.name] for s in d.free_symbols})) for d in value.expr.shape)
        values[name] = torch.randn(shape, generator=generator, dtype=torch.float64)
    for name, value in spec.params.items():
        values[name] = torch.tensor(value, dtype=torch.float64)
    for var in spec.variables:
        values[var].requires_grad_(True)
    evaluate(smooth.expr, values).sum().backward()  # a scalar, or a 1x1 matrix (quad_form)
    for var, gradient in smooth.gradients.items():
        derived = evaluate(gradient, values).detach()
        expected = values[var].grad
        assert expected is not None, f"{var}\n{context}"
        assert torch.allclose(derived, expected, rtol=1e-10, atol=1e-10), f"{var}\n{context}"


def test_lipschitz_is_spectral_norm_of_hessian():
    spec = load_spec(SPECS[0])
    ns = Namespace(spec)
    smooth = derive_smooth(ns, spec.smooth)
    lipschitz = smooth.lipschitz["x"]
    assert lipschitz is not None and lipschitz.exact
    assert str(lipschitz.hessian) == "A.T*A"


def test_gradient_is_readable():
    spec = load_spec(next(p for p in SPECS if p.stem == "ista_lasso"))
    smooth = derive_smooth(Namespace(spec), spec.smooth)
    assert str(smooth.gradients["x"]) == "A.T*(A*x - y)"
