"""The last passes: updates become concrete steps, and unread temporaries go."""

from __future__ import annotations

from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.program import ApplyNetwork, Assign, step_expressions
from unfoldgen.ir.update import Update


def make_concrete(b: LayerBuilder) -> None:
    """``target = P(argument)`` as an ``ApplyProx``, or ``target = argument`` without a prox."""

    def emit(update: Update) -> None:
        if update.prox is None:
            b.assign(update.target, update.argument)
        else:
            b.apply_prox(update.target, update.prox, update.argument, update.values, update.support)

    b.rewrite_updates(emit)


def drop_unread_temporaries(b: LayerBuilder) -> None:
    """Remove the assignments to temporaries no step reads, and those temporaries, until none
    is left (e.g. the gradient of a step whose learned maps read the iterate directly)."""
    while True:
        steps = [step for step in (*b.init_steps, *b.steps) if not isinstance(step, Update)]
        read = {s.name for step in steps for e in step_expressions(step) for s in e.free_symbols}
        read |= {i.name for step in steps if isinstance(step, ApplyNetwork) for i in step.inputs}
        unread = {t.name for t in b.temporaries} - read
        dead = [s for s in b.steps if isinstance(s, Assign) and s.target.name in unread]
        if not dead:
            return
        b.steps = [s for s in b.steps if s not in dead]
        b.temporaries = [t for t in b.temporaries if t.name not in {s.target.name for s in dead}]
