"""Test 6: the CLI end to end, including exit code 2 and located messages for bad specs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
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


def mutate(path: list, value):
    data = yaml.safe_load(GOOD)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return yaml.safe_dump(data, sort_keys=False)


BAD_SPECS = [
    ("yaml syntax", "name: [unclosed\n", "invalid YAML", None),
    ("unknown key", GOOD + "colour: blue\n", "unknown key 'colour'", "colour"),
    ("missing key", mutate(["objective"], None), "missing key 'objective'", None),
    ("undeclared symbol", GOOD.replace("A @ x - y", "B @ x - y"), "undeclared name 'B'", "objective.smooth"),
    ("shape mismatch", GOOD.replace("A @ x - y", "A @ y - x"), "do not match", "objective.smooth"),
    ("not differentiable", GOOD.replace("0.5 * sum_squares(A @ x - y)", "0.5 * sum_squares(A @ x - y) + norm1(x)"),
     "not differentiable", "objective.smooth"),
    ("no derivable prox", GOOD.replace("lam * norm1(x)", "sum(x**4)"), "cannot derive the prox", "objective.nonsmooth[0]"),
    ("nonconvex prox", GOOD.replace("lam * norm1(x)", "sum(-x**2)"), "not convex", "objective.nonsmooth[0]"),
    ("non-positive dim", GOOD.replace("m: 50", "m: 0"), "must be positive", "dims.m"),
    ("negative dim", GOOD.replace("m: 50", "m: -3"), "must be positive", "dims.m"),
    ("huge dim", GOOD.replace("m: 50", "m: 1000000000"), "larger than", "dims.m"),
    ("python injection", GOOD.replace("lam * norm1(x)", "__import__('os').system('touch pwned')"),
     "must be one penalty", "objective.nonsmooth[0]"),
    ("dunder attribute", GOOD.replace("A @ x - y", "A.__class__ @ x - y"), "not allowed", "objective.smooth"),
    ("lambda", GOOD.replace("0.5 * sum_squares(A @ x - y)", "'(lambda: 1)()'"), "only plain calls", "objective.smooth"),
    ("yaml python tag", GOOD.replace("lam: 0.1", "lam: !!python/object/apply:os.system ['true']"),
     "unsupported YAML", "params.lam"),
    ("keyword name", GOOD.replace("lam", "lambda"), "reserved name", "params.lambda"),
    ("unknown method", GOOD.replace("proximal_gradient", "newton"), "unknown method", "algorithm.method"),
    ("bad learn key", GOOD + "learn:\n  hyperparameters:\n    momentum: per_layer\n", "not a hyperparameter",
     "learn.hyperparameters.momentum"),
    ("bad tying", GOOD + "learn:\n  hyperparameters:\n    step: sometimes\n", "not a tying", "learn.hyperparameters.step"),
    ("penalty in gd", GOOD.replace("proximal_gradient", "gradient_descent"), "cannot handle nonsmooth", "algorithm.method"),
    ("penalty in pgd", GOOD.replace("proximal_gradient", "projected_gradient"), "is a penalty", "algorithm.method"),
    ("huge exponent", GOOD.replace("lam * norm1(x)", "lam**100000 * norm1(x)"), "exponents must be", "objective.nonsmooth[0]"),
    ("deep nesting", GOOD.replace("A @ x - y", "(" * 3000 + "A @ x - y" + ")" * 3000), "", "objective.smooth"),
    ("prox of linear map", GOOD.replace("lam * norm1(x)", "lam * norm1(A @ x)"), "must be a variable", "objective.nonsmooth[0]"),
    ("alias bomb", ("a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"), "more than", None),
]


WITH_HINTS = {"yaml syntax", "unknown key", "missing key", "undeclared symbol", "not differentiable",
              "no derivable prox", "huge dim", "unknown method", "bad learn key", "bad tying", "penalty in gd",
              "penalty in pgd", "prox of linear map", "python injection", "yaml python tag", "alias bomb"}


@pytest.mark.parametrize("label, text, fragment, key", BAD_SPECS, ids=[b[0] for b in BAD_SPECS])
def test_bad_spec_exits_2_with_located_message(tmp_path, label, text, fragment, key):
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    outdir = tmp_path / "out"
    result = run("build", str(spec), "-o", str(outdir))
    assert result.exit_code == 2, result.output
    message = result.output
    assert str(spec) in message
    assert fragment in message
    if key is not None:
        assert key in message
    assert "line" in message or label in ("deep nesting",)
    if label in WITH_HINTS:
        assert "hint:" in message
    assert "Traceback" not in message
    assert not outdir.exists()
    assert not Path("pwned").exists()


def test_non_utf8_spec(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_bytes(GOOD.encode() + b"\xff\xfe")
    result = run("check", str(spec))
    assert result.exit_code == 2 and "UTF-8" in result.output
