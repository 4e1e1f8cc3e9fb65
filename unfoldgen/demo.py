"""``make demo``: build specs/lista.yaml, run the untrained module and the Numba kernel on a
random problem, and print their agreement and per-sample time."""

from __future__ import annotations

import tempfile
import time

import numpy as np
import torch

from unfoldgen.compiler import build, load_generated_module
from unfoldgen.resources import bundled_spec


def main() -> None:
    with tempfile.TemporaryDirectory() as outdir:
        result = build(bundled_spec("lista"), outdir)
        print(f"built {result.program.name} into {result.directory}")
        model_module = load_generated_module(result.directory / "model.py", "demo_lista_model")
        kernel = load_generated_module(result.directory / "kernel.py", "demo_lista_kernel")
        m, n = result.program.constants["A"]
        rng = np.random.default_rng(0)
        A = rng.standard_normal((m, n)) / np.sqrt(m)
        A /= np.linalg.norm(A, axis=0)
        x_true = rng.standard_normal((256, n)) * (rng.random((256, n)) < 0.1)
        y = x_true @ A.T
        model = model_module.Unfolded(A=A, dtype=torch.float64)
        with torch.no_grad():
            start = time.perf_counter()
            torch_out = model(y=torch.from_numpy(y))["x"].numpy()
            torch_time = time.perf_counter() - start
        params = model.kernel_params()
        kernel.solve(params, y=y[:2])  # compile (cached on disk afterwards)
        start = time.perf_counter()
        numba_out = kernel.solve(params, y=y)["x"]
        numba_time = time.perf_counter() - start
        one = kernel.solve_one(params, y=y[0])["x"]
        start = time.perf_counter()
        for i in range(32):
            kernel.solve_one(params, y=y[i])
        one_time = (time.perf_counter() - start) / 32
        rel = np.linalg.norm(numba_out - torch_out) / np.linalg.norm(torch_out)
        nmse = 10 * np.log10(np.sum((torch_out - x_true) ** 2) / np.sum(x_true**2))
        print(f"untrained LISTA = ISTA, {result.program.layers} layers, A {m}x{n}, batch 256, float64")
        print(f"torch vs numba: relative difference {rel:.2e} (single sample: "
              f"{np.abs(one - torch_out[0]).max():.2e})")
        print(f"NMSE of 16 ISTA iterations: {nmse:.2f} dB")
        print(f"per sample: torch {1e6 * torch_time / 256:.1f} us (batch 256), "
              f"numba {1e6 * numba_time / 256:.1f} us (batch 256), numba {1e6 * one_time:.1f} us (batch 1)")


if __name__ == "__main__":
    main()
