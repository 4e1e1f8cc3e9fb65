"""ADMM (scaled form).

With a penalty of the variable itself (``x = z``, :mod:`.splitting`): ``s = (H + rho I)^{-1}
(rho (z - u) - c)``; ``z = prox_{h/rho}(s + u)``; ``u = u + mu (s - z)``.

With a penalty of a linear map, ``h(K x)`` (the constraint ``z = K x``):
``x = (H + rho K^T K)^{-1} (rho K^T (z - u) - c)``; ``z = prox_{h/rho}(K x + u)``;
``u = u + mu (K x - z)``. The x-update is solved exactly, never by inverting per sample:

- for an image with ``H = a I`` and ``K = grad2d`` (TV denoising), in the 2-D DCT basis, which
  diagonalises ``G^T G`` (Neumann boundary): ``x = C^T ((C r C^T) / (a + rho Lambda)) C``;
- for an image where ``H`` and ``K`` are circular convolutions (and multiples of ``I``), in the
  2-D DFT basis, which diagonalises every circulant: ``x = Re(F^H ((F r F^T) / E) conj(F)) / mn``
  with ``E = a + sum_i b_i |DFT(h_i)|^2 + rho |DFT(d)|^2``, written with the real cos and sin
  matrices of the DFT (the Numba kernel has no FFT);
- for a vector, ``H + rho K^T K`` is formed from the operators and inverted once when the model
  is built (in ``forward``, per layer, when the penalty is learned).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import sympy as sp

from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.methods.gradient import initial_value, positive_scalar, prox_values
from unfoldgen.ir.methods.splitting import PENALTY_KEY, SplittingMethod
from unfoldgen.ir.objective_maps import split_factors
from unfoldgen.ir.update import Role, Update
from unfoldgen.operators.linear import Materialized
from unfoldgen.operators.linear.conv import Convolution, DftCos, DftPower, DftSin
from unfoldgen.operators.linear.dct import DctMatrix
from unfoldgen.operators.linear.grad2d import Gradient2D, NeumannSpectrum
from unfoldgen.spec.model import Spec
from unfoldgen.symbolic.nodes import Map
from unfoldgen.symbolic.objective import apply_map, linear_map
from unfoldgen.symbolic.prox import ProxOperator
from unfoldgen.symbolic.prox.compose import composite_prox

MAX_DENSE_UNKNOWNS = 2048  # the x-update's system is formed densely: n x n for n unknowns


class Admm(SplittingMethod):
    name = "admm"
    title = "ADMM"
    summary = "s <- (H + rho I)^-1 (rho (z - u) - c); z <- P(s + u); u <- u + mu (s - z)"
    keys: ClassVar[dict[str, str]] = {**PENALTY_KEY, "dual_step": "the step mu of the dual update (1 is classical ADMM)"}
    defaults: ClassVar[dict[str, Any]] = {"penalty": 1.0, "dual_step": 1.0}
    dual = True
    splits_linear_maps = True

    def check(self, spec: Spec, proxes: dict[str, ProxOperator]) -> None:
        """Which splitting applies depends on the penalties of linear maps: checked in ``lower``."""

    def lower(self, b: LayerBuilder) -> tuple[str, ...]:
        if not b.composites:
            super().check(b.spec, b.proxes)
            return super().lower(b)
        return self.lower_linear_constraint(b)

    def dual_update(self, b: LayerBuilder, dual: sp.MatrixSymbol, solve: sp.MatrixSymbol, z: sp.MatrixSymbol) -> None:
        mu = b.hyperparameter("dual_step", positive_scalar(b, self.option(b.spec, "dual_step"), "the dual step"),
                              "step mu of the dual update")
        b.assign(dual, dual + mu.symbol * (solve - z))

    def lower_linear_constraint(self, b: LayerBuilder) -> tuple[str, ...]:
        """``z = K x``: x by a linear solve, z by the prox of ``h``, then the scaled dual."""
        var = self.single_variable(b.spec, hint="split the penalty of one variable")
        where = b.composites[0].where
        if len(b.composites) > 1 or var in b.proxes:
            raise where.error(f"{self.name} splits one penalty of a linear map off a variable with no other "
                              "nonsmooth term", hint="use primal_dual, which takes several")
        x = b.state(b.variable(var), initial_value(b, var), f"the variable {var}")
        shape = b.shape_of(x)
        term = b.composites[0]
        assert term.linear is not None
        operator = linear_map(term.linear, x)
        z = b.state(sp.MatrixSymbol(b.fresh(f"{var}_split"), *term.linear.shape), None,
                    f"z = K {var}, the split copy (after the prox)")
        u = b.state(sp.MatrixSymbol(b.fresh(f"{var}_dual"), *term.linear.shape), None, "the scaled dual variable u")
        hessian, offset = self.quadratic_parts(b, var)
        rho_value = positive_scalar(b, self.option(b.spec, "penalty"), "the penalty")
        rho = b.hyperparameter("penalty", rho_value, "penalty rho of the splitting")
        right_side = rho.symbol * apply_map(operator.T, z - u) - offset
        rho_fixed = rho.symbol if rho.trainable else rho_value
        spectral = _dct_solve(hessian, operator, rho.symbol) or _dft_solve(b, hessian, operator, rho_fixed)
        if spectral is not None:
            rhs = b.temporary(f"{var}_rhs", x, "r = rho K^T (z - u) - c, the x-update's right side")
            b.assign(rhs, right_side)
            b.update(Update(var, Role.LINEAR_STEP, x, spectral(b, rhs), initial={rho.symbol: rho_value}))
        elif len(shape) == 1 and shape[0] <= MAX_DENSE_UNKNOWNS:
            system = hessian + rho_fixed * sp.expand(operator.T * operator)
            inverse = b.derive("inverse", sp.Inverse(Materialized(system)), "(H + rho K^T K)^{-1}, the x-update's solve",
                               (shape[0], shape[0]))
            b.update(Update(var, Role.LINEAR_STEP, x, inverse.symbol * right_side, initial={rho.symbol: rho_value}))
        else:
            raise where.error(f"{self.name}'s x-update solves H + rho K^T K exactly: by DCTs for an image with H = a I "
                              "and K = grad2d, by DFTs where H and K are circular convolutions, or formed densely for a "
                              f"vector of at most {MAX_DENSE_UNKNOWNS} entries; '{var}' ({list(shape)}) with "
                              f"K = {operator} is none of these", hint="use primal_dual, whose layers apply K and K^T only")
        lifted = b.temporary(f"{var}_map", z, f"K {var}, the map the penalty reads")
        b.assign(lifted, apply_map(operator, x))
        prox = composite_prox(b.ns, term, z.name)
        values = prox_values(b, prox, z.name, 1 / rho.symbol, 1 / rho_value)
        b.update(Update(z.name, Role.PROX_STEP, z, lifted + u, prox, values))
        self.dual_update(b, u, lifted, z)
        return (var,)


Solve = Callable[[LayerBuilder, sp.MatrixSymbol], sp.MatrixExpr]


def _dct_solve(hessian: sp.MatrixExpr, operator: sp.MatrixExpr, rho: sp.Expr) -> Solve | None:
    """``r -> (a I + rho G^T G)^{-1} r`` for images, by the DCT that diagonalises ``G^T G``, when
    ``H = a I`` and ``K = c G`` with ``G = grad2d``; None otherwise."""
    scale, factors = split_factors(operator)
    if len(factors) != 1 or not isinstance(factors[0], Gradient2D):
        return None
    weight, identity = split_factors(hessian)
    if len(identity) != 1 or not isinstance(identity[0], sp.Identity) or not weight.is_positive:
        return None
    rows, cols = factors[0].args
    left, right, spectrum = DctMatrix(rows), DctMatrix(cols), NeumannSpectrum(rows, cols)
    value, eigenvalue = sp.Dummy("r", real=True), sp.Dummy("lambda", nonnegative=True)
    divide = sp.Lambda((value, eigenvalue), value / (weight + rho * scale**2 * eigenvalue))
    return lambda b, rhs: left.T * Map(divide, left * rhs * right.T, spectrum) * right


def _circular(matrix: sp.MatrixExpr) -> tuple[sp.Expr, sp.MatrixExpr] | None:
    """``(c, I)`` for a term ``c I``, ``(c, h)`` for ``c C^T C`` with ``C`` the circular convolution
    of images by ``h``; None for anything else."""
    coeff, factors = split_factors(matrix)
    if len(factors) == 1 and isinstance(factors[0], sp.Identity):
        return coeff, sp.Identity(1)
    if (len(factors) == 2 and isinstance(factors[1], Convolution) and factors[1].wrap and factors[1].image
            and factors[0] == factors[1].T):
        return coeff, factors[1].kernel
    return None


def _dft_solve(b: LayerBuilder, hessian: sp.MatrixExpr, operator: sp.MatrixExpr, rho: sp.Expr) -> Solve | None:
    """``r -> (H + rho K^T K)^{-1} r`` for images where ``H`` is a sum of ``a I`` and ``b C^T C``
    and ``K = c D`` (``C``, ``D`` circular convolutions): every term is diagonal in the 2-D DFT
    basis, with eigenvalues ``|DFT(h)|^2``. None otherwise."""
    scale, factors = split_factors(operator)
    if len(factors) != 1 or not isinstance(factors[0], Convolution) or not factors[0].wrap or not factors[0].image:
        return None
    terms = [_circular(term) for term in sp.Add.make_args(sp.expand(hessian)) if not term.is_zero]
    if any(term is None for term in terms):
        return None
    rows, cols = factors[0].args[2], factors[0].args[3]
    powers: list[sp.MatrixExpr] = [DftPower(factors[0].kernel, rows, cols)]
    weights: list[sp.Expr] = [rho * scale**2]
    constant = sp.Integer(0)
    for coeff, kernel in (t for t in terms if t is not None):
        if isinstance(kernel, sp.Identity):
            constant += coeff
        else:
            powers.append(DftPower(kernel, rows, cols))
            weights.append(coeff)
    variables = tuple(sp.Dummy(f"p{i}", nonnegative=True) for i in range(len(powers)))
    eigenvalues = sp.Lambda(variables, constant + sum(w * v for w, v in zip(weights, variables, strict=True)))
    spectrum = b.derive("spectrum", Map(eigenvalues, *powers), "the eigenvalues of H + rho K^T K in the 2-D DFT basis",
                        b.shape_of(powers[0]))
    cos_m, sin_m, cos_n, sin_n = DftCos(rows), DftSin(rows), DftCos(cols), DftSin(cols)
    value, eigenvalue = sp.Dummy("r", real=True), sp.Dummy("e", positive=True)
    divide = sp.Lambda((value, eigenvalue), value / eigenvalue)

    def solve(b: LayerBuilder, rhs: sp.MatrixSymbol) -> sp.MatrixExpr:
        real = b.temporary(f"{rhs.name}_real", rhs, "Re(F r F^T) / E")
        imag = b.temporary(f"{rhs.name}_imag", rhs, "-Im(F r F^T) / E")
        b.assign(real, Map(divide, cos_m * rhs * cos_n - sin_m * rhs * sin_n, spectrum.symbol))
        b.assign(imag, Map(divide, sin_m * rhs * cos_n + cos_m * rhs * sin_n, spectrum.symbol))
        inverse = cos_m * real * cos_n - sin_m * real * sin_n + sin_m * imag * cos_n + cos_m * imag * sin_n
        return inverse / (rows * cols)
    return solve
