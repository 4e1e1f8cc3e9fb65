"""Helpers: build a (possibly resized) spec into a temporary folder and import its output."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
import yaml

from unfoldgen.compiler import build, load_generated_module

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
_counter = itertools.count()

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one worker per core: a worker's PyTorch on every core would fight the other
    # worker for them (small products then take several times as long; training tests 3x).
    torch.set_num_threads(1)


def load_module(path: Path) -> ModuleType:
    return load_generated_module(path, f"generated_{path.parent.name}_{path.stem}_{next(_counter)}")


class Built:
    def __init__(self, directory: Path, program: Any) -> None:
        self.directory = directory
        self.program = program
        self.model = load_module(directory / "model.py")
        self._kernel: ModuleType | None = None
        self.params: dict[str, float] = {}

    @property
    def kernel(self) -> ModuleType:
        if self._kernel is None:
            self._kernel = load_module(self.directory / "kernel.py")
        return self._kernel

    @property
    def numpy_loop(self) -> ModuleType:
        return load_module(self.directory / "numpy_loop.py")


def write_spec(tmp: Path, data: dict[str, Any]) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def variant(name: str, tmp: Path, dims: dict[str, int] | None = None, layers: int | None = None,
            **changes: Any) -> Built:
    """Build bundled spec ``name`` with other dims/layers/keys into ``tmp``."""
    data = yaml.safe_load((ROOT / "specs" / f"{name}.yaml").read_text())
    if dims:
        data["dims"].update(dims)
    if layers:
        data["algorithm"]["layers"] = layers
    data.update(changes)
    result = build(write_spec(tmp, data), tmp / "out")
    return Built(result.directory, result.program)


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(1234)
