"""Build a spec into ``OUTDIR/<name>/`` atomically.

Everything is derived and rendered in memory first; the files are written to a temporary folder
next to the target and moved into place with one rename, so a failed or killed build never
leaves half-written output (the previous build stays intact until the rename).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from unfoldgen.backends.derivation import emit_derivation
from unfoldgen.backends.registry import BACKENDS
from unfoldgen.backends.render import render
from unfoldgen.ir import Program, lower
from unfoldgen.spec import load_spec


@dataclass(frozen=True)
class BuildResult:
    program: Program
    directory: Path
    files: dict[str, str]


def compile_program(program: Program) -> dict[str, str]:
    """All emitted files of a program, by file name."""
    files = {"__init__.py": render("__init__.py.j2", name=program.name, spec_hash=program.spec_hash)}
    files |= {backend.file: backend.emit(program) for backend in BACKENDS.values()}
    files["DERIVATION.md"] = emit_derivation(program)
    return files


def build(spec_path: str | Path, outdir: str | Path = "generated") -> BuildResult:
    program = lower(load_spec(spec_path))
    files = compile_program(program)
    target = Path(outdir) / program.name
    write_atomically(target, files)
    return BuildResult(program, target, files)


STAGING_PREFIX = ".unfoldgen-staging."


def write_atomically(target: Path, files: dict[str, str], binary: dict[str, bytes] | None = None) -> None:
    """Write ``files`` (text) and ``binary`` into the folder ``target``, replacing it in one step.

    The files go to a hidden staging folder next to ``target`` (same file system, so the move
    is a rename), are flushed to disk, and the staging folder then takes the place of
    ``target``: swapped with it atomically where the OS can (Linux ``renameat2``), else by two
    renames. A process killed at any moment leaves ``target`` as it was or as it will be; the
    staging folder it leaves behind is removed by the next build.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(target)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{target.name}.", dir=target.parent))
    try:
        for name, data in [*((n, t.encode("utf-8")) for n, t in files.items()), *(binary or {}).items()]:
            with open(staging / name, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
        if target.exists() and _exchange(staging, target):
            shutil.rmtree(staging)  # now holds the previous output
            return
        if target.exists():
            previous = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{target.name}.", dir=target.parent))
            os.rmdir(previous)
            os.rename(target, previous)
            os.rename(staging, target)
            shutil.rmtree(previous, ignore_errors=True)
        else:
            os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where
    the platform or the file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    status = renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange)
    return status == 0


def _remove_abandoned_staging(target: Path) -> None:
    """Staging folders of ``target`` left by a build that was killed."""
    for path in target.parent.glob(f"{STAGING_PREFIX}{target.name}.*"):
        shutil.rmtree(path, ignore_errors=True)


def load_generated_module(path: Path, name: str) -> ModuleType:
    """Import one generated file (model.py or kernel.py) under a unique module name."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
