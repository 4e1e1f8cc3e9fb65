"""Paradigms 2-4 (and support selection) as passes over the layer a method laid out.

A method emits its classical layer, with an :class:`~unfoldgen.ir.update.Update` wherever the
learn section may change it. Each pass below then rewrites the updates whose role it applies
to, in this order:

1. :mod:`.objective` (paradigm 2): learned linear maps, or learned weights of the objective;
2. :mod:`.support` (LISTA-CPSS): support selection in soft thresholding;
3. :mod:`.learned_prox` (paradigm 4): the prox plus a network;
4. :mod:`.correction` (paradigm 3): a network's correction added to the update;
5. :mod:`.concrete`: every update becomes an ``ApplyProx`` or an ``Assign``, and temporaries
   that nothing reads any more (the gradient, once learned maps replaced it) are dropped.

Paradigm 1 (learned hyperparameters) needs no pass: every hyperparameter is created through
:meth:`~unfoldgen.ir.builder.LayerBuilder.hyperparameter`, which reads its tying. Which
paradigms a method accepts is declared by the method (:attr:`Method.paradigms`) and checked
once, before it lays out anything.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.paradigms import concrete, correction, learned_prox, objective, support
from unfoldgen.spec.model import LearnSpec, Located


class Paradigm(enum.Enum):
    """What a learn section asks for; a method declares which of these it accepts."""

    HYPERPARAMETERS = "learned hyperparameters (learn.hyperparameters)"
    WEIGHTS = "learned weights of the objective (learn.objective: weights)"
    MAPS = "learned linear maps (learn.objective: untied or tied)"
    COUPLED_MAPS = "coupled or analytic linear maps (learn.objective: coupled or analytic)"
    SUPPORT_SELECTION = "support selection (learn.support_selection)"
    CORRECTION = "a learned correction (learn.correction)"
    LEARNED_PROX = "a learned prox (learn.prox)"


OBJECTIVE_PARADIGMS = {"weights": Paradigm.WEIGHTS, "untied": Paradigm.MAPS, "tied": Paradigm.MAPS,
                       "coupled": Paradigm.COUPLED_MAPS, "analytic": Paradigm.COUPLED_MAPS}


def requested(learn: LearnSpec) -> list[tuple[Paradigm, Located]]:
    """The paradigms a learn section asks for, each with where it asks."""
    asked: list[tuple[Paradigm, Located]] = []
    if learn.objective is not None:
        asked.append((OBJECTIVE_PARADIGMS[learn.objective.text], learn.objective))
    if learn.support_selection is not None:
        asked.append((Paradigm.SUPPORT_SELECTION, learn.support_selection.where))
    if learn.correction is not None:
        asked.append((Paradigm.CORRECTION, learn.correction.where))
    if learn.prox is not None:
        asked.append((Paradigm.LEARNED_PROX, learn.prox.where))
    return asked


def check_combination(learn: LearnSpec) -> None:
    """The paradigms that replace the same step cannot both be asked for."""
    if learn.prox is not None and learn.correction is not None:
        raise learn.correction.where.error("use either a correction (paradigm 3) or a learned prox (paradigm 4)")
    if learn.prox is not None and learn.support_selection is not None:
        raise learn.support_selection.where.error("support selection and a learned prox do not combine",
                                                  hint="the learned prox replaces the thresholding")


PASSES: tuple[Callable[[LayerBuilder], None], ...] = (
    objective.learn_objective,
    support.select_support,
    learned_prox.learn_prox,
    correction.learn_correction,
    concrete.make_concrete,
    concrete.drop_unread_temporaries,
)


def apply_paradigms(b: LayerBuilder) -> None:
    """Run every pass, in order, over the layer ``b`` holds."""
    check_combination(b.spec.learn)
    for run in PASSES:
        run(b)
