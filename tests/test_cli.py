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
