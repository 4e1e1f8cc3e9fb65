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
import threading
import time
import types
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
    return statistics.median(wall_times(run))


def wall_times(run: Callable[[], object]) -> list[float]:
    """Wall times of ``run``, after two warm-up calls, until enough were measured."""
    run()
    run()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < MIN_REPEATS or (time.perf_counter() - started < MIN_SECONDS and len(times) < MAX_REPEATS):
        begin = time.perf_counter()
        run()
        times.append(time.perf_counter() - begin)
    return times


MODULE_PREFIX = "unfoldgen_bench_"  # the emitted files, imported under this prefix


def load(folder: Path, name: str) -> Any:
    from unfoldgen.compiler import load_generated_module

    return load_generated_module(folder / f"{name}.py", f"{MODULE_PREFIX}{name}")


def threads() -> int:
    return int(os.environ["NUMBA_NUM_THREADS"])


def measure(folder: Path, backend: str, batches: list[int]) -> dict[str, Any]:
    params = dict(np.load(folder / "params.npz"))
    inputs = dict(np.load(folder / "inputs.npz"))
    single, batched = BENCH_VARIANTS[backend].runners(functools.partial(load, folder), folder, params, backend)
    timings = _timings(single, batched, inputs, batches)
    result: dict[str, Any] = {"us_per_sample": {str(b): t for b, t in timings.items()}}
    if backend == "numba":
        kernel = sys.modules[MODULE_PREFIX + "kernel"]
        profile = batch_breakdown(kernel, params, _chunk(inputs, max(batches)))
        result |= {"batch_profile": profile} if profile else {}
        # only where a single sample shares its rows among threads: one region per layer
        result |= {"parallel_region_us": parallel_region_us()} if threads() > 1 and hasattr(kernel, "unrolled_one") else {}
    if backend == "torch_eager":
        result["input_checks_us"] = input_checks(sys.modules[MODULE_PREFIX + "model"], inputs, batches)
    return result


def _timings(single: Callable[[dict[str, np.ndarray]], Any], batched: Callable[[dict[str, np.ndarray]], Any],
             inputs: dict[str, np.ndarray], batches: list[int]) -> dict[int, float]:
    """Microseconds per sample at each batch size (batch 1: the single-sample call)."""
    timings: dict[int, float] = {}
    for batch in batches:
        if batch == 1:
            timings[batch] = median_seconds(functools.partial(single, {k: v[0] for k, v in inputs.items()})) * 1e6
        else:
            timings[batch] = median_seconds(functools.partial(batched, _chunk(inputs, batch))) * 1e6 / batch
    return timings


def _chunk(inputs: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    return {k: np.ascontiguousarray(v[:batch]) for k, v in inputs.items()}


def batch_breakdown(kernel: Any, params: dict[str, np.ndarray], inputs: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """Where one call of the kernel's BLAS path spends its time: BLAS products (``np.matmul``),
    compiled loops (the ``_part*`` functions), and the rest (the layer loop in Python, the
    checks at the entry). Measured by wrapping those globals of the kernel's module with timers
    for one call after warm-up; None where the batch does not take the BLAS path. Where the
    call splits the samples into one share per thread (``_solve_blas_shares``), each thread's
    time is its own: ``shares`` says how many ran, and the figures are the busiest thread's."""
    if not hasattr(kernel, "BLAS_MIN_BATCH") or next(iter(inputs.values())).shape[0] < kernel.BLAS_MIN_BATCH:
        return None
    spent: dict[int, dict[str, float]] = {}
    calls: dict[int, dict[str, int]] = {}

    def timed(function: Callable[..., Any], kind: str) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                thread = threading.get_ident()
                mine = spent.setdefault(thread, {"blas": 0.0, "compiled_loops": 0.0})
                mine[kind] += time.perf_counter() - started
                calls.setdefault(thread, {"blas": 0, "compiled_loops": 0})[kind] += 1
        return run

    numpy_module = kernel.np
    parts = {name: value for name, value in vars(kernel).items() if name.startswith("_part")}
    proxy = types.SimpleNamespace(**{name: getattr(numpy_module, name) for name in dir(numpy_module) if not name.startswith("__")})
    proxy.matmul = timed(numpy_module.matmul, "blas")
    kernel.solve(params, **inputs)  # warm-up
    try:
        kernel.np = proxy
        for name, part in parts.items():
            setattr(kernel, name, timed(part, "compiled_loops"))
        started = time.perf_counter()
        kernel.solve(params, **inputs)
        total = time.perf_counter() - started
    finally:
        kernel.np = numpy_module
        for name, part in parts.items():
            setattr(kernel, name, part)
    busiest = max(spent, key=lambda thread: sum(spent[thread].values()))
    mine = spent[busiest]
    return {"batch": next(iter(inputs.values())).shape[0], "total_ms": total * 1e3, "blas_ms": mine["blas"] * 1e3,
            "compiled_loops_ms": mine["compiled_loops"] * 1e3,
            "python_ms": (total - mine["blas"] - mine["compiled_loops"]) * 1e3, "calls": calls[busiest], "shares": len(spent)}


def input_checks(model: Any, inputs: dict[str, np.ndarray], batches: list[int]) -> dict[str, float]:
    """Microseconds per call that the module's input checks take at each batch size: its
    ``_checked`` (names, dtype, shape, the NaN/Inf scan, the conversion) on the inputs the
    forward receives, timed alone (the difference of two timed forwards drowns in their noise)."""
    import torch

    like = torch.empty(0, dtype=torch.from_numpy(next(iter(inputs.values()))).dtype)
    costs = {}
    for batch in batches:
        tensors = {name: torch.from_numpy(value[:batch]) for name, value in inputs.items()}

        def check(tensors: dict[str, Any] = tensors) -> None:
            for name, tensor in tensors.items():
                model._checked("input", name, tensor, model.INPUT_SHAPES[name], like, batched=True)

        costs[str(batch)] = median_seconds(check) * 1e6
    return costs


def matmul_peak(size: int = 2048) -> dict[str, Any]:
    """float32 GFLOP/s of one ``size``-square product: the best of numpy's BLAS and PyTorch's,
    from the fastest run of each (a peak: a shared machine only ever slows a run down)."""
    import torch

    torch.set_num_threads(threads())
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size)).astype(np.float32) for _ in range(2))
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    flops = 2 * size**3
    numpy_gflops = flops / min(wall_times(lambda: a @ b)) / 1e9
    torch_gflops = flops / min(wall_times(lambda: ta @ tb)) / 1e9
    return {"peak_gflops": max(numpy_gflops, torch_gflops), "numpy_gflops": numpy_gflops, "torch_gflops": torch_gflops}


def parallel_region_us(count: int = 100) -> float:
    """Microseconds to start and join one empty parallel region (a prange over the threads) in
    this process, as a single sample's rows shared among threads pay once per layer. It depends
    on where the OS placed the threads, so it is measured in the kernel's own process."""
    from numba import njit, prange

    @njit(parallel=True, cache=False)
    def touch(flags: np.ndarray) -> None:
        for i in prange(flags.size):
            flags[i] += 1.0

    @njit(cache=False)
    def regions(flags: np.ndarray, count: int) -> None:
        for _ in range(count):
            touch(flags)

    flags = np.zeros(threads())
    return median_seconds(lambda: regions(flags, count)) / count * 1e6


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
