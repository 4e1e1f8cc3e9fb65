"""Test 1: the derived gradient equals torch autograd of the objective, for every bundled spec.

The objective and the gradient are evaluated by a small evaluator written in the tests
(``test_smooth_terms.evaluate``, walking the SymPy trees numerically), independent of the code
generators; autograd differentiates the objective, SymPy's derivation gives the gradient.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch
import yaml
from conftest import SPECS
from test_smooth_terms import environment, evaluate

from unfoldgen.spec import Spec, load_spec, load_spec_text
from unfoldgen.symbolic.language import Namespace
from unfoldgen.symbolic.objective import derive_smooth

SMOOTH_SPECS = [p for p in SPECS if "\nobjective:" in p.read_text()]  # custom iterations may have none


@pytest.mark.parametrize("path", SMOOTH_SPECS, ids=lambda p: p.stem)
def test_gradient_matches_autograd(path):
    """At the spec's sizes, except images: the tests' reference applies operators as dense
    matrices, 4096 x 4096 for a 64 x 64 image, so those run at 10 x 12."""
    data = yaml.safe_load(path.read_text())
    if any("grad2d" in text or "tv(" in text for text in [data["objective"]["smooth"], *data["objective"].get("nonsmooth", [])]):
        data["dims"] = {"m": 10, "n": 12}
    assert_gradient_matches_autograd(load_spec_text(yaml.safe_dump(data), str(path)))


def assert_gradient_matches_autograd(spec: Spec, context: str = "") -> None:
    """SymPy's gradient of the smooth part, evaluated at random tensors, equals autograd of the
    smooth part itself (both through the evaluator above)."""
    ns = Namespace(spec)
    smooth = derive_smooth(ns, spec.smooth)
    positive = smooth.expr.has(sp.log)  # a likelihood: defined for positive data
    values = environment(ns, spec, np.random.default_rng(0), positive)
    for var in spec.variables:
        values[ns.matrix_symbol(var)].requires_grad_(True)
    evaluate(smooth.expr, values).sum().backward()  # a scalar, or a 1x1 matrix (quad_form)
    for var, gradient in smooth.gradients.items():
        derived = evaluate(gradient, values).detach()
        expected = values[ns.matrix_symbol(var)].grad
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
