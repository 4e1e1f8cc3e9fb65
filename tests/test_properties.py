"""Property-based tests: random valid specs drawn from the grammar compile and are right.

Hypothesis draws a spec from the supported pieces (smooth terms, a nonsmooth term, the shape of
the unknown, the algorithm, which hyperparameters to learn) and checks that it builds into
lint-clean files, that its derived gradient equals autograd of its objective, and that the
PyTorch module, the Numba kernel and the NumPy loop compute the same network. The draws are
derandomized, so CI sees the same examples every run; ``UNFOLDGEN_PROPERTY_EXAMPLES`` asks for
more (a local soak test).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from conftest import Built
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_gradient import assert_gradient_matches_autograd

from unfoldgen.compiler import build
from unfoldgen.spec import load_spec_text
from unfoldgen.training.network import api_keywords, run_network

EXTRA = int(os.environ.get("UNFOLDGEN_PROPERTY_EXAMPLES", "0"))
FAST = settings(max_examples=EXTRA or 40, deadline=None, derandomize=not EXTRA,
                suppress_health_check=[HealthCheck.too_slow])
COMPILING = settings(max_examples=EXTRA or 8, deadline=None, derandomize=not EXTRA,
                     suppress_health_check=[HealthCheck.too_slow])

# Smooth terms, by the shape of the unknown; {v} is the unknown's name. The data term is always
# there (it reads the input); the others are added at random.
DATA_TERM = "{c} * sum_squares(A @ {v} - y)"
EXTRA_SMOOTH = {
    "vector": ["mu * sum_squares({v})", "0.5 * quad_form({v}, Q)", "dot(c, {v})", "0.5 * sum_squares(D @ {v})"],
    "matrix": ["mu * sum_squares({v})", "0.5 * sum_squares(D @ {v})", "trace(C.T @ {v})"],
}
# Nonsmooth terms: (term, is a constraint). Constraints allow projected gradient.
NONSMOOTH = {
    "vector": [("lam * norm1({v})", False), ("lam * norm2({v})", False), ("lam * sum_squares({v})", False),
               ("elastic_net({v}, lam, mu)", False), ("nonneg({v})", True), ("box({v}, lo, hi)", True),
               ("ball2({v}, r)", True), ("simplex({v})", True)],
    "matrix": [("lam * norm1({v})", False), ("lam * nuclear({v})", False), ("nonneg({v})", True),
               ("box({v}, lo, hi)", True)],
}
CONSTANT_SHAPES = {"A": ["m", "n"], "D": ["p", "n"], "Q": ["n", "n"], "c": ["n"], "C": ["n", "q"]}


@dataclass(frozen=True)
class Drawn:
    spec: dict[str, Any]

    @property
    def text(self) -> str:
        return yaml.safe_dump(self.spec, sort_keys=False)


@st.composite
def specs(draw: st.DrawFn) -> Drawn:
    shape = draw(st.sampled_from(["vector", "matrix"]))
    v = draw(st.sampled_from(["x", "z", "theta"]))
    dims = {"m": draw(st.integers(2, 5)), "n": draw(st.integers(2, 5)), "p": draw(st.integers(1, 4))}
    if shape == "matrix":
        dims["q"] = draw(st.integers(2, 3))
    smooth = [DATA_TERM.format(c=draw(st.sampled_from(["0.5", "1.5"])), v=v)]
    smooth += [t.format(v=v) for t in draw(st.lists(st.sampled_from(EXTRA_SMOOTH[shape]), max_size=2, unique=True))]
    nonsmooth = draw(st.none() | st.sampled_from(NONSMOOTH[shape]))
    methods = ["gradient_descent", "fista"] if nonsmooth is None else ["proximal_gradient", "fista", "admm", "hqs"]
    if nonsmooth is not None and nonsmooth[1]:
        methods.append("projected_gradient")
    method = draw(st.sampled_from(methods))
    text = " + ".join(smooth)
    constants = {name: shape for name, shape in CONSTANT_SHAPES.items() if name in _names(text)}
    unknown_shape = ["n"] if shape == "vector" else ["n", "q"]
    used_dims = {"m", *unknown_shape} | {d for c in constants.values() for d in c}
    spec: dict[str, Any] = {
        "name": "drawn",
        "dims": {d: size for d, size in dims.items() if d in used_dims},
        "inputs": {"y": ["m"] if shape == "vector" else ["m", "q"]},
        "constants": constants,
        "params": {"lam": draw(st.sampled_from([0.05, 0.3])), "mu": draw(st.sampled_from([0.1, 0.7])),
                   "lo": -0.5, "hi": 0.75, "r": 1.5},
        "variables": {v: {"shape": unknown_shape, "init": "zeros"}},
        "objective": {"smooth": text},
        "algorithm": {"method": method, "layers": draw(st.integers(1, 4))},
    }
    if nonsmooth is not None:
        spec["objective"]["nonsmooth"] = [nonsmooth[0].format(v=v)]
    spec["params"] = {k: value for k, value in spec["params"].items() if _reads(spec, k)}
    learn = draw(st.sampled_from(["nothing", "per_layer", "shared"]))
    if learn != "nothing":
        name = "penalty" if method in ("admm", "hqs") else "step"
        spec["learn"] = {"hyperparameters": {name: learn}}
    return Drawn(spec)


def _reads(spec: dict[str, Any], param: str) -> bool:
    return param in _names(spec["objective"]["smooth"] + " " + " ".join(spec["objective"].get("nonsmooth", [])))


def _names(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_]\w*", text))


def random_constants(program: Any, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Well-conditioned constants: Q symmetric positive semidefinite, so the objective is convex."""
    constants = {name: rng.standard_normal(shape) / 2 for name, shape in program.constants.items()}
    if "Q" in constants:
        constants["Q"] = constants["Q"].T @ constants["Q"] / len(constants["Q"])
    return constants


@given(specs())
@FAST
def test_random_specs_build_lint_clean_and_their_gradient_matches_autograd(drawn: Drawn) -> None:
    spec = load_spec_text(drawn.text, "drawn.yaml")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "drawn.yaml"
        path.write_text(drawn.text)
        result = build(path, Path(folder) / "out")
        lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "-q", str(result.directory)],
                              check=False, capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout + drawn.text
    assert_gradient_matches_autograd(spec, drawn.text)


@given(specs())
@COMPILING
def test_random_specs_run_the_same_in_torch_numba_and_numpy(drawn: Drawn) -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "drawn.yaml"
        path.write_text(drawn.text)
        result = build(path, Path(folder) / "out")
        built = Built(result.directory, result.program)
        model = built.model.Unfolded(**random_constants(result.program, rng), dtype=torch.float64)
        with torch.no_grad():
            for parameter in model.parameters():  # learned values, not only the classical ones
                parameter.mul_(1 + 0.1 * torch.rand_like(parameter))
        inputs = {name: rng.standard_normal((3, *shape)) for name, shape in result.program.inputs.items()}
        with torch.no_grad():
            expected = {k: v.numpy() for k, v in model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).items()}
        params = model.kernel_params()
        kernel = built.kernel.solve(params, **inputs)
        plain = built.numpy_loop.solve(params, **inputs)
    for name, value in expected.items():
        assert np.isfinite(value).all(), drawn.text
        scale = max(np.linalg.norm(value), 1e-12)
        assert np.linalg.norm(kernel[name] - value) / scale < 1e-8, drawn.text
        assert np.linalg.norm(plain[name] - value) / scale < 1e-8, drawn.text


# Names a spec may use although the emitted code (or the compiler) uses the same spelling: the
# issue's list and the names the compiler makes up. Drawn specs are renamed with them.
HOSTILE_NAMES = ["b", "e", "i", "j", "k", "out", "batch", "depth", "history", "threshold", "step", "tmp0", "tmp1",
                 "prox_x", "prox_theta", "lipschitz", "forward", "to", "train", "state_dict", "grad_x", "x_momentum",
                 "x_next", "momentum", "penalty", "dual_step", "w0", "b0", "hidden0", "scale", "prox_step", "inverse",
                 "pi", "inf", "arrays", "x_dual", "x_solve", "np", "torch", "math", "self", "layers", "matvec",
                 "unrolled", "dtype", "device", "params", "on_layer", "all_layers", "range", "LAYERS", "solve",
                 "Unfolded", "super", "reference", "hidden", "numba", "prange", "SUPPORT", "len"]
GENERIC_NAMES = ["x", "z", "theta", "y", "A", "D", "Q", "c", "C", "lam", "mu", "lo", "hi", "r", "m", "n", "p", "q"]


def renamed(drawn: Drawn, names: list[str]) -> Drawn:
    """The drawn spec with its names replaced, in its keys and in every expression."""
    mapping = dict(zip(GENERIC_NAMES, names, strict=True))
    pattern = re.compile(r"\b(" + "|".join(GENERIC_NAMES) + r")\b")
    text = pattern.sub(lambda match: mapping[match[1]], drawn.text)
    spec = yaml.safe_load(text)
    spec["algorithm"] = drawn.spec["algorithm"]  # its keys are the language's words
    spec["name"] = "drawn"
    return Drawn(spec)


@given(specs(), st.permutations(HOSTILE_NAMES))
@settings(max_examples=EXTRA or 6, deadline=None, derandomize=not EXTRA, suppress_health_check=[HealthCheck.too_slow])
def test_specs_named_like_the_emitted_code_build_lint_clean_and_agree(drawn: Drawn, names: list[str]) -> None:
    """Issue 16, item 6: names from the list above, drawn for every role, keep their meaning."""
    hostile = renamed(drawn, names[: len(GENERIC_NAMES)])
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "drawn.yaml"
        path.write_text(hostile.text)
        result = build(path, Path(folder) / "out")
        lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "-q", str(result.directory)],
                              check=False, capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout + hostile.text
        built = Built(result.directory, result.program)
        program = result.program
        model = built.model.Unfolded(**random_constants_named(program, rng), **api_keywords(program, dtype=torch.float64))
        inputs = {name: rng.standard_normal((3, *shape)) for name, shape in program.inputs.items()}
        with torch.no_grad():
            tensors = {k: torch.from_numpy(v) for k, v in inputs.items()}
            expected = {k: v.numpy() for k, v in run_network(model, program, tensors).items()}
        params = model.kernel_params()
        kernel = built.kernel.solve(params, **inputs)
        plain = built.numpy_loop.solve(params, **inputs)
    for name, value in expected.items():
        scale = max(np.linalg.norm(value), 1e-12)
        assert np.linalg.norm(kernel[name] - value) / scale < 1e-8, hostile.text
        assert np.linalg.norm(plain[name] - value) / scale < 1e-8, hostile.text


def random_constants_named(program: Any, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Constants as random_constants makes them, whatever their names: square ones positive
    semidefinite (the quadratic form's), so the objective stays convex."""
    constants = {name: rng.standard_normal(shape) / 2 for name, shape in program.constants.items()}
    return {name: value.T @ value / len(value) if value.ndim == 2 and value.shape[0] == value.shape[1] else value
            for name, value in constants.items()}
