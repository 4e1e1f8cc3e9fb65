"""What every study shares: spec variants of the bundled specs, training that can be resumed or
reused, per-layer metrics on held-out data, and JSON written atomically.

A study never edits a spec file. It loads a bundled spec as YAML, replaces whole sections (the
network, the data, the training settings), and hands the text to the same loader as
``unfoldgen build``, so every network of a study is one a user could write down.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from unfoldgen.benchmark.worker import median_seconds
from unfoldgen.errors import SpecError
from unfoldgen.ir import lower
from unfoldgen.resources import bundled
from unfoldgen.spec import load_spec_text
from unfoldgen.spec.model import Spec
from unfoldgen.training.checkpoint import save_json
from unfoldgen.training.data import Batch
from unfoldgen.training.network import build_network, classical_program, load_weights, read_weights
from unfoldgen.training.session import Session
from unfoldgen.training.trainer import Trainer

SPECS = bundled("specs")
# Relative to the working folder (``make reproduce`` runs at the repository root).
RESULTS = Path("docs") / "results"
RUNS = Path("runs") / "reproduce"

@dataclass(frozen=True)
class Variant:
    """A network of a study: a bundled spec with some top-level sections replaced."""

    base: str
    sections: dict[str, Any]

    def document(self) -> dict[str, Any]:
        doc = yaml.safe_load((SPECS / f"{self.base}.yaml").read_text(encoding="utf-8"))
        for key, value in self.sections.items():
            if value is None:
                doc.pop(key, None)
            else:
                doc[key] = copy.deepcopy(value)
        return doc

    def spec(self, name: str) -> Spec:
        doc = self.document()
        doc["name"] = name
        return load_spec_text(yaml.safe_dump(doc, sort_keys=False), f"specs/{self.base}.yaml ({name})")

    def with_sections(self, **sections: Any) -> Variant:
        return Variant(self.base, {**self.sections, **sections})


def spec_name(network: str) -> str:
    """A network's display name (``LISTA-CP``) as a spec name (``lista_cp``)."""
    return network.lower().replace("-", "_").replace(" ", "_")


def train_or_reuse(spec: Spec, run: Path, log: Callable[[str], None]) -> tuple[Path, float]:
    """Train ``spec`` into ``run`` and return its weights and training wall time.

    Finished weights of the same spec (same hash) are reused with their recorded time, and a run
    killed midway resumes from its checkpoint, so an interrupted ``make reproduce`` loses little.
    """
    weights, record = run / "weights.pt", run / "wall.json"
    spec_hash = lower(spec).spec_hash
    if weights.exists() and record.exists() and read_weights(weights).get("spec_hash") == spec_hash:
        wall = float(json.loads(record.read_text())["train_s"])
        log(f"  {spec.name}: reusing {weights} (trained in {wall:.0f} s)")
        return weights, wall
    resume = (run / "checkpoint.pt").exists()
    log(f"  {spec.name}: training{' (resumed)' if resume else ''} ...")
    try:
        result = Trainer(spec, spec.train, run, quiet=True).run(resume=resume)
    except SpecError:
        if not resume:
            raise
        result = Trainer(spec, spec.train, run, quiet=True).run()  # the checkpoint had other settings
    save_json(record, {"train_s": round(result.wall_s, 2)})
    log(f"  {spec.name}: trained in {result.wall_s:.0f} s")
    return weights, result.wall_s


def evaluation_session(spec: Spec, dtype: str = "float64") -> Session:
    """The spec's program, constants and test data, evaluated on the CPU in ``dtype``."""
    return Session(spec, dataclasses.replace(spec.train, dtype=dtype), torch.device("cpu"))


def network(session: Session, weights: Path | None) -> torch.nn.Module:
    """The session's network with ``weights`` loaded (untrained when None)."""
    model = session.network()
    if weights is not None:
        load_weights(model, weights, session.program)
    return model


def classical_network(session: Session, iterations: int) -> torch.nn.Module:
    """The classical algorithm of the session's spec (nothing learned) run for ``iterations``."""
    program = classical_program(session.spec, iterations)
    return build_network(program, session.constants, session.dtype, session.device)


def held_out(spec: Spec, samples: int) -> Batch:
    """The spec's test set (its own seed stream, never seen in training)."""
    return evaluation_session(spec).source.fixed("test", samples)


def trainable_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def seconds_per_sample(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> float:
    """Median wall time of one forward pass over ``inputs``, per sample (PyTorch eager)."""
    with torch.no_grad():
        seconds = median_seconds(lambda: model(**inputs))
    return seconds / len(next(iter(inputs.values())))


@dataclass(frozen=True)
class Run:
    """Where a study writes (``out``: JSON and plots; ``runs``: training runs), at which scale
    (``full`` or ``smoke``), the command to record, and whether to print progress."""

    out: Path
    runs: Path
    scale: str
    argv: tuple[str, ...]
    quiet: bool = False

    @property
    def command(self) -> str:
        return "python -m unfoldgen.reproduce " + " ".join(shlex.quote(a) for a in self.argv)

    def log(self, message: str) -> None:
        if not self.quiet:
            print(message, flush=True)


def rounded(values: list[float], digits: int = 3) -> list[float]:
    return [round(float(v), digits) for v in values]


def checkpoints(last: int) -> list[int]:
    """Iterations at which long classical curves are kept: every one up to 20, then ~20 per decade."""
    points = set(range(1, min(last, 20) + 1))
    k = 20.0
    while k < last:
        k *= 10 ** (1 / 20)
        points.add(min(last, round(k)))
    return sorted(points)
