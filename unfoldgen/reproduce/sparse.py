"""Study 1: sparse recovery in the standard LISTA set-up, noiseless and at 40 dB SNR.

``A`` in R^{250x500} (N(0, 1/250) entries, unit columns), ``x`` Bernoulli(0.1) with N(0, 1)
values, 16 layers, lam = 0.1. Every network is a variant of a bundled spec with the same ``A``
(the data seed fixes it) and the same held-out test set:

- ``ISTA``, ``FISTA``: the classical algorithms stopped after 16 iterations (nothing learned);
- ``ISTA-learned-step``: paradigm 1, a step size and a threshold per layer;
- ``LISTA``, ``LISTA-CP``, ``LISTA-CPSS``, ``ALISTA``: paradigm 2 (``specs/lista*.yaml``,
  ``specs/alista.yaml``), trained layer-wise as in the literature (Chen et al. 2018, Liu et al. 2019);
- ``ISTA-correction``: paradigm 3, a per-layer MLP correction (``specs/ista_correction.yaml``).

Scalar-only networks train with Adam at 0.02 (their parameters live in softplus space), networks
with matrices at 0.001 with the thresholds at 0.02; each layer-wise phase has its own cosine
schedule. ISTA runs for 10000 iterations to say how many iterations match each network.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from unfoldgen.ir.methods.fista import Fista
from unfoldgen.ir.methods.proximal_gradient import ProximalGradient
from unfoldgen.reproduce.common import (
    Run,
    Variant,
    checkpoints,
    classical_network,
    evaluation_session,
    network,
    rounded,
    spec_name,
    train_or_reuse,
    trainable_count,
)
from unfoldgen.spec.model import Spec
from unfoldgen.training.checkpoint import save_json
from unfoldgen.training.evaluate import iterations_to_match

NETWORKS = ("ISTA", "FISTA", "ISTA-learned-step", "LISTA", "LISTA-CP", "LISTA-CPSS", "ALISTA", "ISTA-correction")
CLASSICAL = ("ISTA", "FISTA")
SETTINGS = {"noiseless": None, "snr40": 40.0}


@dataclass(frozen=True)
class Scale:
    """Problem and training sizes: ``FULL`` is the literature's set-up, ``SMOKE`` the test's."""

    m: int
    n: int
    layers: int
    test_samples: int
    classical_iterations: int
    scalar_stage_steps: int
    matrix_stage_steps: int
    batch_size: int
    validation_samples: int


FULL = Scale(m=250, n=500, layers=16, test_samples=1000, classical_iterations=10000,
             scalar_stage_steps=100, matrix_stage_steps=200, batch_size=64, validation_samples=256)
SMOKE = Scale(m=15, n=30, layers=4, test_samples=200, classical_iterations=200,
              scalar_stage_steps=40, matrix_stage_steps=60, batch_size=32, validation_samples=64)


def training(scale: Scale, kind: str) -> dict[str, Any]:
    """Layer-wise training: ``scalar`` networks at lr 0.02; ``matrix`` ones (learned maps) at 0.001
    with their thresholds at 0.02; ``network`` ones (an MLP correction) at 0.001."""
    steps = scale.scalar_stage_steps if kind == "scalar" else scale.matrix_stage_steps
    section: dict[str, Any] = {
        "scheme": "layerwise", "stage_steps": steps, "batch_size": scale.batch_size,
        "lr": 0.02 if kind == "scalar" else 0.001, "validation_samples": scale.validation_samples,
        "validate_every": steps, "checkpoint_every": steps,
    }
    if kind == "matrix":
        section["lr_groups"] = {"threshold": 0.02}
    return section


def data(density: float = 0.1, snr_db: float | None = None) -> dict[str, Any]:
    model: dict[str, Any] = {"model": "A @ x"}
    if snr_db is not None:
        model["snr_db"] = snr_db
    return {"seed": 0, "constants": {"A": {"law": "gaussian", "normalize": "columns"}},
            "truth": {"x": {"law": "sparse", "density": density, "values": "normal"}},
            "inputs": {"y": model}}


def network_variants(scale: Scale, snr_db: float | None) -> dict[str, Variant]:
    """Each network as a variant of a bundled spec; the classical ones learn nothing."""
    common = {"dims": {"m": scale.m, "n": scale.n}, "data": data(snr_db=snr_db)}

    def algorithm(method: str) -> dict[str, Any]:
        return {"method": method, "layers": scale.layers, "step": "1/L"}

    ista = Variant("lista", {**common, "algorithm": algorithm(ProximalGradient.name), "learn": None, "train": None})
    base = {name: Variant(name, {**common, "algorithm": algorithm(ProximalGradient.name)})
            for name in ("lista", "lista_cp", "lista_cpss", "alista", "ista_correction")}
    matrix, scalar = training(scale, "matrix"), training(scale, "scalar")
    return {
        "ISTA": ista,
        "FISTA": ista.with_sections(algorithm=algorithm(Fista.name)),
        "ISTA-learned-step": ista.with_sections(
            learn={"hyperparameters": {"step": "per_layer", "threshold": "per_layer"}}, train=scalar),
        "LISTA": base["lista"].with_sections(train=matrix),
        "LISTA-CP": base["lista_cp"].with_sections(train=matrix),
        "LISTA-CPSS": base["lista_cpss"].with_sections(train=matrix),
        "ALISTA": base["alista"].with_sections(train=scalar),
        "ISTA-correction": base["ista_correction"].with_sections(train=training(scale, "network")),
    }


def trained_weights(variants: dict[str, Variant], runs: Path, log: Callable[[str], None]
                    ) -> dict[str, tuple[Spec, Path | None, float]]:
    """Every network of a setting as (spec, weights or None, training seconds), training as needed."""
    trained: dict[str, tuple[Spec, Path | None, float]] = {}
    for name, variant in variants.items():
        spec = variant.spec(spec_name(name))
        if name in CLASSICAL:
            trained[name] = (spec, None, 0.0)
        else:
            weights, wall = train_or_reuse(spec, runs / spec.name, log)
            trained[name] = (spec, weights, wall)
    return trained


def run_setting(setting: str, scale: Scale, run: Run) -> dict:
    """Train (or reuse) every network of one setting, evaluate them, and write the JSON."""
    started = time.perf_counter()
    snr_db = SETTINGS[setting]
    run.log(f"sparse recovery, {setting}: {scale.m}x{scale.n}, {scale.layers} layers")
    variants = network_variants(scale, snr_db)
    trained = trained_weights(variants, run.runs / f"lista_{setting}", run.log)
    ista = evaluation_session(trained["ISTA"][0])
    test = ista.source.fixed("test", scale.test_samples)
    run.log(f"  ISTA for {scale.classical_iterations} iterations ...")
    classical_started = time.perf_counter()
    classical = classical_network(ista, scale.classical_iterations)
    ista_curve = ista.nmse_per_layer(classical, test, scale.classical_iterations)
    classical_s = time.perf_counter() - classical_started

    curves, untrained, params = {}, {}, {}
    for name, (spec, weights, _) in trained.items():
        session = evaluation_session(spec)
        untrained[name] = session.nmse_per_layer(session.network(), test, scale.layers)
        if weights is None:
            curves[name], params[name] = untrained[name], 0
        else:
            model = network(session, weights)
            curves[name], params[name] = session.nmse_per_layer(model, test, scale.layers), trainable_count(model)
        run.log(f"  {name:<18} layer {scale.layers}: {curves[name][-1]:8.2f} dB (untrained {untrained[name][-1]:8.2f})")
    kept = checkpoints(scale.classical_iterations)
    result = {
        "study": f"lista_{setting}",
        "scale": run.scale,
        "setting": {**asdict(scale), "density": 0.1, "snr_db": snr_db, "lam": 0.1},
        "nmse_db": {name: rounded(curve) for name, curve in curves.items()},
        "untrained_nmse_db": {name: rounded(curve) for name, curve in untrained.items()},
        "classical_iters_to_match": {name: iterations_to_match(ista_curve, curve[-1]) for name, curve in curves.items()},
        "ista_nmse_db": {"iterations": kept, "nmse_db": rounded([ista_curve[k - 1] for k in kept])},
        "params": params,
        "train_s": {name: round(wall, 1) for name, (_, _, wall) in trained.items()},
        "training": {name: variant.sections.get("train") for name, variant in variants.items()},
        "classical_s": round(classical_s, 1),
        "wall_s": round(time.perf_counter() - started, 1),
        "command": run.command,
    }
    save_json(run.out / f"lista_{setting}.json", result)
    return result
