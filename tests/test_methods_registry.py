"""Methods as registered classes (issue 16, item 3), and paradigms as passes.

A method is one module: the test below adds one (relaxed proximal gradient, not in the
package) by registering a class, and the whole compiler builds it, the paradigm passes
included, without any other change. Names of methods and prox functions are spelled as
strings only in their own modules.
"""

from __future__ import annotations

import ast
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from conftest import ROOT, variant

from unfoldgen.errors import SpecError
from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.methods import METHODS, markdown_table
from unfoldgen.ir.methods.gradient import (
    STEP_KEY,
    GradientMethod,
    gradient_update,
    initial_value,
    positive_scalar,
)
from unfoldgen.operators.prox import FUNCTIONS, HELPERS
from unfoldgen.symbolic.language import SMOOTH_FUNCTIONS

PACKAGE = ROOT / "unfoldgen"


class RelaxedProximalGradient(GradientMethod):
    """Krasnosel'skii-Mann relaxation of ISTA: ``x <- x + alpha (P(x - t grad f(x)) - x)``."""

    name = "relaxed_proximal_gradient"
    title = "relaxed proximal gradient"
    summary = "x <- x + alpha (P(x - t grad f(x)) - x)"
    keys: ClassVar[dict[str, str]] = {**STEP_KEY, "relaxation": "alpha in (0, 2)"}
    defaults: ClassVar[dict[str, Any]] = {"step": "1/L", "relaxation": 1.5}

    def lower(self, b: LayerBuilder) -> tuple[str, ...]:
        var = self.single_variable(b.spec, hint="")
        x = b.state(b.variable(var), initial_value(b, var), f"the variable {var}")
        step = self.step_parameter(b, var)
        p = b.temporary(f"{var}_prox", x, "the proximal-gradient point")
        gradient_update(b, var, x, p, step)
        alpha = b.hyperparameter("relaxation", positive_scalar(b, self.option(b.spec, "relaxation"), "alpha"),
                                 "relaxation alpha")
        b.assign(x, x + alpha.symbol * (p - x))
        return (var,)


def relaxed_ista(A: np.ndarray, y: np.ndarray, lam: float, alpha: float, layers: int) -> np.ndarray:
    t = 1.0 / np.linalg.norm(A, 2) ** 2
    x = np.zeros(A.shape[1])
    for _ in range(layers):
        v = x - t * A.T @ (A @ x - y)
        x = x + alpha * (np.sign(v) * np.maximum(np.abs(v) - lam * t, 0.0) - x)
    return x


@pytest.fixture
def relaxed(monkeypatch):
    monkeypatch.setitem(METHODS, RelaxedProximalGradient.name, RelaxedProximalGradient())


@pytest.mark.parametrize("learn", [None, {"objective": "untied", "hyperparameters": {"relaxation": "per_layer"}}])
def test_a_method_added_as_one_class_builds_with_every_pass(tmp_path, rng, relaxed, learn):
    algorithm = {"method": RelaxedProximalGradient.name, "layers": 5, "relaxation": 1.2}
    built = variant("ista_lasso", tmp_path, dims={"m": 6, "n": 9}, algorithm=algorithm, learn=learn)
    A = rng.standard_normal((6, 9))
    y = rng.standard_normal((2, 6))
    model = built.model.Unfolded(A=A, dtype=torch.float64)
    with torch.no_grad():
        x = model(y=torch.from_numpy(y))["x"].numpy()
    lam = built.program.params["lam"]
    for b in range(2):
        np.testing.assert_allclose(x[b], relaxed_ista(A, y[b], lam, 1.2, 5), rtol=1e-10, atol=1e-12)
    names = [p.name for p in built.program.parameters if p.trainable]
    assert names == ([] if learn is None else ["relaxation", "W_y", "W_x"])  # the maps pass rewrote its update
    assert "relaxed proximal gradient" in (built.directory / "model.py").read_text()


def test_a_key_the_method_does_not_take_names_the_keys_it_takes(tmp_path):
    with pytest.raises(SpecError, match=r"(?s)'penalty' does not apply to fista.*fista takes: method, layers, step"):
        variant("fista_lasso", tmp_path, dims={"m": 6, "n": 9}, layers=2,
                algorithm={"method": "fista", "layers": 2, "penalty": 2.0})


def test_an_unknown_method_lists_the_registry(tmp_path):
    with pytest.raises(SpecError, match="(?s)unknown method 'ista'.*one of: " + ", ".join(METHODS)):
        variant("ista_lasso", tmp_path, algorithm={"method": "ista", "layers": 2})


def test_the_spec_page_lists_every_method_from_the_registry():
    assert markdown_table() in (ROOT / "docs" / "spec.md").read_text(), (
        "docs/spec.md is out of date: paste unfoldgen.ir.methods.markdown_table() into it")


def _string_constants() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.setdefault(node.value, set()).add(path.relative_to(PACKAGE).as_posix())
    return found


def test_each_method_and_prox_name_is_a_string_in_its_own_module_only():
    found = _string_constants()
    owners = {name: {f"ir/methods/{type(m).__module__.rsplit('.', 1)[1]}.py"} for name, m in METHODS.items()}
    owners |= {name: {f"operators/prox/{name}.py"} for name in FUNCTIONS}  # the registry checks module == name
    for name, modules in owners.items():
        allowed = modules | ({"symbolic/language.py"} if name in SMOOTH_FUNCTIONS else set())  # the smooth one
        assert found.get(name) and found[name] <= allowed, (name, found.get(name))
    for name in HELPERS:  # a helper is defined by the function module that introduces it
        modules = found.get(name, set())
        assert len(modules) == 1 and next(iter(modules)).startswith("operators/prox/"), (name, modules)
