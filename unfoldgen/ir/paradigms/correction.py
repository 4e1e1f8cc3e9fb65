"""Paradigm 3: ``target = u + c_k(x, grad)``, with ``u`` the classical update and ``c_k`` a
network on the iterate and its gradient whose last layer starts at zero."""

from __future__ import annotations

from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.networks import build_network
from unfoldgen.ir.update import Role, Update


def learn_correction(b: LayerBuilder) -> None:
    spec = b.spec.learn.correction
    if spec is None:
        return

    def rewrite(update: Update) -> None:
        if update.role is not Role.GRADIENT_STEP:
            b.update(update)
            return
        assert update.point is not None and update.grad is not None
        target = update.target
        update.target = b.temporary(f"{update.var}_update", update.point, "the classical update, before the correction")
        b.update(update)
        inputs = (update.point, update.grad)
        network = build_network(b, spec, b.suffix("correction", update.var), inputs, target,
                                f"learned correction c_k({update.point.name}, {update.grad.name}) of the update of {update.var}")
        b.apply_network(target, network, inputs, update.target)

    b.rewrite_updates(rewrite)
