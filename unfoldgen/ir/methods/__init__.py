"""The registry of methods: one module each, listed once in :data:`METHODS`.

Everything that enumerates methods is derived from here: the spec's method names and keys
(checked when the spec is lowered), which paradigms each accepts, the titles in the emitted
docstrings, and the table in docs/spec.md (:func:`markdown_table`, kept equal by a test).
"""

from __future__ import annotations

from unfoldgen.ir.methods.admm import Admm
from unfoldgen.ir.methods.base import Method
from unfoldgen.ir.methods.block_proximal_gradient import BlockProximalGradient
from unfoldgen.ir.methods.custom import Custom
from unfoldgen.ir.methods.fista import Fista
from unfoldgen.ir.methods.gradient_descent import GradientDescent
from unfoldgen.ir.methods.hqs import Hqs
from unfoldgen.ir.methods.primal_dual import PrimalDual
from unfoldgen.ir.methods.projected_gradient import ProjectedGradient
from unfoldgen.ir.methods.proximal_gradient import ProximalGradient
from unfoldgen.ir.paradigms import Paradigm, requested
from unfoldgen.spec.model import Spec

METHODS: dict[str, Method] = {method.name: method for method in (
    GradientDescent(), ProximalGradient(), Fista(), ProjectedGradient(), BlockProximalGradient(),
    Admm(), Hqs(), PrimalDual(), Custom(),
)}


def method_of(spec: Spec) -> Method:
    """The spec's method, with its keys and the learn section's paradigms checked."""
    method = METHODS.get(spec.algorithm.method)
    if method is None:
        raise spec.algorithm.reader.error(("algorithm", "method"), f"unknown method {spec.algorithm.method!r}",
                                          hint="one of: " + ", ".join(METHODS))
    method.check_keys(spec)
    for paradigm, where in requested(spec.learn):
        if paradigm not in method.paradigms:
            takers = [m.name for m in METHODS.values() if paradigm in m.paradigms]
            raise where.error(f"{method.name} does not take {paradigm.value}",
                              hint=f"the methods that take it: {', '.join(takers)}")
    return method


def markdown_table() -> str:
    """The methods table of docs/spec.md."""
    short = {Paradigm.WEIGHTS: "weights", Paradigm.MAPS: "untied/tied", Paradigm.COUPLED_MAPS: "coupled/analytic",
             Paradigm.SUPPORT_SELECTION: "support_selection", Paradigm.CORRECTION: "correction",
             Paradigm.LEARNED_PROX: "prox"}
    rows = ["| method | one layer | its keys (besides method, layers) | learn |", "|---|---|---|---|"]
    for method in METHODS.values():
        keys = "<br>".join(f"`{key}`: {text}" + (f" (default `{method.defaults[key]}`)" if key in method.defaults else "")
                           for key, text in method.keys.items()) or "-"
        learned = ", ".join(["hyperparameters", *(text for p, text in short.items() if p in method.paradigms)])
        rows.append(f"| `{method.name}` | `{method.summary}` | {keys} | {learned} |")
    return "\n".join(rows) + "\n"


__all__ = ["METHODS", "Method", "markdown_table", "method_of"]
