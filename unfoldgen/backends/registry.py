"""The registry of code backends: one :class:`Backend` per emitted runtime, listed once.

``unfoldgen build`` writes every backend's file, ``unfoldgen bench`` times every backend's
variants, and ``unfoldgen export`` offers every backend's export format, all by iterating
over :data:`BACKENDS`. A backend module defines its emitter and its runners; adding a
backend is that module plus one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from unfoldgen.backends import numba_kernel, numpy_loop, torch_module
from unfoldgen.ir.program import Program

Loader = Callable[[str], ModuleType]  # imports one emitted file of the build folder by its module name
Runner = Callable[[dict[str, np.ndarray]], Any]
Runners = tuple[Runner, Runner]  # one sample (no batch axis), a batch


@dataclass(frozen=True)
class Backend:
    """One emitted runtime.

    ``variants`` are its rows in the benchmark (the kernel also runs with low-precision
    weights; the PyTorch module runs eager, compiled, and as its ONNX export in onnxruntime);
    ``runners(load, folder, params, variant)`` gives the functions the benchmark times;
    ``export_format`` names what ``unfoldgen export --format`` writes from it, if anything.
    """

    name: str
    file: str
    title: str
    emit: Callable[[Program], str]
    variants: tuple[str, ...]
    runners: Callable[[Loader, Path, dict[str, np.ndarray], str], Runners]
    export_format: str | None = None

    @property
    def module(self) -> str:
        return Path(self.file).stem


BACKENDS: dict[str, Backend] = {backend.name: backend for backend in (
    Backend("numba", "kernel.py", "Numba kernel (numpy and numba only)", numba_kernel.emit_numba_kernel,
            ("numba", *numba_kernel.LOW_PRECISION), numba_kernel.runners, export_format="numba"),
    Backend("torch", "model.py", "PyTorch module (trainable)", torch_module.emit_torch_module,
            ("torch_eager", "torch_compile", "onnxruntime"), torch_module.runners, export_format="onnx"),
    Backend("numpy", "numpy_loop.py", "NumPy loop (the hand-written baseline)", numpy_loop.emit_numpy_loop,
            ("numpy",), numpy_loop.runners),
)}

BENCH_VARIANTS: dict[str, Backend] = {variant: b for b in BACKENDS.values() for variant in b.variants}
EXPORT_FORMATS: tuple[str, ...] = tuple(b.export_format for b in BACKENDS.values() if b.export_format)
