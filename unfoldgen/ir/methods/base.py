"""What a method is to the compiler: its spec keys, its title, the paradigms it accepts, and
how it lays out one layer.

A method is one module in this package defining a :class:`Method` subclass, listed once in
:data:`unfoldgen.ir.methods.METHODS`. The spec stage keeps the ``algorithm`` section's other
keys raw; the method declares them in :attr:`Method.keys` (the docs' table and the validator's
come from there) and reads them with :meth:`Method.option`. It lays out the classical layer,
emitting an :class:`~unfoldgen.ir.update.Update` wherever a paradigm may act, and never looks
at the learn section: the paradigm passes do (:mod:`unfoldgen.ir.paradigms`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from unfoldgen.errors import SpecError
from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.paradigms import Paradigm
from unfoldgen.spec.model import Located, Spec
from unfoldgen.symbolic.prox import ProxOperator

EVERY_PARADIGM = frozenset(Paradigm)


class Method:
    """One iteration the compiler can unroll."""

    name: ClassVar[str]
    title: ClassVar[str]  # as the emitted docstrings say it, e.g. "proximal gradient (ISTA)"
    summary: ClassVar[str]  # one line of math for docs/spec.md
    keys: ClassVar[dict[str, str]] = {}  # its own keys of the algorithm section, each with what it means
    defaults: ClassVar[dict[str, Any]] = {}
    paradigms: ClassVar[frozenset[Paradigm]] = EVERY_PARADIGM
    uses_objective: ClassVar[bool] = True  # derives its steps from objective.smooth and .nonsmooth
    handles_nonsmooth: ClassVar[bool] = True
    splits_linear_maps: ClassVar[bool] = False  # takes composite terms h(K x) (unfoldgen.symbolic.prox.terms)

    # -- reading the spec -------------------------------------------------------------------
    def check_keys(self, spec: Spec) -> None:
        for key in spec.algorithm.options:
            if key not in self.keys:
                own = ", ".join(["method", "layers", *self.keys])
                raise spec.algorithm.reader.error(("algorithm", key), f"'{key}' does not apply to {self.name}",
                                                  hint=f"{self.name} takes: {own} (docs/spec.md, Methods)")

    def option(self, spec: Spec, key: str) -> Located:
        """The text of ``algorithm.<key>`` (or its default), located for errors."""
        raw = spec.algorithm.options.get(key, self.defaults.get(key))
        return spec.algorithm.reader.text(raw, ("algorithm", key), key)

    def check(self, spec: Spec, proxes: dict[str, ProxOperator]) -> None:
        """Refuse what the objective cannot give this method (before anything is laid out)."""

    # -- lowering ---------------------------------------------------------------------------
    def lower(self, b: LayerBuilder) -> tuple[str, ...]:
        """Lay out one classical layer in ``b``; returns the outputs."""
        raise NotImplementedError

    def single_variable(self, spec: Spec, hint: str) -> str:
        """The one variable of a method that unrolls a single one."""
        if len(spec.variables) != 1:
            raise SpecError(f"{self.name} unrolls a single variable; this spec declares {len(spec.variables)}",
                            key_path="algorithm.method", line=spec.algorithm.where.line, hint=hint)
        return next(iter(spec.variables))
