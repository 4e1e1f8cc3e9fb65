"""Proximal operators: a catalog of closed forms plus derivation for separable penalties."""

from unfoldgen.symbolic.prox.catalog import CATALOG, ProxEntry
from unfoldgen.symbolic.prox.compose import ProxOperator, ProxStage, build_prox_operators
from unfoldgen.symbolic.prox.terms import NonsmoothTerm, parse_nonsmooth_term

__all__ = [
    "CATALOG",
    "NonsmoothTerm",
    "ProxEntry",
    "ProxOperator",
    "ProxStage",
    "build_prox_operators",
    "parse_nonsmooth_term",
]
