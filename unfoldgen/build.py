"""Build a spec into ``OUTDIR/<name>/`` atomically.

Everything is derived and rendered in memory first; the files are written to a temporary folder
next to the target and moved into place with one rename, so a failed or killed build never
leaves half-written output (the previous build stays intact until the rename).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from unfoldgen.backends.derivation import emit_derivation
from unfoldgen.backends.numba_kernel import emit_numba_kernel
from unfoldgen.backends.numpy_loop import emit_numpy_loop
from unfoldgen.backends.render import render
from unfoldgen.backends.torch_module import emit_torch_module
from unfoldgen.ir import Program, lower
from unfoldgen.spec import load_spec


@dataclass(frozen=True)
class BuildResult:
    program: Program
    directory: Path
    files: dict[str, str]


def compile_program(program: Program) -> dict[str, str]:
    """All emitted files of a program, by file name."""
    return {
        "__init__.py": render("__init__.py.j2", name=program.name, spec_hash=program.spec_hash),
        "model.py": emit_torch_module(program),
        "kernel.py": emit_numba_kernel(program),
        "numpy_loop.py": emit_numpy_loop(program),
        "DERIVATION.md": emit_derivation(program),
    }


def build(spec_path: str | Path, outdir: str | Path = "generated") -> BuildResult:
    program = lower(load_spec(spec_path))
    files = compile_program(program)
    target = Path(outdir) / program.name
    write_atomically(target, files)
    return BuildResult(program, target, files)


def write_atomically(target: Path, files: dict[str, str], binary: dict[str, bytes] | None = None) -> None:
    """Write ``files`` (text) and ``binary`` into the folder ``target``, replacing it in one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8")
        for name, data in (binary or {}).items():
            (staging / name).write_bytes(data)
        backup = None
        if target.exists():
            backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.rmdir(backup)
            os.rename(target, backup)
        os.rename(staging, target)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_generated_module(path: Path, name: str) -> ModuleType:
    """Import one generated file (model.py or kernel.py) under a unique module name."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
