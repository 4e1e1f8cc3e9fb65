"""The ``unfoldgen`` command line: build, show, check, train, eval, export, bench.

A problem in the spec prints one located message and exits with code 2; nothing is written.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from unfoldgen import __version__
from unfoldgen.errors import SpecError, SpecWarning

EXIT_SPEC_ERROR = 2


def _reports_spec_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        spec = kwargs.get("spec")
        try:
            with _spec_warnings_as_messages():
                return command(*args, **kwargs)
        except SpecError as exc:
            click.echo(exc.located(str(spec) if spec else None).format(), err=True)
            sys.exit(EXIT_SPEC_ERROR)
        except RecursionError:
            click.echo(f"{spec}: the spec is nested too deeply to process", err=True)
            sys.exit(EXIT_SPEC_ERROR)
        except Exception as exc:
            if os.environ.get("UNFOLDGEN_DEBUG"):
                raise
            click.echo(f"{spec}: internal error: {type(exc).__name__}: {exc}\n"
                       "  hint: this is a bug in unfoldgen; rerun with UNFOLDGEN_DEBUG=1 for a traceback "
                       "and report it", err=True)
            sys.exit(1)

    return wrapper


@contextlib.contextmanager
def _spec_warnings_as_messages() -> Iterator[None]:
    """Print each SpecWarning once, as its located text on stderr (other warnings as usual)."""
    with warnings.catch_warnings():
        warnings.simplefilter("default", SpecWarning)
        show = warnings.showwarning

        def show_spec_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            if issubclass(category, SpecWarning):
                click.echo(str(message), err=True)
            else:
                show(message, category, *args, **kwargs)

        warnings.showwarning = show_spec_warning
        yield


SPEC_ARGUMENT = click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="unfoldgen")
def main() -> None:
    """Compile an optimization spec into a deep-unfolded network: a trainable PyTorch module
    and a Numba CPU kernel."""


@main.command()
@SPEC_ARGUMENT
@click.option("-o", "--outdir", default="generated", show_default=True, type=click.Path(file_okay=False),
              help="Folder that receives <name>/ with model.py, kernel.py, DERIVATION.md.")
@_reports_spec_errors
def build(spec: Path, outdir: str) -> None:
    """Derive SPEC and write its network to OUTDIR/<name>/."""
    from unfoldgen.api import build as run_build

    result = run_build(spec, outdir)
    click.echo(f"built {result.program.name}: {result.directory}/ ({', '.join(sorted(result.files))})")


@main.command()
@SPEC_ARGUMENT
@_reports_spec_errors
def check(spec: Path) -> None:
    """Validate SPEC (parse and derive) without writing anything."""
    from unfoldgen.ir import lower
    from unfoldgen.spec import load_spec

    program = lower(load_spec(spec))
    click.echo(f"{spec}: ok ({program.method}, {program.layers} layers, "
               f"{program.total_parameters()} trainable parameters)")


@main.command()
@SPEC_ARGUMENT
@_reports_spec_errors
def show(spec: Path) -> None:
    """Print SPEC's derivation and parameter table."""
    from unfoldgen.backends.derivation import parameter_rows
    from unfoldgen.ir import lower
    from unfoldgen.spec import load_spec

    program = lower(load_spec(spec))
    click.echo(_show_text(program, parameter_rows(program)))


def _show_text(program: Any, rows: list[dict[str, Any]]) -> str:
    from unfoldgen.backends.common import prox_definition
    from unfoldgen.ir.mathtext import math_text

    lines = [f"{program.name}: {program.method}, {program.layers} layers", ""]
    gradients = [v for v in program.derivation.get("variables", []) if v.get("gradient_text")]
    if gradients:
        lines.append("gradient:")
        lines += [f"  grad_{v['name']} = {v['gradient_text']}" for v in gradients]
    for derived in program.derived:
        lines.append(f"{derived.name} = {math_text(derived.expr)}   ({derived.description})")
    for prox in program.proxes:
        lines.append(f"{prox.function_name}: prox of {prox_definition(prox)}")
    if program.init_steps:
        lines += ["", "initialization:"] + [f"  {step.comment}" for step in program.init_steps]
    lines += ["", "one layer:"] + [f"  {step.comment}" for step in program.steps]
    header = ("name", "shape", "tying", "trainable", "count")
    table = [header] + [tuple(str(r[h]) for h in header) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines += ["", "parameters:"]
    for row in table:
        lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    lines.append(f"  total trainable: {program.total_parameters()}")
    return "\n".join(lines)


@main.command()
@SPEC_ARGUMENT
@click.option("--weights", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="weights.pt written by unfoldgen train.")
@click.option("-o", "--outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write: kernel.py, params.npz, manifest.json, README.md.")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True,
              help="dtype of the exported parameters.")
@click.option("--format", "format_", default="numba", show_default=True,
              help="A backend's export format. numba: kernel.py and params.npz (numpy and numba only); onnx: "
                   "model.onnx, checked against the module with onnxruntime (pip install 'unfoldgen[onnx]').")
@click.option("--weights-dtype", "weights_dtype", type=click.Choice(["float16", "bfloat16", "int8"]), default=None,
              help="Store the kernel's dense weights in low precision (int8: a scale per row), dequantised "
                   "inside its inner loops; manifest.json records the NMSE change on test data.")
@_reports_spec_errors
def export(spec: Path, weights: Path, outdir: Path, dtype: str, format_: str, weights_dtype: str | None) -> None:
    """Write SPEC's trained network as a folder that runs without unfoldgen or PyTorch."""
    from unfoldgen.api import export as run_export

    result = run_export(spec, weights, outdir, dtype=dtype, format=format_, weights_dtype=weights_dtype)
    check = result.manifest.get("onnxruntime_check")
    checked = f"; onnxruntime agrees with the module to {check['max_relative_error']:.1e}" if isinstance(check, dict) else ""
    low = result.manifest.get("weights_dtype")
    if isinstance(low, dict):
        test = low["test"]
        checked += (f"; {low['format']} weights ({low['bytes'] / 1e3:.1f} kB instead of {low['bytes_float32'] / 1e3:.1f})"
                    + (f": test NMSE {test['nmse_db']:.2f} dB against {test['nmse_db_float32']:.2f} dB in float32"
                       if test else ""))
    click.echo(f"exported {result.manifest['name']} ({format_}, {dtype}) to {result.directory}/{checked}")


def _train_flag(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    from unfoldgen.spec.experiment import TRAIN_KEYS

    return click.option(f"--{name.replace('_', '-')}", f"train_{name}", default=None, metavar="VALUE",
                        help=f"override train.{name}: {TRAIN_KEYS[name]}")


def _train_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    from unfoldgen.spec.experiment import TRAIN_KEYS

    for name in reversed(list(TRAIN_KEYS)):
        command = _train_flag(name)(command)
    return command


def _flag_value(text: str) -> Any:
    """A flag's text as the spec would hold it: a number, null, a mapping, or a word."""
    import yaml

    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


@main.command()
@SPEC_ARGUMENT
@click.option("--out", "out", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder (default runs/<name>): checkpoint.pt, weights.pt, params.npz, history.json.")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in --out.")
@click.option("--quiet", is_flag=True, help="Plain log lines instead of a progress bar.")
@click.option("--stop-after", type=click.IntRange(min=1), default=None, metavar="STEP",
              help="Stop after this step with a checkpoint (continue later with --resume).")
@_train_flags
@_reports_spec_errors
def train(spec: Path, out: Path | None, resume: bool, quiet: bool, stop_after: int | None, **flags: Any) -> None:
    """Train SPEC's network as its train section says (every key is also a flag)."""
    from unfoldgen.api import train as run_train

    overrides = {key.removeprefix("train_"): _flag_value(value) for key, value in flags.items() if value is not None}
    result = run_train(spec, out, resume=resume, stop_after=stop_after, quiet=quiet, **overrides)
    if result.finished and result.is_main and result.stages:
        last = result.stages[-1]
        metric = ", ".join(f"{k} {v:.2f}" for k, v in last.items() if k != "depth")
        click.echo(f"trained {result.name} in {result.wall_s:.1f} s ({result.steps} steps): {metric}; "
                   f"weights in {result.out}/weights.pt and {result.out}/params.npz")


@main.command(name="eval")
@SPEC_ARGUMENT
@click.option("--weights", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="weights.pt written by unfoldgen train.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a PNG of NMSE against layer / iteration.")
@click.option("--samples", type=click.IntRange(min=1), default=None, help="Override eval.samples.")
@click.option("--classical-iterations", type=click.IntRange(min=1), default=None,
              help="Override eval.classical_iterations.")
@_reports_spec_errors
def evaluate(spec: Path, weights: Path, as_json: bool, plot: Path | None, samples: int | None,
             classical_iterations: int | None) -> None:
    """Compare the trained network with the untrained one and the classical algorithm."""
    import json

    from unfoldgen.api import evaluate as run_eval
    from unfoldgen.training.evaluate import plot_report

    report = run_eval(spec, weights, samples=samples, classical_iterations=classical_iterations)
    if plot is not None:
        plot_report(report, plot)
    click.echo(json.dumps(report.as_json()) if as_json else report.table())


@main.command()
@SPEC_ARGUMENT
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="weights.pt written by unfoldgen train (default: the untrained network, its layers made distinct by noise of 1e-3 as training would make them; same cost).")
@click.option("--batch", "batches", default="1,256", show_default=True,
              help="Comma-separated batch sizes; 1 is the single-sample path.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Threads for every backend (default: all cores).")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True)
@click.option("--backends", default=None,
              help="Comma-separated backends to time (default: all: numba, torch_eager, torch_compile, onnxruntime, numpy).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@_reports_spec_errors
def bench(spec: Path, weights: Path | None, batches: str, threads: int | None, dtype: str, backends: str | None,
          as_json: bool) -> None:
    """Time SPEC's Numba kernel against PyTorch (eager, compiled) and a plain NumPy loop."""
    import json

    from unfoldgen.benchmark.run import BACKENDS, BenchOptions, parse_backends, parse_batches, summary
    from unfoldgen.benchmark.run import bench as run_bench

    options = BenchOptions(batches=parse_batches(batches), dtype=dtype, backends=parse_backends(backends) if backends else BACKENDS,
                           weights=weights, **({"threads": threads} if threads else {}))
    report = run_bench(spec, options)
    click.echo(json.dumps(report, indent=2) if as_json else summary(report))


if __name__ == "__main__":
    main()
