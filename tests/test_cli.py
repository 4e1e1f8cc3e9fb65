"""Test 6: the CLI end to end, including exit code 2 and located messages for bad specs."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner
from conftest import ROOT

from unfoldgen.cli import main

GOOD = (ROOT / "specs" / "ista_lasso.yaml").read_text()


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_version_and_help():
    assert "0.1.0" in run("--version").output
    for command in ([], ["build"], ["show"], ["check"]):
        result = run(*command, "--help")
        assert result.exit_code == 0 and "Usage" in result.output


def test_build_check_show(tmp_path):
    spec = ROOT / "specs" / "lista.yaml"
    result = run("build", str(spec), "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "lista").iterdir()} >= {"model.py", "kernel.py", "DERIVATION.md", "__init__.py"}
    assert run("check", str(spec)).exit_code == 0
    shown = run("show", str(spec)).output
    assert "grad_x = A.T @ (A @ x - y)" in shown
    rows = {line.split()[0]: line.split() for line in shown.splitlines()[-5:-1]}
    assert rows["W_x"][1:] == ["500x500", "untied", "(per", "layer)", "yes", "4000000"]
    assert rows["W_y"][-1] == "2000000" and rows["threshold"][-1] == "16"
    assert "total trainable: 6000016" in shown  # untied LISTA 250x500, 16 layers


def test_console_script_exit_code(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("lam * norm1(x)", "lam * norm1(q)"))
    process = subprocess.run([sys.executable, "-m", "unfoldgen.cli", "build", str(bad), "-o", str(tmp_path / "o")],
                             capture_output=True, text=True, check=False)
    assert process.returncode == 2
    assert "Traceback" not in process.stderr
    assert not (tmp_path / "o").exists()


def test_non_utf8_spec(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_bytes(GOOD.encode() + b"\xff\xfe")
    result = run("check", str(spec))
    assert result.exit_code == 2 and "UTF-8" in result.output


def _with_step(tmp_path, method: str, step: str):
    text = GOOD.replace("method: proximal_gradient", f"method: {method}").replace("step: 1/L", f"step: {step}")
    path = tmp_path / f"{method}_{step.replace('/', '_')}.yaml"
    path.write_text(text)
    return path


def test_a_step_beyond_the_convergence_bound_is_a_warning(tmp_path):
    """step: 3/L used to build silently and run to 5e28."""
    for method, step, bound in [("proximal_gradient", "3/L", "t < 2/L"), ("proximal_gradient", "2/L", "t < 2/L"),
                                ("fista", "1.5/L", "t <= 1/L")]:
        path = _with_step(tmp_path, method, step)
        result = subprocess.run([sys.executable, "-m", "unfoldgen", "build", str(path), "-o", str(tmp_path / "out")],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        assert f"{path}: algorithm.step (line" in result.stderr
        assert f"warning: the step is {step}; {method} needs {bound} to converge" in result.stderr
        assert "hint: use a step" in result.stderr
    for method, step in [("proximal_gradient", "1.9/L"), ("fista", "1/L"), ("proximal_gradient", "0.5")]:
        result = run("check", str(_with_step(tmp_path, method, step)))
        assert result.exit_code == 0 and "warning" not in result.output, result.output
