"""Paradigm 4: ``target = P(v) + N_k(v)`` with ``v`` the prox's argument: the classical prox
plus a network whose last layer starts at zero (:mod:`unfoldgen.ir.networks`)."""

from __future__ import annotations

from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.networks import build_network
from unfoldgen.ir.update import Role, Update


def learn_prox(b: LayerBuilder) -> None:
    spec = b.spec.learn.prox
    if spec is None:
        return

    def rewrite(update: Update) -> None:
        if update.role not in (Role.GRADIENT_STEP, Role.PROX_STEP):
            b.update(update)
            return
        v = b.temporary(f"{update.var}_arg", update.target, "the argument of the learned prox")
        b.assign(v, update.argument)
        update.argument = v
        b.update(update)
        network = build_network(b, spec, b.suffix("prox_net", update.var), (v,), update.target,
                                f"learned part of the prox of {update.var}: D_k(v) = P(v) + N_k(v)")
        b.apply_network(update.target, network, (v,), update.target)

    b.rewrite_updates(rewrite)
