"""The first layer on its own (unfoldgen.ir.zero_start): the terms that multiply a state
starting at zero drop out of it, only those, and the kernel that runs it still equals the
module (which computes every term) on all its paths."""

from __future__ import annotations

import sympy as sp
from conftest import ROOT, variant
from test_backends_agree import assert_backends_agree

from unfoldgen.ir.lower import lower
from unfoldgen.ir.mathtext import math_text
from unfoldgen.ir.program import ApplyProx, Assign
from unfoldgen.ir.zero_start import first_layer, overwritten_at_zero, starting_at_zero, without_zero_terms
from unfoldgen.spec.load import load_spec

A = sp.MatrixSymbol("A", 4, 6)
W = sp.MatrixSymbol("W", 6, 6)
x, y = sp.MatrixSymbol("x", 6, 1), sp.MatrixSymbol("y", 4, 1)
step = sp.Symbol("step", positive=True)


def program(name: str):
    return lower(load_spec(ROOT / "specs" / f"{name}.yaml"))


def test_lista_and_ista_drop_the_product_with_the_zero_start() -> None:
    lista = program("lista")
    assert starting_at_zero(lista) == {"x"}
    (layer,) = first_layer(lista)
    assert isinstance(layer, ApplyProx) and math_text(layer.argument) == "W_y @ y"
    assert layer.comment == "x = prox_x(W_y @ y, threshold)"
    assert overwritten_at_zero(lista, first_layer(lista)) == {"x"}  # x's zeros are never read
    ista = program("ista_lasso")
    gradient, update = first_layer(ista)
    assert isinstance(gradient, Assign) and gradient.comment == "grad_x = -A.T @ y"  # A @ x dropped, signs combined
    assert math_text(update.argument) == "-step*grad_x"


def test_a_state_written_before_the_first_layer_is_not_zero() -> None:
    factorized = program("rpca_factorized")  # S, U and V come from initialisation steps
    assert starting_at_zero(factorized) == set()
    assert first_layer(factorized) == ()


def test_a_layer_that_would_save_only_elementwise_terms_is_not_emitted_twice() -> None:
    rpca = program("rpca")  # L and S start at zero, but L + S - Y only loses additions
    assert starting_at_zero(rpca) == {"L", "S"}
    assert first_layer(rpca) == ()


def test_only_terms_zero_for_every_parameter_value_drop() -> None:
    zero = {"x"}
    assert without_zero_terms(A @ x - y, zero) == (-y, False)
    assert without_zero_terms(step * W.T @ x, zero)[1]  # a product with a zero factor
    assert without_zero_terms(x + step * W @ x, zero)[1]  # all terms zero: the step writes zeros
    scaled = sp.MatMul(1 / (x.T @ x)[0, 0], x)  # x / |x|^2 is 0/0 at zero, not zero
    assert without_zero_terms(scaled, zero) == (scaled, False)
    hadamard = sp.HadamardProduct(x, W @ x + x)  # a node it does not know keeps reading x
    assert without_zero_terms(hadamard, zero) == (hadamard, False)
    # the grouping of products stays: two matrix-vector products, never W @ A.T (a matrix product)
    nested = sp.MatMul(W, sp.MatMul(A.T, A @ x - y))  # as ADMM's inverse @ (A.T @ y + penalty*(x - u))
    kept, is_zero = without_zero_terms(nested, zero)
    assert not is_zero and math_text(kept) == "-W @ (A.T @ y)"


def test_kernels_of_one_and_two_layers_equal_the_module(tmp_path, rng) -> None:
    """One layer: the loop after the first runs no layer. FISTA: both states start at zero and
    the first layer writes them before it reads them, so the kernel fills neither."""
    lista = variant("lista_small", tmp_path / "lista", layers=1)
    assert "for k in range(1, LAYERS):" in (lista.directory / "kernel.py").read_text()
    assert_backends_agree(lista, rng, batch=20)
    fista = variant("fista_lasso", tmp_path / "fista", layers=2)
    source = (fista.directory / "kernel.py").read_text()
    assert "x_momentum[:] = 0.0" not in source and "x[:] = 0.0" not in source
    assert_backends_agree(fista, rng, batch=20)
