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
from unfoldgen.spec.model import (
    METHODS,
    TYING_CHOICES,
    AlgorithmSpec,
    LearnSpec,
    Located,
    Spec,
    TensorDecl,
    VariableDecl,
)
from unfoldgen.spec.yaml_source import SourceMap, format_path, parse_yaml

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
}
REQUIRED_TOP = ("name", "dims", "variables", "objective", "algorithm")
MAX_DIM = 10_000_000
MAX_ELEMENTS = 100_000_000
MAX_LAYERS = 100_000
# Names the generated code uses itself, or that would read ambiguously in a spec.
RESERVED_NAMES = {
    "L", "k", "self", "torch", "np", "numba", "nn", "math", "params", "batch", "layers",
    "sum", "abs", "sqrt", "exp", "log", "max", "min", "sign", "zeros", "inf", "pi", "e",
    "norm1", "norm2", "nuclear", "nonneg", "box", "ball2", "simplex", "sum_squares",
    "elastic_net", "quad_form", "dot", "trace", "all_layers", "dtype", "device", "out",
}
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,30}$")


class _Reader:
    """Reads one spec's raw data, remembering where each value came from."""

    def __init__(self, data: Any, source: SourceMap, file: str) -> None:
        self.data = data
        self.source = source
        self.file = file

    def error(self, path: tuple[str | int, ...], message: str, hint: str | None = None) -> SpecError:
        return SpecError(
            message, key_path=format_path(path) or None, line=self.source.line_of(path),
            hint=hint, file=self.file,
        )

    def located(self, path: tuple[str | int, ...], text: str) -> Located:
        return Located(text, format_path(path), self.source.line_of(path))

    def mapping(self, value: Any, path: tuple[str | int, ...], what: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(path, f"{what} must be a mapping", hint=f"write it as 'key: value' lines under {format_path(path)}")
        return value

    def check_keys(self, value: dict[str, Any], path: tuple[str | int, ...], allowed: dict[str, str]) -> None:
        for key in value:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise self.error(path + (key,), f"unknown key '{key}'", hint=f"known keys here: {known}")

    def name(self, name: str, path: tuple[str | int, ...], taken: set[str]) -> str:
        if not isinstance(name, str) or not _IDENTIFIER.match(name):
            raise self.error(path, f"'{name}' is not a valid name",
                             hint="use a letter followed by letters, digits or '_' (at most 31 characters)")
        if keyword.iskeyword(name) or name in RESERVED_NAMES or name.startswith("__"):
            raise self.error(path, f"'{name}' is a reserved name",
                             hint="pick another name; these are reserved: " + ", ".join(sorted(RESERVED_NAMES)))
        if name in taken:
            raise self.error(path, f"the name '{name}' is declared twice",
                             hint="dims, inputs, constants, params and variables share one namespace")
        taken.add(name)
        return name

    def text(self, value: Any, path: tuple[str | int, ...], what: str) -> Located:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.error(path, f"{what} must be an expression written as text")
        return self.located(path, str(value))


def load_spec(path: str | Path) -> Spec:
    """Read and validate a spec file; every problem is a :class:`SpecError`."""
    file = str(path)
    try:
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
    reader = _Reader(data, source, file)
    if not isinstance(data, dict):
        raise reader.error((), "the spec must be a mapping of keys such as name, dims, objective")
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
    smooth, nonsmooth = _read_objective(reader, data["objective"])
    algorithm = _read_algorithm(reader, data["algorithm"])
    learn = _read_learn(reader, data.get("learn"))
    description = data.get("description", "")
    if not isinstance(description, str):
        raise reader.error(("description",), "description must be text")
    return Spec(
        name=name, description=description.strip(), dims=dims, inputs=inputs, constants=constants,
        params=params, variables=variables, smooth=smooth, nonsmooth=nonsmooth,
        algorithm=algorithm, learn=learn, file=file, text=text,
    )


def _read_spec_name(reader: _Reader, value: Any) -> str:
    if not isinstance(value, str) or not re.match(r"^[A-Za-z][A-Za-z0-9_]{0,63}$", value):
        raise reader.error(("name",), f"name '{value}' is not a valid identifier",
                           hint="use letters, digits and '_', starting with a letter (it becomes a folder and a Python package)")
    if keyword.iskeyword(value):
        raise reader.error(("name",), f"name '{value}' is a Python keyword", hint="pick another name")
    return value


def _read_dims(reader: _Reader, value: Any, taken: set[str]) -> dict[str, int]:
    dims: dict[str, int] = {}
    for key, size in reader.mapping(value, ("dims",), "dims").items():
        path = ("dims", key)
        reader.name(key, path, taken)
        if isinstance(size, bool) or not isinstance(size, int):
            raise reader.error(path, f"dim '{key}' must be a positive integer, got {size!r}")
        if size <= 0:
            raise reader.error(path, f"dim '{key}' must be positive, got {size}")
        if size > MAX_DIM:
            raise reader.error(path, f"dim '{key}' = {size} is larger than {MAX_DIM}",
                               hint="unfoldgen builds dense CPU networks; use a smaller size")
        dims[key] = size
    if not dims:
        raise reader.error(("dims",), "dims is empty", hint="declare at least one size, e.g. 'n: 100'")
    return dims


def _read_shape(reader: _Reader, value: Any, path: tuple[str | int, ...], dims: dict[str, int]) -> tuple[str | int, ...]:
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


def _read_tensors(reader: _Reader, value: Any, path: tuple[str, ...], dims: dict[str, int], taken: set[str]) -> dict[str, TensorDecl]:
    tensors: dict[str, TensorDecl] = {}
    for key, shape in reader.mapping(value, path, path[0]).items():
        here = path + (key,)
        reader.name(key, here, taken)
        tensors[key] = TensorDecl(key, _read_shape(reader, shape, here, dims), reader.located(here, key))
    return tensors


def _read_params(reader: _Reader, value: Any, taken: set[str]) -> dict[str, float]:
    params: dict[str, float] = {}
    for key, number in reader.mapping(value, ("params",), "params").items():
        path = ("params", key)
        reader.name(key, path, taken)
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise reader.error(path, f"param '{key}' must be a finite number, got {number!r}")
        params[key] = float(number)
    return params


def _read_variables(reader: _Reader, value: Any, dims: dict[str, int], taken: set[str]) -> dict[str, VariableDecl]:
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
        shape = _read_shape(reader, decl["shape"], path + ("shape",), dims)
        if not shape:
            raise reader.error(path + ("shape",), "a variable must be a vector or a matrix")
        init = reader.text(decl.get("init", "zeros"), path + ("init",), "init")
        variables[key] = VariableDecl(key, shape, init)
    if not variables:
        raise reader.error(("variables",), "no variables declared", hint="e.g. x: {shape: [n]}")
    return variables


def _read_objective(reader: _Reader, value: Any) -> tuple[Located, tuple[Located, ...]]:
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
    nonsmooth = tuple(
        reader.text(term, ("objective", "nonsmooth", i), "a nonsmooth term") for i, term in enumerate(terms)
    )
    return smooth, nonsmooth


def _read_algorithm(reader: _Reader, value: Any) -> AlgorithmSpec:
    path: tuple[str | int, ...] = ("algorithm",)
    algorithm = reader.mapping(value, path, "algorithm")
    reader.check_keys(algorithm, path, {"method": "", "layers": "", "step": ""})
    method = algorithm.get("method")
    if method not in METHODS:
        raise reader.error(path + ("method",), f"unknown method {method!r}", hint="one of: " + ", ".join(METHODS))
    layers = algorithm.get("layers")
    if isinstance(layers, bool) or not isinstance(layers, int) or not 1 <= layers <= MAX_LAYERS:
        raise reader.error(path + ("layers",), f"layers must be an integer in 1..{MAX_LAYERS}, got {layers!r}")
    step = reader.text(algorithm.get("step", "1/L"), path + ("step",), "step")
    return AlgorithmSpec(method, layers, step, reader.located(path, "algorithm"))


def _read_learn(reader: _Reader, value: Any) -> LearnSpec:
    path: tuple[str | int, ...] = ("learn",)
    learn = reader.mapping(value, path, "learn")
    reader.check_keys(learn, path, {"hyperparameters": "paradigm 1: step sizes, thresholds, momentum"})
    hyper_path = path + ("hyperparameters",)
    hyper: dict[str, Located] = {}
    for key, tying in reader.mapping(learn.get("hyperparameters"), hyper_path, "learn.hyperparameters").items():
        if tying not in TYING_CHOICES:
            raise reader.error(hyper_path + (key,), f"'{tying}' is not a tying",
                               hint="one of: " + ", ".join(TYING_CHOICES))
        hyper[str(key)] = reader.located(hyper_path + (key,), tying)
    return LearnSpec(hyperparameters=hyper)
