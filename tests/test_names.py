"""Names: a spec name never collides with a name of the emitted code.

Names the compiler allocates (learned hyperparameters, the prox functions' names and their
hyperparameter arguments, kernel buffers, networks) move around the spec's names: a param
called ``threshold`` or ``step`` and an input called ``tmp0`` keep their spelling and their
meaning. Module-level names of the emitted files and the builtins they call are reserved; a test
keeps that list complete over every bundled spec.
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
from unfoldgen.backends.numba_kernel import lower_kernel
from unfoldgen.backends.torch_printer import MODULE_ATTRIBUTES
from unfoldgen.compiler import build, compile_program
from unfoldgen.errors import SpecError
from unfoldgen.ir import Program, lower
from unfoldgen.spec import load_spec
from unfoldgen.spec.load import RESERVED_NAMES
from unfoldgen.training.network import weights_payload


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


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_module_level_names_of_the_emitted_files_are_reserved(path: Path) -> None:
    program = lower(load_spec(path))
    spec_names = allocated_or_spec_names(program)
    for name, text in compile_program(program).items():
        if name.endswith(".py"):
            missing = module_level_names(text) - spec_names - RESERVED_NAMES
            assert not missing, f"{path.stem}/{name} binds {sorted(missing)}: add them to RESERVED_NAMES"


LASSO = yaml.safe_load((ROOT / "specs" / "ista_lasso.yaml").read_text())
# Names the compiler would use itself, each given a role whose effect the reference below sees.
RIDGE_PARAMS = {"threshold": 0.3, "step": 0.2, "scale": 0.1, "prox_step": 0.05, "threshold_raw": 0.15,
                "e": 0.01, "pi": 0.02, "inf": 0.03, "j": 0.04, "lipschitz": 0.05, "train": 0.06, "state_dict": 0.07}
LINEAR_CONSTANTS = ("prox_x", "tmp1", "i", "out", "forward", "to")
LINEAR_INPUTS = ("tmp0", "k", "b", "batch", "depth", "history", "arrays")


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
    model = built.model.Unfolded(A=A, dtype=torch.float64, **constants)
    with torch.no_grad():
        np.testing.assert_allclose(model(**inputs)["x"].numpy(), expected, rtol=1e-10, atol=1e-12)
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
        np.testing.assert_allclose(loaded(**inputs)["x"].numpy(), expected, rtol=1e-10, atol=1e-12)


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


@pytest.mark.parametrize(("name", "reason"), [("layers", "keyword of the generated API"), ("np", "imports a module"),
                                              ("norm1", "prox function of the spec language"),
                                              ("matvec", "the generated files define it"), ("range", "builtin"),
                                              ("lambda", "Python keyword")])
def test_a_reserved_name_is_refused_with_its_reason(name: str, reason: str) -> None:
    from unfoldgen.spec import load_spec_text

    data = yaml.safe_load(yaml.safe_dump(LASSO))
    data["params"][name] = 1.0
    with pytest.raises(SpecError, match=f"'{name}' is a reserved name: .*{reason}"):
        load_spec_text(yaml.safe_dump(data), "spec.yaml")
