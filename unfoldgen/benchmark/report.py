"""``make bench``: benchmark every bundled spec and write ``docs/performance.md``.

``python -m unfoldgen.benchmark.report`` runs ``unfoldgen bench`` on each entry of
:func:`suite` (every spec in ``specs/``, LISTA also at one thread), keeps the JSON in
``docs/performance/``, and writes the page from the JSON alone (``--from-json`` rewrites the
page without measuring again; ``--only lista,rpca`` measures some entries again). The targets
are checked against the figures, and where the kernel is not the fastest the page says by how
much, and why (:data:`WHY`).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unfoldgen.backends.numba_kernel import LOW_PRECISION
from unfoldgen.benchmark.run import WORKER_ROUNDS, BenchOptions, bench, cold_start_phases
from unfoldgen.resources import bundled
from unfoldgen.spec import load_spec
from unfoldgen.training.checkpoint import save_json, write_atomically

KERNEL = "numba"
TARGETS = {"floor_ratio": 1.3, "peak_fraction": 0.7, "cold_start_s": 0.5}
SMALL_BATCH = 16  # the batch of specs whose samples are matrices or images (an SVD or a 2-D operator per layer)
LISTA_THREADS = (1, 2)


@dataclass(frozen=True)
class Entry:
    """One benchmark run: a bundled spec at batch 1 and one larger batch, on ``threads``."""

    name: str  # the JSON's file name
    spec: str
    batches: tuple[int, ...]
    threads: int | None = None  # None: all cores


def suite(specs: Path) -> list[Entry]:
    """Every bundled spec; samples that are matrices or images at batch 16, vectors at 256; LISTA at 1 and 2 threads."""
    entries = []
    for path in sorted(specs.glob("*.yaml")):
        matrices = any(len(declared.shape) > 1 for declared in load_spec(path).inputs.values())
        batches = (1, SMALL_BATCH) if matrices else (1, 256)
        if path.stem == "lista":
            entries += [Entry(f"lista_{t}thread", "lista", batches, t) for t in LISTA_THREADS]
        else:
            entries.append(Entry(path.stem, path.stem, batches))
    return entries


def run_suite(specs: Path, out: Path, only: set[str] | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for entry in suite(specs):
        if only and entry.name not in only and entry.spec not in only:
            continue
        options = BenchOptions(batches=list(entry.batches))
        options.threads = entry.threads or options.threads
        report = bench(specs / f"{entry.spec}.yaml", options)
        save_json(out / f"{entry.name}.json", report)
        print(f"benchmarked {entry.name} in {report['wall_s']:.0f} s", flush=True)


# -- reading a report --------------------------------------------------------------------------
def row(report: dict[str, Any], backend: str, batch: int) -> dict[str, Any] | None:
    return next((r for r in report["results"] if r["backend"] == backend and r["batch"] == batch), None)


def others(report: dict[str, Any], batch: int) -> list[dict[str, Any]]:
    """The other backends' rows at ``batch``: not the kernel, not its low-precision variants."""
    return [r for r in report["results"] if r["batch"] == batch and r["backend"] != KERNEL and r["backend"] not in LOW_PRECISION]


def fastest_other(report: dict[str, Any], batch: int) -> dict[str, Any] | None:
    return min(others(report, batch), key=lambda r: r["us_per_sample"], default=None)


def verdict(ratio: float) -> str:
    """``ratio`` = the other's time over the kernel's."""
    return f"faster ({ratio:.2f}x)" if ratio >= 1 else f"**slower by {1 / ratio:.2f}x**"


# -- the page ---------------------------------------------------------------------------------
def results_table(report: dict[str, Any]) -> list[str]:
    peak = report["peak_gflops"]
    lines = ["| backend | batch | us per sample | samples/s | GFLOP/s | % of peak |", "|---|---:|---:|---:|---:|---:|"]
    for r in sorted(report["results"], key=lambda r: (r["batch"], r["us_per_sample"])):
        lines.append(f"| {r['backend']} | {r['batch']} | {r['us_per_sample']:.1f} | {1e6 / r['us_per_sample']:.0f} "
                     f"| {r['gflops']:.2f} | {100 * r['gflops'] / peak:.1f} |")
    for backend, reason in report["unavailable"].items():
        if backend not in LOW_PRECISION:  # said once, under the table
            lines.append(f"| {backend} | - | not measured: {reason} | | | |")
    return lines


def summary_table(reports: dict[str, dict[str, Any]]) -> list[str]:
    """Per spec and batch: the kernel, the fastest other backend, and the verdict."""
    lines = ["| spec | threads | batch | kernel (us/sample) | fastest other | its us/sample | kernel is |",
             "|---|---:|---:|---:|---|---:|---|"]
    for name, report in reports.items():
        for batch in report["batches"]:
            kernel, best = row(report, KERNEL, batch), fastest_other(report, batch)
            if kernel is None or best is None:
                continue
            ratio = best["us_per_sample"] / kernel["us_per_sample"]
            lines.append(f"| [{name}](#{name.replace('_', '-')}) | {report['threads']} | {batch} | {kernel['us_per_sample']:.1f} "
                         f"| {best['backend']} | {best['us_per_sample']:.1f} | {verdict(ratio)} |")
    return lines


def lista_targets(report: dict[str, Any]) -> list[str]:
    """LISTA's targets: batch 1 faster than every other backend and within 1.3x of the memory
    floor; the large batch faster than every other backend and at 70% of the matmul peak."""
    lines = ["| target | measured | status |", "|---|---|---|"]
    large = max(report["batches"])
    for batch in (1, large):
        kernel, best = row(report, KERNEL, batch), fastest_other(report, batch)
        if kernel and best:
            ratio = best["us_per_sample"] / kernel["us_per_sample"]
            lines.append(f"| batch {batch}: faster than every other backend | {kernel['us_per_sample']:.1f} us against "
                         f"{best['us_per_sample']:.1f} ({best['backend']}) | {_status(ratio >= 1, f'missed by {1 / ratio:.2f}x')} |")
    kernel1 = row(report, KERNEL, 1)
    floor = report.get("memory_floor_us")
    if kernel1 and floor:
        ratio = kernel1["us_per_sample"] / floor
        goal = TARGETS["floor_ratio"]
        lines.append(f"| batch 1: within {goal}x of the memory floor | {ratio:.2f}x ({kernel1['us_per_sample']:.0f} against "
                     f"{floor:.0f} us) | {_status(ratio <= goal, f'missed by {ratio / goal:.2f}x')} |")
    kernel_large = row(report, KERNEL, large)
    if kernel_large:
        fraction = kernel_large["gflops"] / report["peak_gflops"]
        goal = TARGETS["peak_fraction"]
        lines.append(f"| batch {large}: at least {100 * goal:.0f}% of the matmul peak | {100 * fraction:.0f}% "
                     f"({kernel_large['gflops']:.0f} of {report['peak_gflops']:.0f} GFLOP/s) | {_status(fraction >= goal, 'missed')} |")
    return lines


def synchronisation(report: dict[str, Any]) -> list[str]:
    """Batch 1 at more than one thread: what its parallel regions, one per layer, cost in each
    of the kernel's processes (``kernel_processes``), next to that process's batch-1 time."""
    processes = [p for p in report.get("kernel_processes", []) if p.get("batch_1_us")]
    if report["threads"] < 2 or not processes:
        return []
    each = "; ".join(f"{p['batch_1_us']:.0f} us at batch 1 with {p['parallel_region_us']:.1f} us a region" for p in processes)
    return [(f"Batch 1 shares each layer's rows among the {report['threads']} threads in one parallel region per "
             f"layer (a layer reads all of the state the one before wrote): {report['layers']} starts and joins per "
             f"sample. An empty region, timed in each of the kernel's processes after its runs: {each}. That cost, "
             f"like the bandwidth the memory floor measures in a process of its own, depends on where the system "
             f"places the threads, so the floor ratio moves from run to run."), ""]


def svd_targets(report: dict[str, Any]) -> list[str]:
    """The RPCA specs' targets: faster than PyTorch eager and compiled at both batches; the
    cached cold start within 0.5 s."""
    lines = ["| target | measured | status |", "|---|---|---|"]
    for batch in report["batches"]:
        kernel = row(report, KERNEL, batch)
        for backend in ("torch_eager", "torch_compile"):
            other = row(report, backend, batch)
            if kernel and other:
                ratio = other["us_per_sample"] / kernel["us_per_sample"]
                lines.append(f"| batch {batch}: faster than {backend} | {kernel['us_per_sample']:.0f} us against "
                             f"{other['us_per_sample']:.0f} | {_status(ratio >= 1, f'missed by {1 / ratio:.2f}x')} |")
    cold = report["cold_start_s"]
    if cold:
        goal, cached = TARGETS["cold_start_s"], cold["cached"]
        lines.append(f"| cold start with the cache at most {goal} s | {cached:.2f} s (uncached {cold['uncached']:.2f} s) "
                     f"| {_status(cached <= goal, f'missed by {cached - goal:.2f} s')} |")
        if cached > goal:
            lines += ["", "Where the cached start goes: " + cold_start_reason(cold)]
    return lines



def cold_start_reason(cold: dict[str, Any]) -> str:
    """Why a cached start is slow, from its phases and Numba's own floor."""
    share = cold["cached"] - cold["numba_floor"]
    floor = (f"Numba alone, loading a one-line cached function in a new process, takes {cold['numba_floor']:.2f} s "
             "on this machine (its first call imports all of SciPy's linalg, where the kernel loads only the two "
             "modules of BLAS and LAPACK pointers that Numba needs), so " +
             (f"the kernel adds {share:.2f} s to it. " if share >= 0.01 else
              f"the kernel starts {-share:.2f} s sooner. " if share <= -0.01 else
              "the kernel adds nothing measurable to it. "))
    return (cold_start_phases(cold) + ". " + floor + "Importing numba and Numba's first call (its typing and "
            "lowering registries, then its cached code) come before any work of the kernel's.")


def _status(met: bool, missed: str) -> str:
    return "met" if met else missed


def low_precision_lines(report: dict[str, Any]) -> list[str]:
    """The kernel with stored low-precision weights against float32, where the spec has dense weights."""
    lines = []
    for batch in report["batches"]:
        kernel = row(report, KERNEL, batch)
        variants = [r for r in report["results"] if r["batch"] == batch and r["backend"] in LOW_PRECISION]
        if kernel and variants:
            parts = [f"{LOW_PRECISION[r['backend']]} {r['us_per_sample']:.1f} us ({kernel['us_per_sample'] / r['us_per_sample']:.2f}x)"
                     for r in variants]
            lines.append(f"- batch {batch}: float32 {kernel['us_per_sample']:.1f} us; " + "; ".join(parts))
    if not lines and any(backend in LOW_PRECISION for backend in report["unavailable"]):
        return ["No dense weights read row by row, so no low-precision variant (`--weights-dtype`).", ""]
    if lines:
        lines = [("Low-precision weights (`unfoldgen export --weights-dtype`; the export's manifest gives the "
                 "NMSE change on test data), per sample against the float32 kernel:"), "", *lines, ""]
    return lines


def gaps(report: dict[str, Any]) -> list[str]:
    """Where the kernel is not the fastest: by how much, and why (per batch size)."""
    lines = []
    for batch in report["batches"]:
        kernel, best = row(report, KERNEL, batch), fastest_other(report, batch)
        if kernel and best and best["us_per_sample"] < kernel["us_per_sample"]:
            ratio = kernel["us_per_sample"] / best["us_per_sample"]
            why = _why_single(report) if batch == 1 else _why_batched(report)
            lines.append(f"- batch {batch}: {ratio:.2f}x slower than {best['backend']} ({kernel['us_per_sample']:.1f} "
                         f"against {best['us_per_sample']:.1f} us per sample). {why}".rstrip())
    return ["Where the kernel is not the fastest:", "", *lines, ""] if lines else []


def _why_single(report: dict[str, Any]) -> str:
    reason = WHY_SINGLE.get(report["spec"])
    return reason(report) if reason else ""


def _why_batched(report: dict[str, Any]) -> str:
    """From the profile of one batched call (``kernel_batch_profile``), where there is one."""
    profile = report.get("kernel_batch_profile")
    if not profile:
        return ("No product with shared weights, so no BLAS path: the batch runs one sample per thread through "
                "the per-sample kernel. " + (_why_single(report) or "Its loops are written per sample."))
    calls, shares = profile["calls"], profile.get("shares", 1)
    split = (f"; its samples in {shares} shares, one per thread, each with one BLAS thread: the busiest thread's "
             "share" if shares > 1 else "")
    measured = (f"Profile of one call at batch {profile['batch']} ({profile['total_ms']:.1f} ms{split}): BLAS products "
                f"{profile['blas_ms']:.1f} ms ({calls['blas']} calls), compiled loops {profile['compiled_loops_ms']:.1f} ms "
                f"({calls['compiled_loops']} calls), Python {profile['python_ms']:.1f} ms (the layer loop and the checks). ")
    largest = max(("blas_ms", "compiled_loops_ms", "python_ms"), key=lambda part: profile[part])
    return measured + {
        "blas_ms": (f"Most of it is numpy's BLAS ({calls['blas']} products of "
                    f"{1e3 * profile['blas_ms'] / max(calls['blas'], 1):.0f} us on average), which the fastest backend's "
                    "own matrix kernels beat on these shapes."),
        "compiled_loops_ms": ("Most of it is the compiled loops between two BLAS products, each thread's over its own "
                              "share of the samples." if shares > 1 else
                              "Most of it is the compiled loops between two BLAS products, which run on one thread: "
                              "run in parallel they contend with BLAS's spinning threads (7x slower, measured on "
                              "ALISTA), while onnxruntime and torch.compile run every operation on all threads."),
        "python_ms": ("Most of it is the layer loop in Python (Numba reaches BLAS only through SciPy, so the "
                      "batched path cannot be one compiled function), one call per product and per loop."),
    }[largest]


def _streaming(report: dict[str, Any]) -> str:
    """Batch 1 of a network with dense weights: bandwidth figures from the JSON."""
    kernel, best = row(report, KERNEL, 1), fastest_other(report, 1)
    if not kernel or not best:
        return ""
    nbytes = report["parameter_bytes"]
    return (f"Every weight is read once per sample for two flops, so the time is the bytes over the bandwidth: the "
            f"kernel streams the network's {nbytes / 1e6:.1f} MB at an effective "
            f"{nbytes / kernel['us_per_sample'] / 1e3:.0f} GB/s (its first layer skips the weights that multiply the "
            f"state starting at zero), "
            f"{best['backend']} at {nbytes / best['us_per_sample'] / 1e3:.0f} GB/s, the memory floor's sum at "
            f"{nbytes / report['memory_floor_us'] / 1e3:.0f} GB/s. The kernel's dot products are LLVM's vectorised "
            f"loops (on AVX-512, four 16-wide accumulators) with a horizontal reduction and an 8-wide, then scalar, tail "
            f"per weight row of 250 or 500; onnxruntime's MLAS runs hand-written kernels over prepacked panels of the "
            f"weights, with no reduction per row. Numba's loops over two or four rows at once, or over column panels, "
            f"compiled to slower code than one row at a time. With weights in 16 or 8 bits the kernel reads half or a "
            f"quarter of the bytes (figures above).")


def _svd(report: dict[str, Any]) -> str:
    return ("Every layer is an SVD of a 100 x 100 matrix, LAPACK's gesdd in every backend: the kernel calls SciPy's "
            "OpenBLAS-backed LAPACK, PyTorch its own LAPACK build, and one SVD has little to share among threads.")


def _operators(report: dict[str, Any]) -> str:
    """Batch 1 of an image network: the compute rates from the JSON."""
    kernel, best = row(report, KERNEL, 1), fastest_other(report, 1)
    rates = (f" The kernel's single sample runs at {kernel['gflops']:.1f} GFLOP/s on one thread, {best['backend']} at "
             f"{best['gflops']:.1f} GFLOP/s on {report['threads']}." if kernel and best else "")
    return ("The layers apply structured operators (convolutions, finite differences, pairwise shrinkage) to an "
            "image per sample. The kernel runs them as compiled loops, vectorised along each image row (a "
            "convolution adds one shifted row per tap), on one thread: a single sample has no product with shared "
            "weights whose rows the threads could share, while torch.compile fuses each layer's arithmetic into "
            "loops over the whole image on every thread." + rates)


def _small(report: dict[str, Any]) -> str:
    return ("The samples are small (tens of entries), so per-call costs dominate: the kernel's entry checks and "
            "its call into the compiled layers take a few microseconds whatever the size.")


# Why a single sample is slower where it is, per spec (the figures come from the report itself).
WHY_SINGLE = {"lista": _streaming, "lista_cp": _streaming, "lista_cpss": _streaming, "alista": _streaming,
              "rpca": _svd, "rpca_factorized": _svd,
              "deblur_tv": _operators, "inpaint_tv": _operators, "learned_primal_dual": _operators,
              "tv_denoise_1d": _small, "poisson_deconv": _small, "sparse_logistic": _small, "huber_l1": _small}


def page(reports: dict[str, dict[str, Any]]) -> str:
    first = next(iter(reports.values()))
    machine = first["machine"]
    lines = ["# Performance", "",
             ("Generated by `make bench` (`python -m unfoldgen.benchmark.report`) from the JSON in "
              "`docs/performance/`; every figure below is read from those files, each section's from one run of "
              "`unfoldgen bench` (its JSON), all on the machine below. Each backend runs in a process of its own with the same thread count, "
              f"{WORKER_ROUNDS} times (the backends in turn), and its fastest process counts; times are medians after "
              "warm-up. The memory floor is the time to read the parameters the kernel reads once, at the same thread "
              "count (the faster of a compiled parallel sum and BLAS's `sdot`); the peak is a 2048 x 2048 float32 "
              "matrix product. Machines differ, and so do the verdicts: rerun `make bench` on yours."), "",
             (f"Machine: {machine['cpu']}, {machine['cores']} cores; Python {machine['python']}, numpy "
              f"{machine['numpy']}, numba {machine['numba']}, torch {machine['torch']}"
              + (f", onnxruntime {machine['onnxruntime']}" if machine.get("onnxruntime") else "") + "."), "",
             "## Summary", "", "The Numba kernel (float32 weights) against the fastest other backend:", "",
             *summary_table(reports), ""]
    for name, report in reports.items():
        lines += _section(name, report)
    return "\n".join(lines).rstrip() + "\n"


def _section(name: str, report: dict[str, Any]) -> list[str]:
    flags = f" --threads {report['threads']}" if name.endswith("thread") else ""
    command = f"unfoldgen bench specs/{report['spec']}.yaml --batch {','.join(map(str, report['batches']))}{flags} --json"
    floor = report.get("memory_floor_us")
    lines = [f"## {name}", "",
             (f"{report['layers']} layers, {report['dtype']}, {report['threads']} threads; "
              f"{report['flops_per_sample'] / 1e6:.2f} MFLOP per sample (counted on the IR); parameters "
              f"{report['parameter_bytes'] / 1e3:.1f} kB (memory floor {f'{floor:.1f} us' if floor else 'not measured'}); working memory "
              f"{report['working_bytes_per_sample'] / 1e3:.1f} kB per sample; measured float32 matmul peak "
              f"{report['peak_gflops']:.0f} GFLOP/s. Run: `{command}` ({report['wall_s']:.0f} s)."), "",
             *results_table(report), ""]
    cold = report["cold_start_s"]
    if cold:
        lines += [(f"Cold start (new process: import the kernel, load the parameters, first sample): "
                   f"{cold['cached']:.2f} s with Numba's cache, {cold['uncached']:.2f} s without."), ""]
    if report["spec"] == "lista":
        lines += ["Targets:", "", *lista_targets(report), "", *synchronisation(report)]
    elif report["spec"].startswith("rpca"):
        lines += ["Targets:", "", *svd_targets(report), ""]
    return lines + checks_lines(report) + low_precision_lines(report) + gaps(report)


def checks_lines(report: dict[str, Any]) -> list[str]:
    """What the PyTorch module's input checks cost per call, against its own time."""
    checks = report.get("module_input_checks_us")
    if not checks:
        return []
    parts = []
    for batch, us in checks.items():
        eager = row(report, "torch_eager", int(batch))
        share = f" ({100 * us / (eager['us_per_sample'] * int(batch)):.1f}% of its forward)" if eager else ""
        parts.append(f"{us:.0f} us per call at batch {batch}{share}")
    return [f"The PyTorch module's input checks (names, dtype, shape, NaN/Inf scan): {'; '.join(parts)}.", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=Path, default=bundled("specs"))
    parser.add_argument("--out", type=Path, default=Path("docs/performance"))
    parser.add_argument("--page", type=Path, default=Path("docs/performance.md"))
    parser.add_argument("--from-json", action="store_true", help="only rewrite the page from the JSON")
    parser.add_argument("--only", default="", help="comma-separated entries or specs to measure again")
    args = parser.parse_args()
    if not args.from_json:
        run_suite(args.specs, args.out, {name for name in args.only.split(",") if name} or None)
    names = [entry.name for entry in suite(args.specs)]
    reports = {name: json.loads((args.out / f"{name}.json").read_text()) for name in names if (args.out / f"{name}.json").exists()}
    text = page(reports).encode()
    write_atomically(args.page, lambda file: file.write(text))
    print(f"wrote {args.page}")


if __name__ == "__main__":
    main()
