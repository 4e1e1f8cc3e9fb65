"""Study 4: sparse logistic regression (``specs/sparse_logistic.yaml``), a smooth data term that
is not least squares.

A sample is a classification problem: labels ``y = sigmoid(A x*)`` of ``m`` examples with fixed
features ``A`` (64x32, N(0, 1) entries) for sparse weights ``x*`` (density 0.2). Two networks of
12 layers minimise ``sum(softplus(A x) - y * (A x)) + lam ||x||_1``:

- ``PG``: proximal gradient with the step ``1/L``, ``L = ||A||^2/4`` derived by the compiler
  (nothing learned);
- ``PG-learned-step``: the same network with a step and a threshold learned per layer
  (paradigm 1), trained on the weights ``x*`` (supervised).

Per layer, on held-out problems: the test accuracy (the share of examples whose predicted label
``A x > 0`` is the true one, ``A x* > 0``) and the objective; and how many classical iterations
reach the trained network's objective, and its accuracy.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from unfoldgen.reproduce.common import (
    Run,
    Variant,
    checkpoints,
    classical_network,
    evaluation_session,
    held_out,
    network,
    rounded,
    spec_name,
    train_or_reuse,
)
from unfoldgen.training.checkpoint import save_json
from unfoldgen.training.data import Batch
from unfoldgen.training.network import run_network
from unfoldgen.training.session import Session


@dataclass(frozen=True)
class Scale:
    layers: int
    test_samples: int
    classical_iterations: int
    steps: int
    batch_size: int


FULL = Scale(layers=12, test_samples=500, classical_iterations=2000, steps=6000, batch_size=64)
SMOKE = Scale(layers=3, test_samples=32, classical_iterations=40, steps=20, batch_size=16)


def variants(scale: Scale) -> dict[str, Variant]:
    base = Variant("sparse_logistic", {})
    doc = base.document()
    algorithm = {**doc["algorithm"], "layers": scale.layers}
    train = {**doc["train"], "steps": scale.steps, "batch_size": scale.batch_size,
             "validate_every": max(scale.steps // 10, 1), "checkpoint_every": max(scale.steps // 5, 1)}
    learned = base.with_sections(algorithm=algorithm, train=train)
    return {"PG": learned.with_sections(learn=None, train=None), "PG-learned-step": learned}


def curves(session: Session, model: torch.nn.Module, batch: Batch, depth: int) -> dict[str, list[float]]:
    """Accuracy and mean objective after each of the first ``depth`` layers (or iterations)."""
    test = batch.to(session.dtype, session.device)
    A = session.constants["A"]
    truth = test.truth["x"] @ A.T > 0
    accuracy: list[float] = []
    objective: list[float] = []

    def collect(k: int, outputs: dict[str, torch.Tensor]) -> None:
        accuracy.append(float(((outputs["x"] @ A.T > 0) == truth).double().mean()))
        objective.append(float(session.problem.objective(test.inputs, outputs, session.constants).mean()))

    with torch.no_grad():
        run_network(model, session.program, test.inputs, layers=depth, on_layer=collect)
    return {"accuracy": accuracy, "objective": objective}


def study(scale: Scale, run: Run) -> dict[str, Any]:
    started = time.perf_counter()
    run.log(f"sparse logistic regression: {scale.layers} layers, {scale.test_samples} test problems")
    networks: dict[str, dict[str, Any]] = {}
    test = None
    for name, variant in variants(scale).items():
        spec = variant.spec(spec_name(name))
        session = evaluation_session(spec)
        test = test if test is not None else held_out(spec, scale.test_samples)
        weights, train_s = (None, 0.0) if name == "PG" else \
            train_or_reuse(spec, run.runs / "sparse_logistic" / spec.name, run.log)
        per_layer = curves(session, network(session, weights), test, scale.layers)
        networks[name] = {"accuracy": rounded(per_layer["accuracy"], 4), "objective": rounded(per_layer["objective"], 4),
                          "train_s": round(train_s, 1)}
        run.log(f"  {name}: accuracy {per_layer['accuracy'][-1]:.4f}, objective {per_layer['objective'][-1]:.4f}")
    assert test is not None
    classical_session = evaluation_session(variants(scale)["PG"].spec("pg_long"))
    long = curves(classical_session, classical_network(classical_session, scale.classical_iterations), test,
                  scale.classical_iterations)
    learned = networks["PG-learned-step"]
    match = next((k + 1 for k, value in enumerate(long["objective"]) if value <= learned["objective"][-1]), None)
    match_accuracy = next((k + 1 for k, value in enumerate(long["accuracy"]) if value >= learned["accuracy"][-1]), None)
    kept = checkpoints(scale.classical_iterations)
    result = {
        "study": "sparse_logistic",
        "scale": run.scale,
        "setting": asdict(scale),
        "networks": networks,
        "classical": {"iterations": kept, "accuracy": rounded([long["accuracy"][k - 1] for k in kept], 4),
                      "objective": rounded([long["objective"][k - 1] for k in kept], 4)},
        "classical_iters_to_match": match,
        "classical_iters_to_match_accuracy": match_accuracy,
        "wall_s": round(time.perf_counter() - started, 1),
        "command": run.command,
    }
    save_json(run.out / "sparse_logistic.json", result)
    run.log(f"  classical iterations to reach the learned network's objective: {match}, its accuracy: {match_accuracy}")
    return result
