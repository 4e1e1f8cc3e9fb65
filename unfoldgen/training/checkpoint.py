"""Files that must never be half-written: checkpoints, weights, ``params.npz``, reports.

Each is written to a temporary file in the target's folder, flushed to disk and renamed over
the target in one step, so a run killed at any moment leaves either the old file or the new one.
"""

from __future__ import annotations

import io
import json
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import torch

TEMPORARY_SUFFIX = ".partial"


def write_atomically(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def remove_abandoned_temporaries(folder: Path) -> None:
    """Temporary files of writes that a killed process never finished (never read by anyone)."""
    for path in folder.glob(f".*{TEMPORARY_SUFFIX}"):
        path.unlink(missing_ok=True)


def save_torch(path: Path, payload: Any) -> None:
    write_atomically(path, lambda file: torch.save(payload, file))


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The contents of a ``.npz`` file of ``arrays``."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub confuses **arrays with allow_pickle
    return buffer.getvalue()


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    write_atomically(path, lambda file: file.write(npz_bytes(arrays)))


def save_json(path: Path, value: Any) -> None:
    write_atomically(path, lambda file: file.write((json.dumps(value, indent=2) + "\n").encode()))


def rng_state() -> dict[str, Any]:
    """Every global generator a run could touch (the samples themselves are seeded by step),
    as tensors and plain values so the checkpoint loads with ``weights_only=True``."""
    kind, keys, position, has_gauss, cached = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    return {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        "python": list(random.getstate()),
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
