"""Study 2: robust PCA, the four paradigms side by side.

``Y = L* + S*`` with ``L*`` of rank 5 (100x100) and a fraction 0.1 of entries of ``S*`` nonzero,
uniform in [-m, m], m the mean |L*| (``specs/rpca.yaml`` data). Two classical algorithms and
their unfolded versions, 10 layers each, trained layer-wise:

- ``BPG``: convex RPCA by block proximal gradient (``specs/rpca.yaml``, nothing learned), and
  ``BPG-learned-hyperparameters`` (paradigm 1: steps and thresholds per layer),
  ``BPG-learned-weights`` (paradigm 2: the objective's weights lam1, lam2 per layer),
  ``BPG-learned-correction`` (paradigm 3: an MLP correction shared by the layers),
  ``BPG-learned-prox`` (paradigm 4: a CNN added to each singular value / soft thresholding);
- ``ScaledGD``: the factorised algorithm (``specs/rpca_factorized.yaml``, nothing learned), and
  ``ScaledGD-learned-hyperparameters`` (paradigm 1: learned RPCA's thresholds and steps). A custom
  iteration learns only the hyperparameters it declares, so paradigms 2-4 apply to BPG only.

The metric is ``||L - L*||_F / ||L*||_F`` over the test set (the root of the summed squared
errors over the summed energies), per layer. Robustness: the same trained networks on data with
0.2 outliers and rank 10.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from unfoldgen.ir.methods.block_proximal_gradient import BlockProximalGradient
from unfoldgen.reproduce.common import (
    Run,
    Variant,
    checkpoints,
    classical_network,
    evaluation_session,
    held_out,
    network,
    rounded,
    seconds_per_sample,
    spec_name,
    train_or_reuse,
    trainable_count,
)
from unfoldgen.training.checkpoint import save_json
from unfoldgen.training.data import Batch
from unfoldgen.training.evaluate import iterations_to_match
from unfoldgen.training.session import Session

PARADIGMS = {
    "BPG": 0, "BPG-learned-hyperparameters": 1, "BPG-learned-weights": 2, "BPG-learned-correction": 3,
    "BPG-learned-prox": 4, "ScaledGD": 0, "ScaledGD-learned-hyperparameters": 1,
}
CLASSICAL_OF = {name: "ScaledGD" if name.startswith("ScaledGD") else "BPG" for name in PARADIGMS}
INTERPRETABLE = {0: "the algorithm itself", 1: "yes: learned values are steps and thresholds",
                 2: "yes: learned values are the objective's weights", 3: "partly: an MLP adds a black-box term",
                 4: "partly: a CNN adds a black-box term to the prox"}


@dataclass(frozen=True)
class Scale:
    size: int
    rank: int
    outliers: float
    layers: int
    test_samples: int
    classical_iterations: int
    stage_steps: int
    batch_size: int
    robust_rank: int
    robust_outliers: float


FULL = Scale(size=100, rank=5, outliers=0.1, layers=10, test_samples=100, classical_iterations=1000,
             stage_steps=100, batch_size=16, robust_rank=10, robust_outliers=0.2)
SMOKE = Scale(size=12, rank=2, outliers=0.1, layers=3, test_samples=32, classical_iterations=60,
              stage_steps=30, batch_size=8, robust_rank=4, robust_outliers=0.2)


def data(rank: int, outliers: float, factorized: bool) -> dict[str, Any]:
    low_rank: dict[str, Any] = {"law": "low_rank", "rank": rank}
    if factorized:
        low_rank.update({"shape": ["m", "n"], "estimate": "U @ V.T"})
    return {"seed": 0, "truth": {"L": low_rank, "S": {"law": "sparse", "density": outliers, "values": "uniform",
                                                      "relative_to": "L"}},
            "inputs": {"Y": {"model": "L + S"}}}


def training(scale: Scale, lr: float) -> dict[str, Any]:
    return {"scheme": "layerwise", "stage_steps": scale.stage_steps, "batch_size": scale.batch_size, "lr": lr,
            "validation_samples": 64, "validate_every": scale.stage_steps, "checkpoint_every": scale.stage_steps}


def network_variants(scale: Scale, rank: int | None = None, outliers: float | None = None) -> dict[str, Variant]:
    rank = rank or scale.rank
    outliers = outliers or scale.outliers
    convex = Variant("rpca", {"dims": {"m": scale.size, "n": scale.size},
                              "algorithm": {"method": BlockProximalGradient.name, "layers": scale.layers, "step": "1/L"},
                              "data": data(rank, outliers, factorized=False), "learn": None, "train": None})
    factorized_doc = Variant("rpca_factorized", {}).document()
    factorized = Variant("rpca_factorized", {
        "dims": {"m": scale.size, "n": scale.size, "r": scale.rank},
        "algorithm": {**factorized_doc["algorithm"], "layers": scale.layers},
        "data": data(rank, outliers, factorized=True), "learn": None, "train": None})
    scalars = training(scale, 0.01)
    networks = training(scale, 0.001)
    return {
        "BPG": convex,
        "BPG-learned-hyperparameters": convex.with_sections(learn={"hyperparameters": {
            "step_L": "per_layer", "step_S": "per_layer", "threshold_L": "per_layer", "threshold_S": "per_layer"}},
            train=scalars),
        "BPG-learned-weights": convex.with_sections(learn={"objective": "weights"}, train=scalars),
        "BPG-learned-correction": convex.with_sections(
            learn={"correction": {"widths": [16], "activation": "relu", "tying": "shared"}}, train=networks),
        "BPG-learned-prox": convex.with_sections(
            learn={"prox": {"network": "cnn", "widths": [8, 8], "activation": "relu"}}, train=networks),
        "ScaledGD": factorized,
        "ScaledGD-learned-hyperparameters": factorized.with_sections(
            learn={"hyperparameters": {"zeta": "per_layer", "eta": "per_layer"}}, train=scalars),
    }


def relative_errors(session: Session, model: torch.nn.Module, test: Batch, depth: int) -> list[float]:
    """``||L - L*||_F / ||L*||_F`` after each layer (root of the summed squares over the set)."""
    return [ratio ** 0.5 for ratio in session.error_per_layer(model, test, depth, keys=("L",))]


def study(scale: Scale, run: Run) -> dict:
    started = time.perf_counter()
    run.log(f"robust PCA: {scale.size}x{scale.size}, rank {scale.rank}, outliers {scale.outliers}, {scale.layers} layers")
    variants = network_variants(scale)
    robust_variants = network_variants(scale, scale.robust_rank, scale.robust_outliers)
    records: dict[str, dict[str, Any]] = {}
    classical_curves: dict[str, list[float]] = {}
    for name, variant in variants.items():
        spec = variant.spec(spec_name(name))
        session = evaluation_session(spec)
        test = session.source.fixed("test", scale.test_samples)
        robust_test = held_out(robust_variants[name].spec(spec_name(name)), scale.test_samples)
        weights, wall = (None, 0.0) if PARADIGMS[name] == 0 else train_or_reuse(spec, run.runs / "rpca" / spec.name, run.log)
        model = network(session, weights)
        if PARADIGMS[name] == 0:
            classical_started = time.perf_counter()
            classical = classical_network(session, scale.classical_iterations)
            classical_curves[name] = relative_errors(session, classical, test, scale.classical_iterations)
            run.log(f"  {name}: {scale.classical_iterations} iterations in {time.perf_counter() - classical_started:.0f} s")
        rel_err = relative_errors(session, model, test, scale.layers)
        untrained = rel_err if weights is None else relative_errors(session, session.network(), test, scale.layers)
        fast = network(evaluation_session(spec, "float32"), weights)
        inputs = {k: v.to(torch.float32) for k, v in test.inputs.items()}
        records[name] = {
            "paradigm": PARADIGMS[name],
            "classical": CLASSICAL_OF[name],
            "rel_err": rounded(rel_err, 5),
            "untrained_rel_err": rounded(untrained, 5),
            "robust_rel_err": rounded(relative_errors(session, model, robust_test, scale.layers), 5),
            "params": trainable_count(model),
            "train_s": round(wall, 1),
            "inference_ms": round(1000 * seconds_per_sample(fast, inputs), 3),
            "training": variant.sections.get("train"),
        }
        run.log(f"  {name:<34} layer {scale.layers}: {records[name]['rel_err'][-1]:.4f} "
                f"(untrained {records[name]['untrained_rel_err'][-1]:.4f}, robust {records[name]['robust_rel_err'][-1]:.4f})")
    for name, record in records.items():
        curve = classical_curves[record["classical"]]
        record["classical_iters_to_match"] = iterations_to_match(curve, record["rel_err"][-1])
    kept = checkpoints(scale.classical_iterations)
    result = {
        "study": "rpca",
        "scale": run.scale,
        "setting": asdict(scale),
        "rel_err": {name: record["rel_err"] for name, record in records.items()},
        "networks": records,
        "classical_rel_err": {name: {"iterations": kept, "rel_err": rounded([curve[k - 1] for k in kept], 5)}
                              for name, curve in classical_curves.items()},
        "wall_s": round(time.perf_counter() - started, 1),
        "command": run.command,
    }
    save_json(run.out / "rpca.json", result)
    return result
