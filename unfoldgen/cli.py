"""The ``unfoldgen`` command line: build, show, check.

A problem in the spec prints one located message and exits with code 2; nothing is written.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from unfoldgen import __version__
from unfoldgen.errors import SpecError

EXIT_SPEC_ERROR = 2


def _reports_spec_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        spec = kwargs.get("spec")
        try:
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
    from unfoldgen.build import build as run_build

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


if __name__ == "__main__":
    main()
