"""Names: a spec name never collides with a name of the emitted code.

Names the compiler allocates (learned hyperparameters, the prox functions' names and their
hyperparameter arguments, kernel buffers, networks) move around the spec's names: a param
called ``threshold`` or ``step`` and an input called ``tmp0`` keep their spelling and their
meaning. So do the names of the emitted code itself (imports, the API's keywords, ``self``,
module-level names, builtins): where a spec takes one, the emitted code spells its own around
it (``unfoldgen/backends/hygiene.py``); a test keeps that list complete over every bundled spec.
"""

from __future__ import annotations

import ast
import builtins
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT, SPECS, Built, write_spec

import unfoldgen
from unfoldgen.backends.hygiene import GLOBALS, MODULE_NAMES, OWN
from unfoldgen.backends.numba_kernel import lower_kernel
from unfoldgen.backends.resolver import MODULE_ATTRIBUTES
from unfoldgen.compiler import build, compile_program
from unfoldgen.errors import SpecError
from unfoldgen.ir import Program, lower
from unfoldgen.spec import load_spec
from unfoldgen.spec.load import RESERVED_NAMES
from unfoldgen.training.network import api_keywords, run_network, weights_payload


def allocated_or_spec_names(program: Program) -> set[str]:
    names = program.names() | {p.function_name for p in program.proxes} | {n.name for n in program.networks}
    names |= {f"{p.name}_raw" for p in program.parameters} | {b.name for b in lower_kernel(program).buffers}
    return names


def module_level_names(source: str) -> set[str]:
    """What a file binds at module level (every function sees it) and the builtins it reads."""
    tree = ast.parse(source)
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, ast.Assign):
            found |= {n.id for target in node.targets for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    found |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and hasattr(builtins, n.id)}
    return {name for name in found if not name.startswith("_")}  # spec names start with a letter


def function_scopes(source: str) -> list[tuple[set[str], set[str]]]:
    """For each function of a file: the names it binds (parameters, assignments, loop targets)
    and the module-level names it reads."""
    tree = ast.parse(source)
    bound_at_module = module_level_names(source)
    scopes = []
    for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        arguments = function.args
        bound = {a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)}
        body = [n for statement in function.body for n in ast.walk(statement)]
        own_scope = {id(n) for c in body if isinstance(c, ast.comprehension) for n in ast.walk(c.target)}
        bound |= {n.id for n in body if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and id(n) not in own_scope}
        read = {n.id for n in body if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        scopes.append((bound, {name for name in read - bound if name in bound_at_module}))
    return scopes


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_globals_read_where_spec_names_live_are_spelled_around_them(path: Path) -> None:
    """Every global that a function holding spec names reads is one the emitted code spells
    around the spec's names (hygiene.GLOBALS), or a name no spec can take (a '_' name, a word
    of the spec language), or one allocated around the spec's; and every module-level name is
    one an exported kernel does not fold a value into (hygiene.MODULE_NAMES)."""
    program = lower(load_spec(path))
    spec_names = allocated_or_spec_names(program)
    for name, text in compile_program(program).items():
        if not name.endswith(".py"):
            continue
        for bound, read in function_scopes(text):
            if bound & spec_names:
                unspelled = read - set(GLOBALS) - set(OWN) - RESERVED_NAMES - spec_names
                assert not unspelled, f"{path.stem}/{name} reads {sorted(unspelled)}: add them to hygiene.GLOBALS"
        unfoldable = module_level_names(text) - spec_names - RESERVED_NAMES - MODULE_NAMES
        assert not unfoldable, f"{path.stem}/{name} binds {sorted(unfoldable)}: add them to hygiene.MODULE_NAMES"


LASSO = yaml.safe_load((ROOT / "specs" / "ista_lasso.yaml").read_text())
# Names the compiler would use itself, each given a role whose effect the reference below sees.
# Besides those: the imports, the API's keywords, the receiver, module-level names and builtins.
RIDGE_PARAMS = {"threshold": 0.3, "step": 0.2, "scale": 0.1, "prox_step": 0.05, "threshold_raw": 0.15,
                "e": 0.01, "pi": 0.02, "inf": 0.03, "j": 0.04, "lipschitz": 0.05, "train": 0.06, "state_dict": 0.07,
                "np": 0.011, "math": 0.012, "range": 0.013, "LAYERS": 0.014, "len": 0.015, "super": 0.016,
                "int": 0.017}
LINEAR_CONSTANTS = ("prox_x", "tmp1", "i", "out", "forward", "to", "torch", "matvec", "unrolled", "dtype",
                    "device", "reference", "generator", "SEED", "Unfolded", "solve")
LINEAR_INPUTS = ("tmp0", "k", "b", "batch", "depth", "history", "arrays", "layers", "all_layers", "on_layer",
                 "self", "params", "hidden", "array", "matvec_t", "prange", "ValueError", "inputs")


def reference_ista(A, y, lam, layers, ridge, linear):
    """ISTA written here, independently: x <- soft(x - t grad, t lam), t = 1/L, for
    0.5 ||A x - y||^2 + ridge ||x||^2 + <linear, x> + lam ||x||_1."""
    step = 1 / np.linalg.norm(A.T @ A + 2 * ridge * np.eye(A.shape[1]), 2)
    x = np.zeros((y.shape[0], A.shape[1]))
    for _ in range(layers):
        v = x - step * ((x @ A.T - y) @ A + 2 * ridge * x + linear)
        x = np.sign(v) * np.maximum(np.abs(v) - step * lam, 0)
    return x


def test_spec_names_keep_their_meaning_where_the_compiler_would_use_them(tmp_path: Path) -> None:
    """Each of these names used to be accepted and then emit a kernel with a duplicate argument,
    or a module where the param was silently the learned hyperparameter, or a helper shadowed by
    a constant. Built together, the network must be ISTA on the objective as written."""
    data = yaml.safe_load(yaml.safe_dump(LASSO))
    data["dims"] = {"m": 5, "n": 7}
    data["algorithm"]["layers"] = 6
    data["learn"] = {"hyperparameters": {"threshold": "per_layer", "step": "shared"}}
    data["params"].update(RIDGE_PARAMS)
    data["constants"].update({name: ["n"] for name in LINEAR_CONSTANTS})
    data["inputs"].update({name: ["n"] for name in LINEAR_INPUTS})
    data["objective"]["smooth"] += "".join(f" + {name} * sum_squares(x)" for name in RIDGE_PARAMS)
    data["objective"]["smooth"] += "".join(f" + dot({name}, x)" for name in (*LINEAR_CONSTANTS, *LINEAR_INPUTS))
    result = build(write_spec(tmp_path, data), tmp_path / "out")
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "-q", str(result.directory)],
                          capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout
    built = Built(result.directory, result.program)
    rng = np.random.default_rng(3)
    A = rng.standard_normal((5, 7)) / 2
    y = rng.standard_normal((4, 5))
    constants = {name: rng.standard_normal(7) for name in LINEAR_CONSTANTS}
    inputs = {"y": y, **{name: np.tile(rng.standard_normal(7), (4, 1)) for name in LINEAR_INPUTS}}
    linear = sum(constants.values()) + sum(inputs[name] for name in LINEAR_INPUTS)
    expected = reference_ista(A, y, 0.1, 6, sum(RIDGE_PARAMS.values()), linear)
    program = result.program
    model = built.model.Unfolded(A=A, **constants, **api_keywords(program, dtype=torch.float64))
    tensors = {name: torch.from_numpy(value) for name, value in inputs.items()}
    with torch.no_grad():
        np.testing.assert_allclose(run_network(model, program, tensors)["x"].numpy(), expected, rtol=1e-10, atol=1e-12)
        layers = run_network(model, program, tensors, layers=2, all_layers=True)  # the API's renamed keywords
    two = reference_ista(A, y, 0.1, 2, sum(RIDGE_PARAMS.values()), linear)
    np.testing.assert_allclose(layers[-1]["x"].numpy(), two, rtol=1e-10, atol=1e-12)
    params = model.kernel_params()
    kernel = built.kernel
    np.testing.assert_allclose(kernel.solve(params, **inputs)["x"], expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(built.numpy_loop.solve(params, **inputs)["x"], expected, rtol=1e-10, atol=1e-12)
    kernel.BLAS_MIN_BATCH = 1  # the batched path, whose driver has locals of its own
    np.testing.assert_allclose(kernel.solve(params, **inputs)["x"], expected, rtol=1e-10, atol=1e-12)
    assert {"forward", "to"} <= set(params)  # kernel_params() keys keep the spec's spelling
    torch.save(weights_payload(model, result.program), tmp_path / "weights.pt")
    loaded = unfoldgen.load(write_spec(tmp_path, data), tmp_path / "weights.pt")  # constants from the weights
    with torch.no_grad():
        np.testing.assert_allclose(run_network(loaded, program, tensors)["x"].numpy(), expected, rtol=1e-10, atol=1e-12)


def test_module_attributes_cover_torch_nn_module() -> None:
    """A constant named like an attribute of torch.nn.Module is stored under another name."""
    public = {name for name in dir(torch.nn.Module) if not name.startswith("_")}
    assert public <= MODULE_ATTRIBUTES, sorted(public - MODULE_ATTRIBUTES)


def test_a_param_named_L_is_refused_with_the_reason() -> None:
    data = yaml.safe_load(yaml.safe_dump(LASSO))
    data["params"]["L"] = 2.0
    from unfoldgen.spec import load_spec_text

    with pytest.raises(SpecError, match="inside algorithm.step, L means the Lipschitz constant"):
        load_spec_text(yaml.safe_dump(data), "spec.yaml")


def test_a_variable_named_like_a_network_local_keeps_its_meaning(tmp_path: Path) -> None:
    """ISTA with a learned correction (paradigm 3) on a variable called w0: the network's weight
    arguments move around it. Untrained, the correction's last layer is zero, so the network is
    ISTA; module, kernel and NumPy loop agree with the reference."""
    data = yaml.safe_load(yaml.safe_dump(LASSO))
    data["dims"] = {"m": 5, "n": 7}
    data["algorithm"]["layers"] = 3
    data["variables"] = {"w0": {"shape": ["n"], "init": "zeros"}}
    data["objective"] = {"smooth": "0.5 * sum_squares(A @ w0 - y)", "nonsmooth": ["lam * norm1(w0)"]}
    data["learn"] = {"correction": {"widths": [4], "activation": "relu", "tying": "per_layer"}}
    result = build(write_spec(tmp_path, data), tmp_path / "out")
    built = Built(result.directory, result.program)
    rng = np.random.default_rng(5)
    A, y = rng.standard_normal((5, 7)) / 2, rng.standard_normal((3, 5))
    model = built.model.Unfolded(A=A, dtype=torch.float64)
    expected = reference_ista(A, y, 0.1, 3, 0.0, 0.0)
    with torch.no_grad():
        np.testing.assert_allclose(model(y=y)["w0"].numpy(), expected, rtol=1e-10, atol=1e-12)
    params = model.kernel_params()
    np.testing.assert_allclose(built.kernel.solve(params, y=y)["w0"], expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(built.numpy_loop.solve(params, y=y)["w0"], expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("name", "reason"), [("sum", "function of the spec language"),
                                              ("norm1", "prox function of the spec language"),
                                              ("soft_threshold", "prox helper"), ("lambda", "Python keyword")])
def test_a_reserved_name_is_refused_with_its_reason(name: str, reason: str) -> None:
    from unfoldgen.spec import load_spec_text

    data = yaml.safe_load(yaml.safe_dump(LASSO))
    data["params"][name] = 1.0
    with pytest.raises(SpecError, match=f"'{name}' is a reserved name: .*{reason}"):
        load_spec_text(yaml.safe_dump(data), "spec.yaml")
