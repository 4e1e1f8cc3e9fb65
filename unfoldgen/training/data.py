"""Samples for training and evaluation: seeded synthetic laws or the user's ``.npz`` files.

Everything is deterministic. The constants come from ``data.seed``; a batch of fresh training
samples at step ``s`` comes from the seed sequence ``(seed, TRAIN, s)``, and each fixed set
(training, validation, test) from its own sequence, so a resumed run or another process draws
exactly the same samples. Samples are drawn in float64 with NumPy and converted at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unfoldgen.errors import SpecError
from unfoldgen.spec.model import ConstantSource, DataSpec, Spec, TruthLaw
from unfoldgen.training.problem import TrainingProblem

# Streams of the seed sequence: fresh training batches, and the three fixed sets.
STREAMS = {"fresh": 0, "train": 1, "validation": 2, "test": 3}


@dataclass(frozen=True)
class Batch:
    """Batch-first inputs and ground truth (the truth may be empty for unlabelled user data)."""

    inputs: dict[str, torch.Tensor]
    truth: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return next(iter(self.inputs.values())).shape[0]

    def take(self, index: torch.Tensor | slice) -> Batch:
        return Batch({k: v[index] for k, v in self.inputs.items()}, {k: v[index] for k, v in self.truth.items()})

    def to(self, dtype: torch.dtype, device: torch.device | str) -> Batch:
        return Batch({k: v.to(dtype=dtype, device=device) for k, v in self.inputs.items()},
                     {k: v.to(dtype=dtype, device=device) for k, v in self.truth.items()})

    def chunks(self, size: int) -> list[Batch]:
        return [self.take(slice(start, start + size)) for start in range(0, len(self), size)]


class DataSource:
    """The constants and the samples of one spec."""

    def __init__(self, spec: Spec, problem: TrainingProblem) -> None:
        if spec.data is None:
            raise SpecError("the spec has no data section, so there is nothing to train or evaluate on",
                            key_path="data", hint="declare the laws of the constants, the truth and the "
                                                  "inputs (see docs/training.md), or give data.files")
        self.spec = spec
        self.data: DataSpec = spec.data
        self.problem = problem
        self.base = Path(spec.file).resolve().parent
        self.constants = {name: torch.from_numpy(self._constant(name, source))
                          for name, source in self.data.constants.items()}

    # -- constants ----------------------------------------------------------------------------
    def _constant(self, name: str, source: ConstantSource) -> np.ndarray:
        shape = self.problem.program.constants[name]
        if source.file is not None:
            array = self._load_array(source, name)
            if array.shape != shape:
                raise source.where.error(f"the array in {source.file} has shape {array.shape}, but '{name}' is {shape}")
            return array
        rng = np.random.default_rng([self.data.seed, 100 + list(self.data.constants).index(name)])
        if source.law == "gaussian_blur":
            return gaussian_kernel(shape, source.width)
        if source.law == "mask":
            return (rng.random(shape) < source.density).astype(np.float64)
        std = source.std if source.std is not None else 1 / math.sqrt(shape[0])
        array = rng.standard_normal(shape) * std
        if source.law == "half_normal":  # nonnegative (blurs, Poisson intensities)
            array = np.abs(array)
        if source.normalize == "columns":
            array = array / np.linalg.norm(array, axis=0, keepdims=True)
        return array

    def _load_array(self, source: ConstantSource, name: str) -> np.ndarray:
        assert source.file is not None
        path = self.base / source.file
        try:
            loaded = np.load(path, allow_pickle=False)
        except OSError as exc:
            raise source.where.error(f"cannot read {path}: {exc}") from None
        except ValueError as exc:
            raise source.where.error(f"{path} is not a plain NumPy file: {exc}") from None
        if isinstance(loaded, np.ndarray):
            array = loaded
        else:
            with loaded:
                key = source.key or name
                if key not in loaded.files:
                    raise source.where.error(f"{source.file} has no array '{key}'",
                                             hint="arrays in it: " + ", ".join(loaded.files))
                array = loaded[key]
        if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
            raise source.where.error(f"{source.file} must hold finite numbers")
        return np.asarray(array, dtype=np.float64)

    # -- samples ------------------------------------------------------------------------------
    def fresh(self, step: int, count: int) -> Batch:
        """The training batch of one step when samples are fresh at every step."""
        return self.synthetic([self.data.seed, STREAMS["fresh"], step], count)

    def fixed(self, split: str, count: int) -> Batch:
        """A fixed set: the user's file for this split, or ``count`` seeded samples."""
        if split in self.data.files:
            return self._load_split(split)
        if not self.data.synthetic:
            raise SpecError(f"there is no {split} set", key_path="data.files",
                            hint=f"give data.files.{split}, or laws in data.truth and data.inputs")
        return self.synthetic([self.data.seed, STREAMS[split]], count)

    def synthetic(self, entropy: list[int], count: int) -> Batch:
        rng = np.random.default_rng(entropy)
        truth: dict[str, torch.Tensor] = {}
        for name, law in self.data.truth.items():  # the spec checked that relative_to comes from the truth
            reference = truth.get(law.relative_to) if law.relative_to else None
            truth[name] = torch.from_numpy(self._draw(rng, law, count, reference))
        clean = self.problem.measure(truth, self.constants)
        inputs = {}
        for name, model in self.data.inputs.items():
            value = clean[name]
            if model.snr_db is not None:
                power = value.flatten(1).square().mean(1)
                sigma = torch.sqrt(power / 10 ** (model.snr_db / 10))
                noise = torch.from_numpy(rng.standard_normal(tuple(value.shape)))
                value = value + sigma.reshape(-1, *[1] * (value.dim() - 1)) * noise
            inputs[name] = value
        return Batch(inputs, truth)

    def _draw(self, rng: np.random.Generator, law: TruthLaw, count: int, reference: torch.Tensor | None) -> np.ndarray:
        shape = self.problem.truth[law.name].shape
        if law.law == "gaussian":
            return rng.standard_normal((count, *shape)) * law.amplitude
        if law.law == "low_rank":
            rank = self.spec.size_of(law.rank)
            rows, cols = shape if len(shape) == 2 else (shape[0], 1)
            left = rng.standard_normal((count, rows, rank))
            right = rng.standard_normal((count, cols, rank))
            return (left @ right.transpose(0, 2, 1) / math.sqrt(rank) * law.amplitude).reshape(count, *shape)
        if law.law == "piecewise_constant":
            return piecewise_constant(rng, count, shape, law.pieces) * law.amplitude
        support = rng.random((count, *shape)) < law.density
        values = {
            "normal": lambda: rng.standard_normal((count, *shape)),
            "uniform": lambda: rng.uniform(-1.0, 1.0, (count, *shape)),
            "sign": lambda: rng.choice([-1.0, 1.0], (count, *shape)),
            "positive": lambda: np.abs(rng.standard_normal((count, *shape))),
        }[law.values]()
        scale: float | np.ndarray = law.amplitude
        if reference is not None:
            mean_abs = reference.abs().flatten(1).mean(1).numpy()
            scale = scale * mean_abs.reshape(-1, *[1] * len(shape))
        return np.where(support, values * scale, 0.0)

    def _load_split(self, split: str) -> Batch:
        file = self.data.files[split]
        path = self.base / file
        key = f"data.files.{split}"
        try:
            with np.load(path, allow_pickle=False) as loaded:
                arrays = {name: loaded[name] for name in loaded.files}
        except (OSError, ValueError) as exc:
            raise SpecError(f"cannot read the {split} set {path}: {exc}", key_path=key) from None
        program = self.problem.program
        inputs = {name: self._sample_array(arrays, name, shape, key, file)
                  for name, shape in program.inputs.items()}
        truth = {name: self._sample_array(arrays, name, tensor.shape, key, file)
                 for name, tensor in self.problem.truth.items() if name in arrays}
        sizes = {len(a) for a in (*inputs.values(), *truth.values())}
        if len(sizes) != 1:
            raise SpecError(f"the arrays of {file} have different numbers of samples", key_path=key)
        return Batch(inputs, truth)

    @staticmethod
    def _sample_array(arrays: dict[str, np.ndarray], name: str, shape: tuple[int, ...], key: str,
                      file: str) -> torch.Tensor:
        if name not in arrays:
            raise SpecError(f"{file} has no array '{name}'", key_path=key,
                            hint="name the arrays after the inputs and the truth tensors, batch first")
        array = arrays[name]
        if array.shape[1:] != shape or not np.issubdtype(array.dtype, np.number):
            raise SpecError(f"'{name}' in {file} has shape {array.shape}, expected [samples, "
                            f"{', '.join(map(str, shape))}]", key_path=key)
        if not np.all(np.isfinite(array)):
            raise SpecError(f"'{name}' in {file} holds NaN or infinite values", key_path=key)
        return torch.from_numpy(np.asarray(array, dtype=np.float64))


def gaussian_kernel(shape: tuple[int, ...], width: float) -> np.ndarray:
    """A Gaussian blur of standard deviation ``width`` pixels, centred, summing to 1 (a vector
    or a matrix kernel)."""
    axes = [np.arange(n) - (n - 1) / 2 for n in shape]
    grids = np.meshgrid(*axes, indexing="ij")
    kernel = np.exp(-sum(g**2 for g in grids) / (2 * width**2))
    return kernel / kernel.sum()


def piecewise_constant(rng: np.random.Generator, count: int, shape: tuple[int, ...], pieces: int) -> np.ndarray:
    """Vectors of ``pieces`` constant runs (random breakpoints), or images of ``pieces``
    rectangles, each adding a N(0, 1) level over a N(0, 1) background."""
    if len(shape) == 1:
        (n,) = shape
        out = np.empty((count, n))
        for sample in range(count):
            breaks = np.sort(rng.choice(np.arange(1, n), size=min(pieces - 1, n - 1), replace=False))
            levels = rng.standard_normal(len(breaks) + 1)
            out[sample] = np.repeat(levels, np.diff(np.concatenate([[0], breaks, [n]])))
        return out
    rows, cols = shape
    out = np.repeat(rng.standard_normal((count, 1, 1)), rows, axis=1).repeat(cols, axis=2)
    for sample in range(count):
        for _ in range(pieces):
            top, bottom = np.sort(rng.integers(0, rows + 1, size=2))
            left, right = np.sort(rng.integers(0, cols + 1, size=2))
            out[sample, top:bottom, left:right] += rng.standard_normal()
    return out
