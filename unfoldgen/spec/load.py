"""Turn raw spec data into a validated :class:`Spec`, with located, user-level errors.

Only structure is checked here (keys, types, names, sizes). Expressions stay text until the
symbolic stage parses them with its own whitelisting parser.
"""

from __future__ import annotations

import keyword
import math
import re
from pathlib import Path
from typing import Any

from unfoldgen.errors import SpecError
from unfoldgen.spec.experiment import read_data, read_eval, read_seed, read_train
from unfoldgen.spec.model import (
    ACTIVATIONS,
    DTYPES,
    NETWORK_KINDS,
    OBJECTIVE_POLICIES,
    TYING_CHOICES,
    AlgorithmSpec,
    LearnSpec,
    Located,
    NetworkSpec,
    Spec,
    SupportSelection,
    TensorDecl,
    VariableDecl,
)
from unfoldgen.spec.reader import RESERVED, RESERVED_NAMES, SpecReader

__all__ = ["RESERVED", "RESERVED_NAMES", "SpecReader", "load_spec", "load_spec_text", "read_shape"]
from unfoldgen.spec.yaml_source import MAX_SPEC_BYTES, TOO_LARGE_HINT, format_path, parse_yaml

TOP_KEYS = {
    "name": "a short identifier, used as the output folder name",
    "description": "free text",
    "dims": "named integer sizes",
    "inputs": "per-sample data given at solve time",
    "constants": "problem data fixed when the model is built",
    "params": "named scalars",
    "variables": "the unknowns",
    "objective": "smooth and nonsmooth parts",
    "algorithm": "the iteration to unroll",
    "learn": "what becomes trainable",
    "data": "how samples are made: laws of the constants, the truth and the inputs (for train/eval)",
    "train": "how unfoldgen train trains the network (each key is also a CLI flag)",
    "eval": "how unfoldgen eval compares the network with the classical algorithm",
    "dtype": "the floating dtype of the generated module, float32 or float64 (default: the constants')",
}
REQUIRED_TOP = ("name", "dims", "variables", "algorithm")  # objective: the methods that derive from it say so
MAX_DIM = 10_000_000
MAX_ELEMENTS = 100_000_000
MAX_LAYERS = 100_000
def load_spec(path: str | Path) -> Spec:
    """Read and validate a spec file; every problem is a :class:`SpecError`."""
    file = str(path)
    try:
        if Path(path).stat().st_size > MAX_SPEC_BYTES:  # refuse before reading it into memory
            raise SpecError(f"the spec is larger than {MAX_SPEC_BYTES // 1000} kB", file=file,
                            hint=TOO_LARGE_HINT)
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read the spec: {exc.strerror}", file=file) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError("the spec is not valid UTF-8 text", line=line, file=file,
                        hint="save the file as UTF-8") from None
    return load_spec_text(text, file)


def load_spec_text(text: str, file: str = "<spec>") -> Spec:
    try:
        data, source = parse_yaml(text)
    except SpecError as exc:
        raise exc.located(file) from None
    reader = SpecReader(data, source, file)
    if not isinstance(data, dict):
        raise reader.error((), "the spec must be a mapping of keys such as name, dims, objective",
                           hint="start from one of the specs in specs/")
    reader.check_keys(data, (), TOP_KEYS)
    for key in REQUIRED_TOP:
        if key not in data:
            raise reader.error((), f"missing key '{key}'", hint=f"'{key}' is {TOP_KEYS[key]}")
    taken: set[str] = set()
    name = _read_spec_name(reader, data["name"])
    dims = _read_dims(reader, data["dims"], taken)
    inputs = _read_tensors(reader, data.get("inputs"), ("inputs",), dims, taken)
    constants = _read_tensors(reader, data.get("constants"), ("constants",), dims, taken)
    params = _read_params(reader, data.get("params"), taken)
    variables = _read_variables(reader, data["variables"], dims, taken)
    smooth, nonsmooth = _read_objective(reader, data.get("objective"))
    algorithm = _read_algorithm(reader, data["algorithm"])
    learn = _read_learn(reader, data.get("learn"))
    roles = {n: "dim" for n in dims} | {n: "input" for n in inputs} | {n: "constant" for n in constants}
    roles |= {n: "param" for n in params} | {n: "variable" for n in variables}
    experiment = read_data(reader, data.get("data"), roles, dims)
    dtype = _read_dtype(reader, data.get("dtype"))
    train = read_train(reader, data.get("train"), dtype)
    evaluation = read_eval(reader, data.get("eval"))
    description = data.get("description", "")
    if not isinstance(description, str):
        raise reader.error(("description",), "description must be text")
    return Spec(
        name=name, description=description.strip(), dims=dims, inputs=inputs, constants=constants,
        params=params, variables=variables, smooth=smooth, nonsmooth=nonsmooth,
        algorithm=algorithm, learn=learn, file=file, text=text,
        data=experiment, train=train, evaluation=evaluation, dtype=dtype,
    )


def _read_dtype(reader: SpecReader, value: Any) -> str | None:
    if value is None or value in DTYPES:
        return value
    raise reader.error(("dtype",), f"dtype '{value}' is not one of {', '.join(DTYPES)}",
                       hint="float64 for accuracy near the solution, float32 for speed (the default of torch)")


def _reject_split_terms(reader: SpecReader, terms: list[Any]) -> None:
    """YAML splits a flow list at every comma, parentheses or not: ``[box(u, -lam, lam)]`` is
    three items. Where an item leaves a '(' open and the items after it close it, say so."""
    texts = [term if isinstance(term, str) else "" for term in terms]
    for i, text in enumerate(texts):
        if text.count("(") <= text.count(")"):
            continue
        for j in range(i + 1, len(texts)):
            joined = ", ".join(texts[i:j + 1])
            if joined.count("(") == joined.count(")"):
                raise reader.error(("objective", "nonsmooth", i),
                                   f"the term '{text}' leaves '(' open: YAML split '{joined}' at its commas",
                                   hint=f"put each term on its own line ('- {joined}') or quote it "
                                        f"(nonsmooth: [\"{joined}\"])")


def _read_spec_name(reader: SpecReader, value: Any) -> str:
    if not isinstance(value, str) or not re.match(r"^[A-Za-z][A-Za-z0-9_]{0,63}$", value):
        raise reader.error(("name",), f"name '{value}' is not a valid identifier",
                           hint="use letters, digits and '_', starting with a letter (it becomes a folder and a Python package)")
    if keyword.iskeyword(value):
        raise reader.error(("name",), f"name '{value}' is a Python keyword", hint="pick another name")
    return value


def _read_dims(reader: SpecReader, value: Any, taken: set[str]) -> dict[str, int]:
    dims: dict[str, int] = {}
    for key, size in reader.mapping(value, ("dims",), "dims").items():
        path = ("dims", key)
        reader.name(key, path, taken)
        if isinstance(size, bool) or not isinstance(size, int):
            raise reader.error(path, f"dim '{key}' must be a positive integer, got {size!r}",
                                   hint="a dim is a size, e.g. 'm: 50'")
        if size <= 0:
            raise reader.error(path, f"dim '{key}' must be positive, got {size}", hint="a dim is a size, e.g. 'm: 50'")
        if size > MAX_DIM:
            raise reader.error(path, f"dim '{key}' = {size} is larger than {MAX_DIM}",
                               hint="unfoldgen builds dense CPU networks; use a smaller size")
        dims[key] = size
    if not dims:
        raise reader.error(("dims",), "dims is empty", hint="declare at least one size, e.g. 'n: 100'")
    return dims


def read_shape(reader: SpecReader, value: Any, path: tuple[str | int, ...], dims: dict[str, int]) -> tuple[str | int, ...]:
    if not isinstance(value, list):
        raise reader.error(path, f"a shape must be a list of dims, got {value!r}", hint="e.g. [m, n] or [n]")
    if len(value) > 2:
        raise reader.error(path, "only scalars, vectors and matrices are supported (at most 2 dims)")
    shape: list[str | int] = []
    for i, dim in enumerate(value):
        if isinstance(dim, bool):
            raise reader.error(path + (i,), f"'{dim}' is not a dim")
        if isinstance(dim, int):
            if not 0 < dim <= MAX_DIM:
                raise reader.error(path + (i,), f"a literal size must be in 1..{MAX_DIM}, got {dim}")
        elif dim not in dims:
            raise reader.error(path + (i,), f"unknown dim '{dim}'", hint="declared dims: " + ", ".join(dims))
        shape.append(dim)
    elements = math.prod(d if isinstance(d, int) else dims[d] for d in shape)
    if elements > MAX_ELEMENTS:
        raise reader.error(path, f"this shape has {elements} elements, more than {MAX_ELEMENTS}")
    return tuple(shape)


def _read_tensors(reader: SpecReader, value: Any, path: tuple[str, ...], dims: dict[str, int], taken: set[str]) -> dict[str, TensorDecl]:
    tensors: dict[str, TensorDecl] = {}
    for key, shape in reader.mapping(value, path, path[0]).items():
        here = path + (key,)
        reader.name(key, here, taken)
        tensors[key] = TensorDecl(key, read_shape(reader, shape, here, dims), reader.located(here, key))
    return tensors


def _read_params(reader: SpecReader, value: Any, taken: set[str]) -> dict[str, float]:
    params: dict[str, float] = {}
    for key, number in reader.mapping(value, ("params",), "params").items():
        path = ("params", key)
        reader.name(key, path, taken)
        if key == "L":
            raise reader.error(path, "a param cannot be named 'L': inside algorithm.step, L means the Lipschitz "
                                     "constant the compiler derives, so the param would never be read there",
                               hint="rename the param (e.g. L0); write the step with it and L as you need")
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise reader.error(path, f"param '{key}' must be a finite number, got {number!r}")
        params[key] = float(number)
    return params


def _read_variables(reader: SpecReader, value: Any, dims: dict[str, int], taken: set[str]) -> dict[str, VariableDecl]:
    variables: dict[str, VariableDecl] = {}
    for key, decl in reader.mapping(value, ("variables",), "variables").items():
        path = ("variables", key)
        reader.name(key, path, taken)
        if isinstance(decl, list):
            decl = {"shape": decl}
        decl = reader.mapping(decl, path, f"variable '{key}'")
        reader.check_keys(decl, path, {"shape": "", "init": ""})
        if "shape" not in decl:
            raise reader.error(path, f"variable '{key}' has no shape", hint="e.g. x: {shape: [n], init: zeros}")
        shape = read_shape(reader, decl["shape"], path + ("shape",), dims)
        if not shape:
            raise reader.error(path + ("shape",), "a variable must be a vector or a matrix")
        init = reader.text(decl.get("init", "zeros"), path + ("init",), "init")
        variables[key] = VariableDecl(key, shape, init)
    if not variables:
        raise reader.error(("variables",), "no variables declared", hint="e.g. x: {shape: [n]}")
    return variables


def _read_objective(reader: SpecReader, value: Any) -> tuple[Located | None, tuple[Located, ...]]:
    """The objective, when given: a method that derives its steps from it asks for it when the
    spec is lowered; a written-out iteration needs it only for unsupervised training."""
    if value is None:
        return None, ()
    objective = reader.mapping(value, ("objective",), "objective")
    reader.check_keys(objective, ("objective",), {"smooth": "", "nonsmooth": ""})
    if "smooth" not in objective:
        raise reader.error(("objective",), "missing key 'smooth'",
                           hint="the differentiable part, e.g. '0.5 * sum_squares(A @ x - y)'")
    smooth = reader.text(objective["smooth"], ("objective", "smooth"), "objective.smooth")
    terms = objective.get("nonsmooth") or []
    if isinstance(terms, str):
        terms = [terms]
    if not isinstance(terms, list):
        raise reader.error(("objective", "nonsmooth"), "nonsmooth must be a list of terms",
                           hint="e.g. nonsmooth: [lam * norm1(x)]")
    _reject_split_terms(reader, terms)
    nonsmooth = tuple(
        reader.text(term, ("objective", "nonsmooth", i), "a nonsmooth term") for i, term in enumerate(terms)
    )
    return smooth, nonsmooth


def _read_algorithm(reader: SpecReader, value: Any) -> AlgorithmSpec:
    """``method`` and ``layers``; the method's own keys stay raw, for the method to read."""
    path: tuple[str | int, ...] = ("algorithm",)
    algorithm = reader.mapping(value, path, "algorithm")
    method = algorithm.get("method")
    if not isinstance(method, str):
        raise reader.error(path + ("method",), f"unknown method {method!r}",
                           hint="name the iteration to unroll, e.g. method: proximal_gradient (docs/spec.md lists them)")
    layers = algorithm.get("layers")
    if isinstance(layers, bool) or not isinstance(layers, int) or not 1 <= layers <= MAX_LAYERS:
        raise reader.error(path + ("layers",), f"layers must be an integer in 1..{MAX_LAYERS}, got {layers!r}",
                           hint="unrolled networks have tens of layers; the classical run for comparison is "
                                "eval.classical_iterations")
    options = {key: raw for key, raw in algorithm.items() if key not in ("method", "layers")}
    return AlgorithmSpec(method, layers, reader.located(path, "algorithm"), options, reader)


def _read_learn(reader: SpecReader, value: Any) -> LearnSpec:
    path: tuple[str | int, ...] = ("learn",)
    learn = reader.mapping(value, path, "learn")
    reader.check_keys(learn, path, LEARN_KEYS)
    hyper_path = path + ("hyperparameters",)
    hyper: dict[str, Located] = {}
    for key, tying in reader.mapping(learn.get("hyperparameters"), hyper_path, "learn.hyperparameters").items():
        if tying not in TYING_CHOICES:
            raise reader.error(hyper_path + (key,), f"'{tying}' is not a tying",
                               hint="one of: " + ", ".join(TYING_CHOICES))
        hyper[str(key)] = reader.located(hyper_path + (key,), tying)
    objective = None
    if "objective" in learn:
        if learn["objective"] not in OBJECTIVE_POLICIES:
            raise reader.error(path + ("objective",), f"unknown objective policy {learn['objective']!r}",
                               hint="one of: " + ", ".join(OBJECTIVE_POLICIES))
        objective = reader.located(path + ("objective",), learn["objective"])
    seed = read_seed(reader, learn.get("seed", 0), path + ("seed",))
    return LearnSpec(
        hyperparameters=hyper, objective=objective,
        support_selection=_read_support(reader, learn.get("support_selection"), path + ("support_selection",)),
        correction=_read_network(reader, learn.get("correction"), path + ("correction",), "mlp"),
        prox=_read_network(reader, learn.get("prox"), path + ("prox",), None),
        seed=seed,
    )


LEARN_KEYS = {
    "hyperparameters": "paradigm 1: step sizes, thresholds, penalties, momentum",
    "objective": "paradigm 2: learn the linear maps of the update (untied, tied, coupled, analytic)",
    "support_selection": "paradigm 2 option: entries of largest magnitude skip the threshold",
    "correction": "paradigm 3: a small MLP adds a correction to each layer",
    "prox": "paradigm 4: a learned operator in place of the prox",
    "seed": "seed of the networks' random initialisation",
}
NETWORK_KEYS = {
    "network": "mlp or cnn (cnn: 3x3 convolutions, for matrix variables)",
    "widths": "hidden layer widths (mlp) or channel counts (cnn)",
    "activation": "relu, tanh or softplus",
    "tying": "per_layer or shared",
}


def _read_support(reader: SpecReader, value: Any, path: tuple[str | int, ...]) -> SupportSelection | None:
    if value is None:
        return None
    section = reader.mapping(value, path, "support_selection")
    reader.check_keys(section, path, {"fraction": "share added per layer", "max_fraction": "the cap"})
    numbers = []
    for key in ("fraction", "max_fraction"):
        number = section.get(key)
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0 <= number <= 1:
            raise reader.error(path + (key,), f"{key} must be a number in [0, 1], got {number!r}",
                               hint="LISTA-CPSS uses fraction: 0.012, max_fraction: 0.13")
        numbers.append(float(number))
    return SupportSelection(numbers[0], numbers[1], reader.located(path, "support_selection"))


def _read_network(reader: SpecReader, value: Any, path: tuple[str | int, ...], default_kind: str | None) -> NetworkSpec | None:
    if value is None:
        return None
    section = reader.mapping(value, path, format_path(path))
    allowed = dict(NETWORK_KEYS) if default_kind is None else {k: v for k, v in NETWORK_KEYS.items() if k != "network"}
    reader.check_keys(section, path, allowed)
    kind = section.get("network", default_kind or "mlp")
    if kind not in NETWORK_KINDS:
        raise reader.error(path + ("network",), f"unknown network {kind!r}", hint="one of: " + ", ".join(NETWORK_KINDS))
    widths = section.get("widths", [32])
    if not isinstance(widths, list) or not widths or any(
            isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= 100_000 for w in widths):
        raise reader.error(path + ("widths",), f"widths must be a non-empty list of positive integers, got {widths!r}",
                           hint="e.g. widths: [64, 64]")
    activation = section.get("activation", "relu")
    if activation not in ACTIVATIONS:
        raise reader.error(path + ("activation",), f"unknown activation {activation!r}", hint="one of: " + ", ".join(ACTIVATIONS))
    tying = section.get("tying", "per_layer")
    if tying not in ("per_layer", "shared"):
        raise reader.error(path + ("tying",), f"'{tying}' is not a tying for a network", hint="per_layer or shared")
    return NetworkSpec(kind, tuple(widths), activation, tying, reader.located(path, format_path(path)))
