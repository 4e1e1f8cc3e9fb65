"""Time one backend in this process: ``python -m unfoldgen.benchmark.worker FOLDER BACKEND BATCHES``.

The parent (:mod:`unfoldgen.benchmark.run`) starts one worker per backend with the thread
count already in the environment (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
``NUMBA_NUM_THREADS``, ...), so BLAS, OpenMP and Numba pools start at that size. The worker
prints one JSON object: microseconds per sample per batch size, or why the backend cannot run.
Batch 1 is a single sample: ``solve_one`` for the kernel, a batch of one for the others.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from unfoldgen.backends.registry import BENCH_VARIANTS

MIN_SECONDS = 0.5  # keep repeating until this much time was measured...
MIN_REPEATS = 5  # ...and at least this many runs
MAX_REPEATS = 200


def median_seconds(run: Callable[[], object]) -> float:
    """Median wall time of ``run`` after two warm-up calls (compilation, caches, pools)."""
    run()
    run()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < MIN_REPEATS or (time.perf_counter() - started < MIN_SECONDS and len(times) < MAX_REPEATS):
        begin = time.perf_counter()
        run()
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def load(folder: Path, name: str) -> Any:
    from unfoldgen.compiler import load_generated_module

    return load_generated_module(folder / f"{name}.py", f"unfoldgen_bench_{name}")


def threads() -> int:
    return int(os.environ["NUMBA_NUM_THREADS"])


def measure(folder: Path, backend: str, batches: list[int]) -> dict[str, Any]:
    params = dict(np.load(folder / "params.npz"))
    inputs = dict(np.load(folder / "inputs.npz"))
    single, batched = BENCH_VARIANTS[backend].runners(functools.partial(load, folder), folder, params, backend)
    timings: dict[int, float] = {}
    for batch in batches:
        if batch == 1:
            sample = {k: v[0] for k, v in inputs.items()}
            timings[batch] = median_seconds(functools.partial(single, sample)) * 1e6
        else:
            chunk = {k: np.ascontiguousarray(v[:batch]) for k, v in inputs.items()}
            timings[batch] = median_seconds(functools.partial(batched, chunk)) * 1e6 / batch
    return {"us_per_sample": {str(b): t for b, t in timings.items()}}


def matmul_peak(size: int = 2048) -> dict[str, Any]:
    """float32 GFLOP/s of one ``size``-square product: the best of numpy's BLAS and PyTorch's."""
    import torch

    torch.set_num_threads(threads())
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size)).astype(np.float32) for _ in range(2))
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    flops = 2 * size**3
    numpy_gflops = flops / median_seconds(lambda: a @ b) / 1e9
    torch_gflops = flops / median_seconds(lambda: ta @ tb) / 1e9
    return {"peak_gflops": max(numpy_gflops, torch_gflops), "numpy_gflops": numpy_gflops, "torch_gflops": torch_gflops}


def memory_floor(folder: Path) -> dict[str, Any]:
    """Microseconds to read the kernel's parameter bytes once at the benchmark's thread count:
    the least time a single sample can take, since it reads every weight once. The bytes are
    one flat array, read two ways, and the faster counts: summed in contiguous slices, one per
    thread, by a compiled loop (Numba, as the kernel), and by BLAS's ``sdot`` of the array with
    itself (hand-written SIMD)."""
    import numba

    numba.set_num_threads(threads())
    stored = np.load(folder / "params.npz")
    params = {name: stored[name] for name in json.loads((folder / "config.json").read_text())["kernel_reads"]}
    nbytes = sum(v.nbytes for v in params.values())
    flat = np.concatenate([np.ravel(v).view(np.uint8) for v in params.values()] + [np.zeros(-nbytes % 4, np.uint8)]).view(np.float32)
    partial = np.zeros(threads(), np.float32)
    stream = _compiled_stream()
    numba_seconds = median_seconds(lambda: stream(flat, partial))
    blas_seconds = median_seconds(lambda: np.dot(flat, flat))
    seconds = min(numba_seconds, blas_seconds)
    return {"memory_floor_us": seconds * 1e6, "numba_us": numba_seconds * 1e6, "blas_us": blas_seconds * 1e6,
            "parameter_bytes": int(nbytes), "gb_per_s": nbytes / seconds / 1e9}


def _compiled_stream() -> Callable[[np.ndarray, np.ndarray], None]:
    from numba import njit, prange

    @njit(fastmath=True, cache=False)
    def sum_slice(part: np.ndarray) -> float:
        acc = part.dtype.type(0)
        for j in range(part.size):
            acc += part[j]
        return acc

    @njit(parallel=True, cache=False)
    def stream(flat: np.ndarray, partial: np.ndarray) -> None:
        chunk = (flat.size + partial.size - 1) // partial.size
        for c in prange(partial.size):
            partial[c] = sum_slice(flat[c * chunk:min(flat.size, (c + 1) * chunk)])

    return stream


def main(argv: list[str]) -> int:
    folder, backend = Path(argv[0]), argv[1]
    try:
        if backend == "peak":
            result = matmul_peak()
        elif backend == "floor":
            result = memory_floor(folder)
        else:
            result = measure(folder, backend, [int(b) for b in argv[2].split(",")])
    except Exception as exc:  # noqa: BLE001  (report why a backend cannot run, e.g. torch.compile without a compiler)
        result = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
