"""``unfoldgen train``: the training schemes of deep unfolding on the generated module.

A run is a list of phases. End-to-end training is one phase over all layers. Layer-wise
training (TISTA, learned RPCA) has, for each depth ``k``: layer ``k`` initialised from layer
``k-1``, a phase that trains layer ``k`` alone, then a phase that trains layers ``1..k``. A
phase gets a fresh Adam optimiser and its own learning-rate schedule; parameters outside the
phase keep zero gradients, so Adam leaves them exactly where they are.

Checkpoints hold the model, the optimiser, the schedule, the generators and the position in
the plan; since the samples of a step are seeded by the step, ``--resume`` continues to the
same final weights as an uninterrupted run.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

from unfoldgen.errors import SpecError
from unfoldgen.spec.model import Spec, TrainSpec
from unfoldgen.training import distributed
from unfoldgen.training.checkpoint import (
    remove_abandoned_temporaries,
    restore_rng_state,
    rng_state,
    save_json,
    save_npz,
    save_torch,
)
from unfoldgen.training.data import STREAMS, Batch
from unfoldgen.training.losses import Loss, layer_weights
from unfoldgen.training.network import weights_payload
from unfoldgen.training.progress import Progress
from unfoldgen.training.session import Session

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = "unfoldgen-checkpoint/1"


@dataclass(frozen=True)
class Phase:
    depth: int  # layers 1..depth run
    mode: str  # "all": train layers 1..depth; "new": train layer `depth` alone
    steps: int


@dataclass
class RunState:
    """Where a run is; everything here goes into a checkpoint."""

    phase: int = 0
    phase_step: int = 0
    step: int = 0
    loss_sum: float = 0.0
    loss_count: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0


@dataclass(frozen=True)
class TrainResult:
    name: str
    out: Path
    finished: bool
    is_main: bool
    steps: int
    history: list[dict[str, Any]]
    stages: list[dict[str, Any]]
    wall_s: float


def plan(train: TrainSpec, layers: int, steps_per_epoch: int | None, per_layer: bool) -> list[Phase]:
    if train.scheme == "end_to_end":
        steps = train.epochs * steps_per_epoch if train.epochs and steps_per_epoch else train.steps
        return [Phase(layers, "all", steps)]
    phases = []
    for depth in range(1, layers + 1):
        if depth > 1 and per_layer:
            phases.append(Phase(depth, "new", train.stage_steps))
        phases.append(Phase(depth, "all", train.stage_steps))
    return phases


class Trainer:
    def __init__(self, spec: Spec, train: TrainSpec, out: Path, quiet: bool = False,
                 stop_after: int | None = None) -> None:
        self.context = distributed.start(train.device)
        self.session = Session(spec, train, self.context.device)
        self.train = train
        self.out = out
        self.quiet = quiet
        self.stop_after = stop_after
        torch.manual_seed(train.seed)
        self.model = self.session.network()
        self.per_layer: tuple[str, ...] = sys.modules[type(self.model).__module__].PER_LAYER_PARAMETERS
        if not any(p.requires_grad for p in self.model.parameters()):
            raise SpecError("nothing in this network is trainable", key_path="learn",
                            hint="declare what to learn, e.g. 'hyperparameters: {step: per_layer}'")
        self.train_set = self._train_set()
        steps_per_epoch = len(self.train_set) // train.batch_size if self.train_set is not None else None
        if steps_per_epoch == 0:
            raise SpecError(f"the training set ({len(self.train_set or [])} samples) is smaller than one batch "
                            f"({train.batch_size})", key_path="train.batch_size")
        self.steps_per_epoch = steps_per_epoch
        self.phases = plan(train, self.session.program.layers, steps_per_epoch, bool(self.per_layer))
        weights = (layer_weights(self.session.problem, train.layer_weights, self.session.program.layers)
                   if train.loss == "deep_supervision" else None)
        self.loss = Loss(train.loss, self.session.problem, self.session.constants, weights)
        self.validation = self.session.source.fixed("validation", train.validation_samples)
        if train.loss != "unsupervised" and not self.validation.truth:
            raise SpecError(f"loss {train.loss} needs ground truth", key_path="train.loss",
                            hint="give laws in data.truth (or truth arrays in the data files), or use unsupervised")
        self.groups = self._parameter_groups()
        self.wrapped = distributed.wrap(self.model, self.context, find_unused=train.scheme == "layerwise")

    # -- data ---------------------------------------------------------------------------------
    def _train_set(self) -> Batch | None:
        source = self.session.source
        if "train" in source.data.files:
            return source.fixed("train", 0)
        if self.train.train_samples is not None:
            return source.fixed("train", self.train.train_samples)
        return None

    def _batch(self, step: int) -> Batch:
        size = self.train.batch_size
        if self.train_set is None:
            batch = self.session.source.fresh(step, size)
        else:
            assert self.steps_per_epoch
            epoch, index = divmod(step, self.steps_per_epoch)
            order = np.random.default_rng([self.session.source.data.seed, STREAMS["train"], 1000 + epoch])
            chosen = order.permutation(len(self.train_set))[index * size:(index + 1) * size]
            batch = self.train_set.take(torch.from_numpy(chosen))
        return batch.take(self.context.local_slice(size)).to(self.session.dtype, self.context.device)

    # -- optimisation -------------------------------------------------------------------------
    def _parameter_groups(self) -> list[tuple[list[str], float]]:
        """Attribute names per learning rate: ``lr_groups`` names spec parameters or networks."""
        program = self.session.program
        attributes = {name for name, p in self.model.named_parameters() if p.requires_grad}
        owners: dict[str, list[str]] = {}
        for parameter in program.parameters:
            attribute = f"{parameter.name}_raw" if parameter.positive else parameter.name
            if attribute in attributes:
                owners.setdefault(parameter.name, []).append(attribute)
        for network in program.networks:
            owners[network.name] = [n for n in network.parameter_names() if n in attributes]
        groups = []
        claimed: set[str] = set()
        for name, rate in self.train.lr_groups.items():
            if name not in owners:
                raise SpecError(f"lr_groups names '{name}', which is not a trainable parameter or network",
                                key_path="train.lr_groups", hint="trainable: " + ", ".join(sorted(owners)))
            groups.append((owners[name], rate))
            claimed |= set(owners[name])
        rest = sorted(attributes - claimed)
        if rest:
            groups.append((rest, self.train.lr))
        return groups

    def _optimizer(self, phase: Phase) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        named = dict(self.model.named_parameters())
        optimizer = torch.optim.Adam([{"params": [named[n] for n in names], "lr": rate} for names, rate in self.groups])
        schedule = _schedule(self.train.schedule, phase.steps)
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)

    def _mask_gradients(self, phase: Phase) -> None:
        """In a "new" phase only layer ``depth``'s slice of the per-layer tensors learns."""
        if phase.mode != "new":
            return
        for name, parameter in self.model.named_parameters():
            if parameter.grad is None:
                continue
            if name in self.per_layer:
                keep = parameter.grad[phase.depth - 1].clone()
                parameter.grad.zero_()
                parameter.grad[phase.depth - 1] = keep
            else:
                parameter.grad.zero_()

    def _start_stage(self, phase: Phase, previous: Phase | None) -> None:
        """A new depth: its layer starts from the trained layer before it."""
        if previous is None or previous.depth == phase.depth:
            return
        with torch.no_grad():
            for name in self.per_layer:
                tensor = getattr(self.model, name)
                tensor[phase.depth - 1] = tensor[phase.depth - 2]

    # -- the run ------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> TrainResult:
        state = RunState()
        if self.context.is_main:
            remove_abandoned_temporaries(self.out)
        checkpoint = self._load_checkpoint() if resume else None
        if checkpoint is not None:
            state = RunState(**checkpoint["state"])
            self.model.load_state_dict(checkpoint["model"])
            restore_rng_state(checkpoint["rng"])
        total = sum(p.steps for p in self.phases)
        progress = Progress(total, state.step, self.session.program.layers, self.quiet, self.context.is_main)
        if checkpoint is not None:
            progress.message(f"resumed from step {state.step} of {total}")
        started = time.perf_counter() - state.wall_s
        try:
            while state.phase < len(self.phases):
                phase = self.phases[state.phase]
                if state.phase_step == 0:
                    self._start_stage(phase, self.phases[state.phase - 1] if state.phase else None)
                optimizer, scheduler = self._optimizer(phase)
                if checkpoint is not None and checkpoint["state"]["phase"] == state.phase and state.phase_step:
                    optimizer.load_state_dict(checkpoint["optimizer"])
                    scheduler.load_state_dict(checkpoint["scheduler"])
                while state.phase_step < phase.steps:
                    self._step(phase, state, optimizer, scheduler)
                    progress.step()
                    phase_done = state.phase_step == phase.steps
                    if state.step % self.train.validate_every == 0 or phase_done:
                        self._validate(phase, state, progress)
                    if phase_done and phase.mode == "all":
                        state.stages.append({"depth": phase.depth, **_metric_of(state.history[-1])})
                    stopping = self.stop_after is not None and state.step >= self.stop_after
                    if phase_done:
                        state.phase, state.phase_step = state.phase + 1, 0
                    if state.step % self.train.checkpoint_every == 0 or phase_done or stopping:
                        state.wall_s = time.perf_counter() - started
                        self._save_checkpoint(state, optimizer, scheduler)
                    if stopping:
                        progress.close()
                        progress.message(f"stopped after step {state.step}; continue with --resume")
                        return self._result(state, finished=False)
                    if phase_done:
                        break
            state.wall_s = time.perf_counter() - started
            progress.close()
            self._save_outputs(state)
            return self._result(state, finished=True)
        finally:
            progress.close()
            distributed.stop(self.context)

    def _step(self, phase: Phase, state: RunState, optimizer: torch.optim.Optimizer,
              scheduler: torch.optim.lr_scheduler.LambdaLR) -> None:
        batch = self._batch(state.step)
        optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.wrapped, batch, phase.depth)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the loss became {float(loss)} at step {state.step + 1}")
        loss.backward()
        self._mask_gradients(phase)
        if self.train.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.train.clip_grad_norm)
        optimizer.step()
        scheduler.step()
        state.step += 1
        state.phase_step += 1
        state.loss_sum += float(loss.detach())
        state.loss_count += 1

    def _validate(self, phase: Phase, state: RunState, progress: Progress) -> None:
        key, value = self.session.metric(self.model, self.validation, phase.depth)
        record = {"step": state.step, "depth": phase.depth, "mode": phase.mode,
                  "loss": state.loss_sum / max(state.loss_count, 1), key: value}
        state.history.append(record)
        state.loss_sum, state.loss_count = 0.0, 0
        progress.record(state.step, record)

    # -- files --------------------------------------------------------------------------------
    def _save_checkpoint(self, state: RunState, optimizer: torch.optim.Optimizer,
                         scheduler: torch.optim.lr_scheduler.LambdaLR) -> None:
        if self.context.is_main:
            save_torch(self.out / CHECKPOINT, {
                "format": CHECKPOINT_FORMAT, "spec_hash": self.session.program.spec_hash,
                "train": asdict(self.train), "state": asdict(state),
                "model": self.model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": rng_state(),
            })
        self.context.barrier()

    def _load_checkpoint(self) -> dict[str, Any] | None:
        path = self.out / CHECKPOINT
        if not path.exists():
            if self.context.is_main:
                click.echo(f"no checkpoint in {self.out}; starting from step 0", err=True)
            return None
        checkpoint = torch.load(path, map_location=self.context.device, weights_only=True)
        if checkpoint.get("format") != CHECKPOINT_FORMAT:
            raise SpecError(f"{path} is not a checkpoint of unfoldgen", hint="remove it, or train into another --out")
        if checkpoint["spec_hash"] != self.session.program.spec_hash or checkpoint["train"] != asdict(self.train):
            raise SpecError(f"the checkpoint in {self.out} was written for another spec or other training settings",
                            hint="resume with the same spec and flags, or train into another --out")
        return checkpoint

    def _save_outputs(self, state: RunState) -> None:
        if not self.context.is_main:
            return
        program = self.session.program
        save_torch(self.out / "weights.pt", weights_payload(self.model, program))
        save_npz(self.out / "params.npz", self.model.kernel_params())
        save_json(self.out / "history.json", {
            "spec": program.name, "spec_hash": program.spec_hash, "train": asdict(self.train),
            "processes": self.context.world_size, "steps": state.step, "wall_s": round(state.wall_s, 3),
            "history": state.history, "stages": state.stages,
        })

    def _result(self, state: RunState, finished: bool) -> TrainResult:
        return TrainResult(self.session.program.name, self.out, finished, self.context.is_main, state.step,
                           state.history, state.stages, state.wall_s)


def _metric_of(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k.startswith("val_")}


def _schedule(kind: str, steps: int) -> Any:
    """The learning-rate factor at step ``s`` of a phase of ``steps`` steps."""
    if kind == "constant":
        return lambda s: 1.0
    if kind == "step":
        return lambda s: 0.1 ** ((s >= steps // 2) + (s >= 3 * steps // 4))
    return lambda s: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
