"""The spec's ``data``, ``train`` and ``eval`` sections: how to make samples and how to train.

They do not change the network, only how ``unfoldgen train`` and ``unfoldgen eval`` use it.
Like the rest of the spec, expressions stay located text here (measurement models, estimates,
layer weights); the training stage parses them with the whitelisting parser.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

from unfoldgen.spec.model import (
    CONSTANT_LAWS,
    DEVICES,
    DTYPES,
    LOSSES,
    NORMALIZATIONS,
    SCHEDULES,
    SCHEMES,
    SPLITS,
    TRUTH_LAWS,
    VALUE_LAWS,
    ConstantSource,
    DataSpec,
    EvalSpec,
    InputModel,
    TrainSpec,
    TruthLaw,
)

if TYPE_CHECKING:
    from unfoldgen.spec.reader import SpecReader

TRAIN_KEYS = {
    "loss": "supervised (MSE of the last layer), deep_supervision, or unsupervised (the objective)",
    "layer_weights": "deep supervision: weight of layer k = 0..K-1, an expression of k such as log(k+2)",
    "scheme": "end_to_end, or layerwise (add one layer at a time)",
    "steps": "optimiser steps (end_to_end)",
    "epochs": "passes over a fixed training set (instead of steps; needs train_samples)",
    "stage_steps": "layerwise: steps for the new layer alone, then for all layers so far",
    "batch_size": "samples per step (the global batch over all processes)",
    "train_samples": "'fresh' (new samples every step) or the size of a fixed training set",
    "lr": "Adam's learning rate",
    "lr_groups": "learning rates of named parameters, e.g. {threshold: 0.01}",
    "schedule": "cosine, constant, or step (x0.1 at 50% and 75% of the steps)",
    "clip_grad_norm": "clip the gradient's global norm (null: off)",
    "checkpoint_every": "write a checkpoint every N steps",
    "validate_every": "compute the validation NMSE every N steps",
    "validation_samples": "size of the validation set",
    "dtype": "float32 or float64",
    "device": "auto, cpu or cuda",
    "seed": "seed of PyTorch's generator",
}
EVAL_KEYS = {
    "samples": "held-out test samples",
    "classical_iterations": "iterations of the classical algorithm to compare with",
    "batch_size": "samples per forward pass",
}
DATA_KEYS = {
    "seed": "seed of the constants and of every sample",
    "constants": "a law or a file per constant",
    "truth": "the law of each ground-truth tensor",
    "inputs": "each input as a model of the truth plus noise",
    "files": "user data sets: {train, validation, test} .npz files",
}


def read_data(reader: SpecReader, value: Any, spec_names: dict[str, str], dims: dict[str, int]) -> DataSpec | None:
    """``spec_names`` maps every declared name to its role (dim, constant, input, variable, ...)."""
    if value is None:
        return None
    path: tuple[str | int, ...] = ("data",)
    section = reader.mapping(value, path, "data")
    reader.check_keys(section, path, DATA_KEYS)
    seed = read_seed(reader, section.get("seed", 0), path + ("seed",))
    constants = {
        name: _constant_source(reader, name, raw, path + ("constants", name), spec_names)
        for name, raw in reader.mapping(section.get("constants"), path + ("constants",), "data.constants").items()
    }
    truth: dict[str, TruthLaw] = {}
    for name, raw in reader.mapping(section.get("truth"), path + ("truth",), "data.truth").items():
        law = _truth_law(reader, name, raw, path + ("truth", name), spec_names, dims)
        if law.relative_to is not None and law.relative_to not in truth:
            raise reader.error(path + ("truth", name, "relative_to"),
                               f"relative_to names '{law.relative_to}', which is not a truth tensor declared above",
                               hint="declare the reference first, e.g. L before S")
        truth[name] = law
    inputs = {
        name: _input_model(reader, name, raw, path + ("inputs", name), spec_names)
        for name, raw in reader.mapping(section.get("inputs"), path + ("inputs",), "data.inputs").items()
    }
    files: dict[str, str] = {}
    for split, file in reader.mapping(section.get("files"), path + ("files",), "data.files").items():
        if split not in SPLITS:
            raise reader.error(path + ("files", split), f"unknown split '{split}'", hint="one of: " + ", ".join(SPLITS))
        if not isinstance(file, str) or not file.endswith(".npz"):
            raise reader.error(path + ("files", split), "a data set is the path of a .npz file",
                               hint="arrays named after the inputs and the truth tensors, batch first")
        files[split] = file
    data = DataSpec(seed, constants, truth, inputs, files, reader.located(path, "data"))
    _check_data_complete(reader, data, spec_names)
    return data


def _check_data_complete(reader: SpecReader, data: DataSpec, spec_names: dict[str, str]) -> None:
    for name, role in spec_names.items():
        if role == "constant" and name not in data.constants:
            raise reader.error(("data", "constants"), f"the constant '{name}' has no source",
                               hint=f"e.g. '{name}: {{law: gaussian, normalize: columns}}' or '{name}: {{file: {name}.npy}}'")
        if role == "input" and name not in data.inputs and set(data.files) != set(SPLITS):
            raise reader.error(("data", "inputs"), f"the input '{name}' has no model",
                               hint=f"e.g. '{name}: {{model: A @ x, snr_db: 40}}', or give data.files for "
                                    "train, validation and test")
    if data.inputs and not data.truth:
        raise reader.error(("data", "truth"), "synthetic inputs need the law of the ground truth",
                           hint="e.g. 'x: {law: sparse, density: 0.1}'")


def _constant_source(reader: SpecReader, name: str, raw: Any, path: tuple[str | int, ...],
                     spec_names: dict[str, str]) -> ConstantSource:
    if spec_names.get(name) != "constant":
        raise reader.error(path, f"'{name}' is not a declared constant",
                           hint="constants: " + ", ".join(n for n, r in spec_names.items() if r == "constant"))
    section = reader.mapping(raw, path, f"data.constants.{name}")
    reader.check_keys(section, path, {"law": ", ".join(CONSTANT_LAWS), "normalize": "columns or none",
                                      "std": "standard deviation of the entries", "file": ".npy or .npz file",
                                      "key": "array name inside a .npz file",
                                      "width": "gaussian_blur: the kernel's standard deviation in pixels",
                                      "density": "mask: the probability that an entry is kept"})
    where = reader.located(path, name)
    if "file" in section:
        file = section["file"]
        if not isinstance(file, str) or not file.endswith((".npy", ".npz")):
            raise reader.error(path + ("file",), "file must be the path of a .npy or .npz file")
        key = section.get("key")
        if key is not None and not isinstance(key, str):
            raise reader.error(path + ("key",), "key must be the name of an array in the .npz file")
        return ConstantSource(where, file=file, key=key)
    law = _choice(reader, section.get("law"), path + ("law",), CONSTANT_LAWS, "law")
    normalize = _choice(reader, section.get("normalize", "columns"), path + ("normalize",), NORMALIZATIONS, "normalize")
    std = section.get("std")
    if std is not None:
        std = _number(reader, std, path + ("std",), "std", low=0.0, strict=True)
    width = _number(reader, section.get("width", 1.0), path + ("width",), "width", low=0.0, strict=True)
    density = _number(reader, section.get("density", 0.5), path + ("density",), "density", low=0.0, high=1.0)
    return ConstantSource(where, law=law, normalize=normalize, std=std, width=width, density=density)


TRUTH_KEYS = {
    "law": "sparse, gaussian, low_rank or piecewise_constant",
    "shape": "the shape, for a truth that is not a variable",
    "density": "sparse: probability that an entry is nonzero",
    "values": "sparse: normal, uniform, sign or positive",
    "amplitude": "scale of the values",
    "relative_to": "sparse: scale by the mean |.| of another truth tensor (outliers of L)",
    "rank": "low_rank: the rank (a number or a dim)",
    "pieces": "piecewise_constant: constant runs of a vector, or rectangles of an image",
    "estimate": "how the network's outputs estimate this truth, e.g. U @ V.T",
}


def _truth_law(reader: SpecReader, name: str, raw: Any, path: tuple[str | int, ...],
               spec_names: dict[str, str], dims: dict[str, int]) -> TruthLaw:
    section = reader.mapping(raw, path, f"data.truth.{name}")
    reader.check_keys(section, path, TRUTH_KEYS)
    is_variable = spec_names.get(name) == "variable"
    if not is_variable:
        if name in spec_names:
            raise reader.error(path, f"'{name}' is a {spec_names[name]}, not an unknown",
                               hint="truth tensors are variables, or new names with a shape and an estimate")
        reader.name(name, path, set())
        if "shape" not in section or "estimate" not in section:
            raise reader.error(path, f"'{name}' is not a variable, so it needs a shape and an estimate",
                               hint="e.g. 'L: {law: low_rank, rank: r, shape: [m, n], estimate: U @ V.T}'")
    elif "shape" in section or "estimate" in section:
        raise reader.error(path, f"'{name}' is a variable: its shape is known and the network estimates it directly")
    law = _choice(reader, section.get("law"), path + ("law",), TRUTH_LAWS, "law")
    shape: tuple[str | int, ...] = ()
    if "shape" in section:
        from unfoldgen.spec.load import read_shape

        shape = read_shape(reader, section["shape"], path + ("shape",), dims)
    rank = section.get("rank", 1)
    if isinstance(rank, bool) or not (isinstance(rank, int) and rank >= 1 or spec_names.get(str(rank)) == "dim"):
        raise reader.error(path + ("rank",), f"rank must be a positive integer or a dim, got {rank!r}")
    relative_to = section.get("relative_to")
    if relative_to is not None and not isinstance(relative_to, str):
        raise reader.error(path + ("relative_to",), "relative_to must name another truth tensor")
    return TruthLaw(
        name=name, law=law, where=reader.located(path, name), shape=shape,
        density=_number(reader, section.get("density", 0.1), path + ("density",), "density", low=0.0, high=1.0),
        values=_choice(reader, section.get("values", "normal"), path + ("values",), VALUE_LAWS, "values"),
        amplitude=_number(reader, section.get("amplitude", 1.0), path + ("amplitude",), "amplitude", low=0.0, strict=True),
        relative_to=relative_to, rank=rank,
        pieces=int(_number(reader, section.get("pieces", 8), path + ("pieces",), "pieces", low=1.0, high=10_000.0)),
        estimate=reader.text(section["estimate"], path + ("estimate",), "estimate") if "estimate" in section else None,
    )


def _input_model(reader: SpecReader, name: str, raw: Any, path: tuple[str | int, ...],
                 spec_names: dict[str, str]) -> InputModel:
    if spec_names.get(name) != "input":
        raise reader.error(path, f"'{name}' is not a declared input",
                           hint="inputs: " + ", ".join(n for n, r in spec_names.items() if r == "input"))
    section = reader.mapping(raw, path, f"data.inputs.{name}")
    reader.check_keys(section, path, {"model": "an expression of truth tensors and constants, e.g. A @ x",
                                      "snr_db": "signal-to-noise ratio of added Gaussian noise, in dB"})
    if "model" not in section:
        raise reader.error(path, f"the input '{name}' needs a model", hint="e.g. 'model: A @ x'")
    snr = section.get("snr_db")
    if snr is not None:
        snr = _number(reader, snr, path + ("snr_db",), "snr_db", low=-100.0, high=300.0)
    return InputModel(name, reader.text(section["model"], path + ("model",), "model"), snr)


def read_train(reader: SpecReader, value: Any, dtype: str | None = None) -> TrainSpec:
    """The train section; ``dtype`` (the spec's top-level one) is the default of ``train.dtype``."""
    path: tuple[str | int, ...] = ("train",)
    section = reader.mapping(value, path, "train")
    reader.check_keys(section, path, TRAIN_KEYS)
    try:
        return apply_overrides(TrainSpec(dtype=dtype or TrainSpec.dtype), section)
    except OverrideError as exc:
        raise reader.error(path + (exc.key,), exc.message, hint=exc.hint) from None


def read_eval(reader: SpecReader, value: Any) -> EvalSpec:
    path: tuple[str | int, ...] = ("eval",)
    section = reader.mapping(value, path, "eval")
    reader.check_keys(section, path, EVAL_KEYS)
    values = {}
    for key in section:
        values[key] = _integer(reader, section[key], path + (key,), key, low=1)
    return replace(EvalSpec(), **values)


class OverrideError(Exception):
    def __init__(self, key: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.key, self.message, self.hint = key, message, hint


def apply_overrides(train: TrainSpec, values: dict[str, Any]) -> TrainSpec:
    """A copy of ``train`` with ``values`` (from the spec or from CLI flags) checked and set."""
    checked = {key: _train_value(key, value) for key, value in values.items()}
    result = replace(train, **checked)
    if result.epochs is not None and result.train_samples is None:
        raise OverrideError("epochs", "epochs need a fixed training set",
                            hint="set train_samples to its size, or give steps instead")
    return result


_TRAIN_TYPES = {f.name: f.type for f in fields(TrainSpec)}
_TRAIN_CHOICES = {"loss": LOSSES, "scheme": SCHEMES, "schedule": SCHEDULES, "dtype": DTYPES, "device": DEVICES}
_POSITIVE_INTS = ("steps", "epochs", "stage_steps", "batch_size", "train_samples", "checkpoint_every",
                  "validate_every", "validation_samples")


def _train_value(key: str, value: Any) -> Any:
    if key not in _TRAIN_TYPES:
        raise OverrideError(key, f"unknown key '{key}'", hint="known keys: " + ", ".join(TRAIN_KEYS))
    if key in _TRAIN_CHOICES:
        if value not in _TRAIN_CHOICES[key]:
            raise OverrideError(key, f"{value!r} is not a choice for {key}", hint="one of: " + ", ".join(_TRAIN_CHOICES[key]))
        return value
    if key == "train_samples" and value in ("fresh", None):
        return None
    if key in ("epochs", "clip_grad_norm") and value is None:
        return None
    if key in _POSITIVE_INTS or key == "seed":
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "seed" else 1):
            raise OverrideError(key, f"{key} must be a {'non-negative' if key == 'seed' else 'positive'} integer, got {value!r}",
                                hint="e.g. 0" if key == "seed" else "e.g. 64")
        return value
    if key in ("lr", "clip_grad_norm"):
        return _positive_float(key, value)
    if key == "lr_groups":
        if not isinstance(value, dict):
            raise OverrideError(key, "lr_groups maps parameter names to learning rates", hint="e.g. {threshold: 0.01}")
        return {str(name): _positive_float(f"{key}.{name}", rate) for name, rate in value.items()}
    if key == "layer_weights":
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise OverrideError(key, "layer_weights is an expression of the layer index k", hint="e.g. log(k+2)")
        return str(value)
    raise AssertionError(key)


def _positive_float(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise OverrideError(key, f"{key} must be a positive number, got {value!r}", hint="e.g. 0.001")
    return float(value)


def _choice(reader: SpecReader, value: Any, path: tuple[str | int, ...], choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise reader.error(path, f"{value!r} is not a known {what}", hint="one of: " + ", ".join(choices))
    return str(value)


def _number(reader: SpecReader, value: Any, path: tuple[str | int, ...], what: str, low: float | None = None,
            high: float | None = None, strict: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if strict else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        bounds = f" in [{low}, {high}]" if high is not None else (f" above {low}" if low is not None else "")
        raise reader.error(path, f"{what} must be a number{bounds}, got {value!r}")
    return float(value)


def _integer(reader: SpecReader, value: Any, path: tuple[str | int, ...], what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise reader.error(path, f"{what} must be an integer of at least {low}, got {value!r}")
    return value


def read_seed(reader: SpecReader, value: Any, path: tuple[str | int, ...]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise reader.error(path, f"seed must be an integer in 0..2**31-1, got {value!r}")
    return value
