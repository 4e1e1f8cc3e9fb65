"""``unfoldgen bench``: time the Numba kernel against PyTorch (eager and compiled), the
module's ONNX export in onnxruntime and a plain NumPy loop, on the same parameters, inputs and
thread count, and put the figures in context: FLOPs per sample from the IR, the machine's
measured float32 matmul peak, the memory floor (reading the parameter bytes once), and the
kernel's cold start in a fresh process with and without Numba's on-disk cache.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unfoldgen.backends.numba_kernel import LOW_PRECISION, params_read
from unfoldgen.backends.registry import BENCH_VARIANTS
from unfoldgen.benchmark.cost import sample_cost
from unfoldgen.benchmark.workspace import prepare
from unfoldgen.errors import SpecError
from unfoldgen.ir import lower
from unfoldgen.spec import load_spec

BACKENDS = tuple(BENCH_VARIANTS)  # numba (and numba_<weights dtype>), torch_eager, torch_compile, onnxruntime, numpy
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS")
WORKER_TIMEOUT_S = 1800
WORKER_ROUNDS = 2  # processes per backend; the fastest counts

# Import the kernel, load the parameters and one sample, run it: the time a deployed process
# waits before its first result (the interpreter's own start-up is not counted). argv: the
# workspace, and an .npz of one sample's inputs (a process serving a request reads one, not the
# benchmark's batch). Prints the time at the end of each phase, from the start: the imports of
# numpy and numba, the kernel's module (which loads SciPy's BLAS and LAPACK pointer modules for
# Numba), the parameters and the sample, the first result (Numba's registries and cached code).
COLD_START = """
import time
started = time.perf_counter()
import json
import sys
sys.path.insert(0, sys.argv[1])
ends = {}
import numpy as np
ends["numpy"] = time.perf_counter() - started
import numba
ends["numba"] = time.perf_counter() - started
import kernel
ends["kernel_module"] = time.perf_counter() - started
params = dict(np.load(sys.argv[1] + "/params.npz"))
inputs = dict(np.load(sys.argv[2]))
ends["parameters"] = time.perf_counter() - started
kernel.solve_one(params, **inputs)
ends["first_result"] = time.perf_counter() - started
print(json.dumps(ends))
"""

CACHED_STARTS = 3
# The least kernel Numba can load from its cache: the cold start's floor on this machine.
TRIVIAL_KERNEL = """from numba import njit


@njit(cache=True)
def add_one(x):
    return x + 1.0


def solve_one(params, x):
    return add_one(x[0])
"""


@dataclass
class BenchOptions:
    batches: list[int] = field(default_factory=lambda: [1, 256])
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    dtype: str = "float32"
    backends: tuple[str, ...] = BACKENDS
    weights: Path | None = None


def parse_batches(text: str) -> list[int]:
    try:
        batches = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        batches = []
    if not batches or batches[0] < 1:
        raise SpecError(f"--batch must be a comma-separated list of positive sizes, got '{text}'",
                        hint="for example --batch 1,256")
    return batches


def parse_backends(text: str) -> tuple[str, ...]:
    backends = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise SpecError(f"unknown backend(s) {', '.join(unknown) or text!r}", hint=f"choose among {', '.join(BACKENDS)}")
    return backends


def thread_environment(threads: int, cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    env["NUMBA_CACHE_DIR"] = str(cache)
    return env


def run_worker(folder: Path, backend: str, batches: list[int], env: dict[str, str]) -> dict[str, Any]:
    command = [sys.executable, "-m", "unfoldgen.benchmark.worker", str(folder), backend, ",".join(map(str, batches))]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {WORKER_TIMEOUT_S} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"worker exited with {done.returncode}: {tail}"[:300]}
    return json.loads(lines[-1])


def cold_start(folder: Path, env: dict[str, str]) -> dict[str, Any]:
    """Seconds to the first result of a new process with an empty Numba cache, then with the
    cache it left (the fastest of CACHED_STARTS processes: a shared machine only slows one
    down); where that cached start spends them (``cached_phases``: each phase's seconds, in
    order); and ``numba_floor``: the same cached start for a one-line function, what Numba
    itself costs a process before any kernel's work."""
    with tempfile.TemporaryDirectory(prefix="unfoldgen-cache-") as cache:
        # Both caches of a deployed process: Numba's, and Python's bytecode of the kernel
        # (written by the uncached start; an installed package ships it).
        env = {name: value for name, value in env.items() if name != "PYTHONDONTWRITEBYTECODE"}
        env |= {"NUMBA_CACHE_DIR": cache}
        sample = Path(cache) / "sample.npz"
        with np.load(folder / "inputs.npz") as inputs:
            np.savez(sample, **{name: inputs[name][0] for name in inputs.files})
        uncached = _first_result(folder, sample, env)["first_result"]
        cached = _fastest_start(folder, sample, env)
        trivial = Path(cache) / "trivial"
        trivial.mkdir()
        (trivial / "kernel.py").write_text(TRIVIAL_KERNEL)
        np.savez(trivial / "params.npz")
        np.savez(trivial / "sample.npz", x=np.zeros(1))
        _first_result(trivial, trivial / "sample.npz", env)  # fills the caches
        floor = _fastest_start(trivial, trivial / "sample.npz", env)["first_result"]
    phases = dict(zip(cached, np.diff([0.0, *cached.values()]).tolist(), strict=True))
    return {"uncached": uncached, "cached": cached["first_result"], "cached_phases": phases, "numba_floor": floor}


def _fastest_start(folder: Path, sample: Path, env: dict[str, str]) -> dict[str, float]:
    starts = [_first_result(folder, sample, env) for _ in range(CACHED_STARTS)]
    return min(starts, key=lambda ends: ends["first_result"])


def _first_result(folder: Path, sample: Path, env: dict[str, str]) -> dict[str, float]:
    """COLD_START in a new process on ``folder`` and ``sample``: the end of each phase, in seconds."""
    done = subprocess.run([sys.executable, "-c", COLD_START, str(folder), str(sample)], env=env, capture_output=True, text=True,
                          timeout=WORKER_TIMEOUT_S, check=True)
    ends: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return ends


PHASE_NAMES = {"numpy": "import numpy", "numba": "import numba", "kernel_module": "the kernel's module",
               "parameters": "loading the parameters and the sample",
               "first_result": "the first result"}


def cold_start_phases(cold: dict[str, Any]) -> str:
    """The cached start's phases, in order: 'import numpy 0.06 s, import numba 0.15 s, ...'."""
    return ", ".join(f"{PHASE_NAMES.get(name, name)} {seconds:.2f} s" for name, seconds in cold["cached_phases"].items())


def machine() -> dict[str, Any]:
    import numba
    import numpy
    import torch

    versions = {"cpu": _cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                "numpy": numpy.__version__, "numba": numba.__version__, "torch": torch.__version__}
    try:
        import onnxruntime
    except ImportError:
        return versions
    return versions | {"onnxruntime": onnxruntime.__version__}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench(spec_path: Path, options: BenchOptions) -> dict[str, Any]:
    started = time.perf_counter()
    spec = load_spec(spec_path)
    program = lower(spec)
    with tempfile.TemporaryDirectory(prefix="unfoldgen-bench-") as scratch:
        folder, cache = Path(scratch) / "work", Path(scratch) / "cache"
        low_precision = tuple(LOW_PRECISION[b] for b in options.backends if b in LOW_PRECISION)
        params = prepare(spec, program, folder, max(options.batches), options.dtype, options.weights,
                         onnx="onnxruntime" in options.backends, low_precision=low_precision)
        arrays, scalars = params_read(program)
        cost = sample_cost(program, {name: params[name] for name in (*arrays, *scalars)}, np.dtype(options.dtype).itemsize)
        env = thread_environment(options.threads, cache)
        peak = run_worker(folder, "peak", [], env)
        floor = run_worker(folder, "floor", [], env)
        timings, unavailable, profiles = _measure_rounds(folder, options, env)
        results = [{"backend": backend, "batch": batch, "threads": options.threads, "us_per_sample": us,
                    "gflops": cost.flops / us / 1e3}
                   for backend, per_batch in timings.items() for batch, us in per_batch.items()]
        cold = cold_start(folder, env) if "numba" in options.backends else {}
    return {
        "spec": program.name, "layers": program.layers, "dtype": options.dtype, "threads": options.threads,
        "batches": options.batches, "weights": str(options.weights) if options.weights else None,
        "flops_per_sample": cost.flops, "peak_gflops": peak.get("peak_gflops"), "peak": peak,
        "memory_floor_us": floor.get("memory_floor_us"), "memory_floor": floor,
        "parameter_bytes": cost.parameter_bytes, "working_bytes_per_sample": cost.working_bytes,
        "results": results, "unavailable": unavailable, "cold_start_s": cold,
        "kernel_batch_profile": profiles.get("batch_profile"), "module_input_checks_us": profiles.get("input_checks_us"),
        "kernel_processes": profiles.get("kernel_processes", []),
        "machine": machine(), "wall_s": time.perf_counter() - started,
    }


def _measure_rounds(folder: Path, options: BenchOptions, env: dict[str, str]
                    ) -> tuple[dict[str, dict[int, float]], dict[str, str], dict[str, Any]]:
    """Every backend's microseconds per sample at each batch: WORKER_ROUNDS rounds over the
    backends, one process each, keeping each batch's fastest median (a shared machine only
    slows a process down, and a process can run slower throughout: its threads' placement, a
    neighbour). Also why a backend is unavailable, the kernel's profiles from its first run, and
    where a single sample shares its rows among threads, each kernel process's empty parallel
    region and batch-1 time."""
    timings: dict[str, dict[int, float]] = {}
    unavailable: dict[str, str] = {}
    profiles: dict[str, Any] = {}  # the kernel's batch profile, the module's input checks
    for _ in range(WORKER_ROUNDS):
        for backend in (b for b in options.backends if b not in unavailable):
            measured = run_worker(folder, backend, options.batches, env)
            if "error" in measured:
                unavailable[backend] = measured["error"]
                timings.pop(backend, None)
                continue
            profiles = {key: measured[key] for key in ("batch_profile", "input_checks_us") if key in measured} | profiles
            if "parallel_region_us" in measured:  # each kernel process's, with its batch-1 time
                profiles.setdefault("kernel_processes", []).append(
                    {"batch_1_us": measured["us_per_sample"].get("1"), "parallel_region_us": measured["parallel_region_us"]})
            best = timings.setdefault(backend, {})
            for batch, us in measured["us_per_sample"].items():
                best[int(batch)] = min(us, best.get(int(batch), us))
    return timings, unavailable, profiles


def summary(report: dict[str, Any]) -> str:
    """The report as a table for people."""
    lines = [f"{report['spec']}: {report['layers']} layers, {report['dtype']}, {report['threads']} thread(s)",
             (f"  {report['flops_per_sample'] / 1e6:.2f} MFLOP per sample; parameters "
             f"{report['parameter_bytes'] / 1e6:.2f} MB; working memory {report['working_bytes_per_sample'] / 1e3:.1f} kB per sample"),
             (f"  float32 matmul peak: {report['peak_gflops'] or float('nan'):.1f} GFLOP/s; memory floor "
              f"(reading the parameters once): {report['memory_floor_us'] or float('nan'):.1f} us"),
             f"  {'backend':<14}{'batch':>7}{'us/sample':>14}{'GFLOP/s':>10}{'% peak':>8}"]
    peak = report["peak_gflops"] or float("nan")
    for row in report["results"]:
        lines.append(f"  {row['backend']:<14}{row['batch']:>7}{row['us_per_sample']:>14.1f}{row['gflops']:>10.2f}"
                     f"{100 * row['gflops'] / peak:>7.1f}%")
    for backend, reason in report["unavailable"].items():
        lines.append(f"  {backend}: not measured ({reason})")
    if report["cold_start_s"]:
        cold = report["cold_start_s"]
        lines.append(f"  cold start of the kernel in a new process: {cold['cached']:.2f} s cached, {cold['uncached']:.2f} s uncached")
        lines.append(f"  the cached start, by phase: {cold_start_phases(cold)}; Numba's own floor (a one-line "
                     f"cached function, for which Numba imports SciPy's linalg): {cold['numba_floor']:.2f} s")
    return "\n".join(lines)
