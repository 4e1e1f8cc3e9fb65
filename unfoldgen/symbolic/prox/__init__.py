"""Proximal operators: the registered prox functions (``unfoldgen.operators.prox``) composed per
variable, plus derivation for separable penalties."""

from unfoldgen.symbolic.prox.compose import ProxOperator, ProxStage, build_prox_operators
from unfoldgen.symbolic.prox.terms import NonsmoothTerm, parse_nonsmooth_term

__all__ = [
    "NonsmoothTerm",
    "ProxOperator",
    "ProxStage",
    "build_prox_operators",
    "parse_nonsmooth_term",
]
