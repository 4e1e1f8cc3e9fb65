"""The Numba kernel's fast paths: matrix-vector products fused into the loop that reads them
(one dot per weight row), their rows shared among threads for a single sample, accumulation in
the data's precision, and LAPACK's SVD next to the dependency-free Jacobi sweeps.

Speed is measured by ``make bench``; here each path is checked to compute the same numbers as
the PyTorch module and the plain path."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numba
import numpy as np
import torch

from tests.conftest import ROOT, Built, variant
from tests.test_backends_agree import relative
from unfoldgen.backends.numba_kernel import lower_kernel
from unfoldgen.backends.numba_statements import (
    Copy,
    Loop,
    Product,
    Ref,
    RowProducts,
    Sample,
    Scalar,
    fuse_rows,
    statement_lines,
)
from unfoldgen.compiler import build


def _products_then_loop(target: str) -> list:
    return [Product("matvec", Ref("W_y", "k"), Ref("y"), Ref("tmp0")),
            Product("matvec", Ref("W_x", "k"), Ref("x"), Ref("tmp1")),
            Loop(target, ("prox(", Ref("tmp0", subscript=("i",)), " + ", Ref("tmp1", subscript=("i",)), ")"), (5,), ("i",))]


def test_products_read_at_the_loop_index_are_fused_with_a_scratch_when_they_read_the_target() -> None:
    fused = fuse_rows(_products_then_loop("x"))
    assert len(fused) == 1 and isinstance(fused[0], RowProducts)
    assert fused[0].scratch == "tmp0"  # x = f(W_x x): the new rows cannot overwrite x while it is read
    value = "".join(f if isinstance(f, str) else f.name for f in fused[0].fused_value(Sample().dot))
    assert value == "prox(dot(W_y, y) + dot(W_x, x))"
    assert fuse_rows(_products_then_loop("z"))[0].scratch is None  # z is not read: written directly


def test_products_read_elsewhere_or_transposed_are_not_fused() -> None:
    transposed = [Product("matvec_t", Ref("A"), Ref("r"), Ref("tmp0")),
                  Loop("x", (Ref("tmp0", subscript=("i",)),), (5,), ("i",))]
    assert fuse_rows(transposed) == transposed
    shifted = [Product("matvec", Ref("A"), Ref("r"), Ref("tmp0")),
               Loop("x", (Ref("tmp0", subscript=("j",)),), (5,), ("i",))]
    assert fuse_rows(shifted) == shifted
    chained = [Product("matvec", Ref("A"), Ref("r"), Ref("tmp0")), Copy("x", Ref("tmp0"))]
    assert fuse_rows(chained) == chained


def test_a_large_single_sample_shares_its_rows_among_threads(tmp_path, rng, monkeypatch) -> None:
    """LISTA with 512 x 576 weights per layer: solve_one runs unrolled_one (parallel rows) and
    equals the module (the serial unrolled, which batches run, is checked on every spec by
    test_backends_agree)."""
    built = variant("lista", tmp_path, dims={"m": 64, "n": 512}, layers=3)
    source = (built.directory / "kernel.py").read_text()
    assert "def unrolled_one(" in source and "prange(512)" in source
    assert "acc = v.dtype.type(0)" in source  # float32 data accumulate in float32
    constants = {"A": rng.standard_normal((64, 512)) / 8}
    model = built.model.Unfolded(**constants, dtype=torch.float64)
    with torch.no_grad():
        for parameter in model.parameters():  # every layer its own weights
            parameter.mul_(1 + 0.2 * torch.rand_like(parameter))
    y = rng.standard_normal((1, 64))
    with torch.no_grad():
        expected = model(y=torch.from_numpy(y))["x"].numpy()[0]
    kernel, params = built.kernel, model.kernel_params()
    chosen = []
    rows_in_parallel = kernel._rows_in_parallel
    monkeypatch.setattr(kernel, "_rows_in_parallel", lambda: chosen.append(rows_in_parallel()) or chosen[-1])
    assert relative(kernel.solve_one(params, y=y[0])["x"], expected) < 1e-10
    assert chosen == [numba.get_num_threads() > 1]
    # Numba's fallback threading layer starts a parallel region slowly: the rows stay serial
    monkeypatch.setattr(numba, "threading_layer", lambda: "workqueue")
    chosen.clear()
    assert relative(kernel.solve_one(params, y=y[0])["x"], expected) < 1e-10
    assert chosen == [False]
    # the compiled entry runs either path, whatever this machine's thread count
    checked = kernel._checked_params(params, np.dtype(np.float64)).values()
    for parallel in (True, False):
        x = np.empty(512)
        assert kernel._one_sample(parallel, *checked, y[0], x) == 0
        assert relative(x, expected) < 1e-10


def test_lapack_and_jacobi_svds_give_the_same_singular_value_thresholding(tmp_path, rng) -> None:
    built = variant("rpca", tmp_path, dims={"m": 9, "n": 6}, layers=2)
    kernel = built.kernel
    assert kernel.svd_into is kernel.lapack_svd  # SciPy is in the test extras
    matrix = rng.standard_normal((9, 6))
    results = {}
    for svd in (kernel.lapack_svd, kernel.jacobi_svd):
        rows, vt = np.empty((6, 9)), np.empty((6, 6))
        svd(matrix, rows, vt)
        assert relative(rows.T @ vt, matrix) < 1e-12  # M = sum_j rows[j] (x) vt[j]
        results[svd] = np.sort(np.linalg.norm(rows, axis=1))
    assert np.allclose(results[kernel.lapack_svd], results[kernel.jacobi_svd], atol=1e-12)
    assert np.allclose(results[kernel.lapack_svd], np.linalg.svd(matrix, compute_uv=False)[::-1], atol=1e-12)


def test_a_batch_goes_parallel_from_shared_min_flops_on_and_equals_sample_by_sample(tmp_path, rng, monkeypatch) -> None:
    """solve() runs a batch of at least SHARED_MIN_FLOPS in _solve_batch (the samples shared
    among the threads by a prange), a smaller one in _solve_samples (one after another, and
    no parallel wrapper to compile): both give what the samples give one by one."""
    built = variant("ista_lasso", tmp_path, dims={"m": 6, "n": 9}, layers=3)
    kernel = built.kernel
    params = built.model.Unfolded(A=rng.standard_normal((6, 9))).kernel_params()
    assert kernel.SAMPLE_FLOPS > 0
    ran: list[str] = []

    def recorded(name):
        run = getattr(kernel, name)
        return lambda *arguments: (ran.append(name), run(*arguments))

    for name in ("_solve_samples", "_solve_batch"):
        monkeypatch.setattr(kernel, name, recorded(name))
    for batch in (1, 2, 5):
        y = rng.standard_normal((batch, 6))
        expected = np.stack([kernel.solve_one(params, y=sample)["x"] for sample in y])
        for threshold, path in ((batch * kernel.SAMPLE_FLOPS, "_solve_batch"), (batch * kernel.SAMPLE_FLOPS + 1, "_solve_samples")):
            monkeypatch.setattr(kernel, "SHARED_MIN_FLOPS", threshold)
            ran.clear()
            assert relative(kernel.solve(params, y=y)["x"], expected) < 1e-12
            assert ran == [path]


def test_large_weights_run_the_batch_on_its_last_axis_and_equal_the_module(tmp_path, rng) -> None:
    """With every shared weight at least BATCH_LAST_MIN_SIDE on a side and only elementwise
    steps between the products, the BLAS path keeps the batch last (``W @ X``, ``A.T @ R``);
    small weights keep it first. Both equal the module, sample by sample and in float32."""
    from tests.test_backends_agree import assert_backends_agree
    from unfoldgen.backends.numba_batched import BATCH_LAST_MIN_SIDE

    side = BATCH_LAST_MIN_SIDE
    for spec, dims in (("lista_small", {"m": side, "n": side + 4}), ("ista_lasso", {"m": side, "n": side + 4})):
        built = variant(spec, tmp_path / spec, dims=dims, layers=2)
        source = (built.directory / "kernel.py").read_text()
        assert "# the batch on the last axis" in source
        assert ".T, tmp" in source if spec == "ista_lasso" else "np.matmul(W_x[k], x, out=" in source
        assert_backends_agree(built, rng, batch=17)
    small = variant("ista_lasso", tmp_path / "small", dims={"m": side - 1, "n": side + 4}, layers=2)
    assert "# the batch on the last axis" not in (small.directory / "kernel.py").read_text()


def test_loops_read_a_layers_scalars_from_locals_bound_before_them(tmp_path, rng) -> None:
    """``threshold[k]`` is read once a layer, into ``threshold_k``: inside the loop LLVM would
    load it again for every element. Where the spec already has that name (here the input
    ``threshold_k``), the local takes another spelling, and the kernel still equals the module."""
    spec = (ROOT / "specs" / "lista.yaml").read_text()
    (tmp_path / "lista.yaml").write_text(re.sub(r"\by\b", "threshold_k", spec))
    result = build(tmp_path / "lista.yaml", tmp_path / "out")
    built = Built(result.directory, result.program)
    source = (built.directory / "kernel.py").read_text()
    body = source[source.index("def unrolled("):source.index("def _rows0(")]
    assert "threshold_k_ = threshold[k]" in body and "threshold[k]" not in body.replace("= threshold[k]", "")
    program = built.program
    for statement in lower_kernel(program).steps[0].statements:
        loop = statement.loop if isinstance(statement, RowProducts) else statement
        assert not any(isinstance(f, Scalar) and f.indexed for f in loop.value)
    kernel = built.kernel
    model = built.model.Unfolded(A=torch.from_numpy(rng.standard_normal((250, 500)) / 16), dtype=torch.float64)
    observed = rng.standard_normal((3, 250))
    with torch.no_grad():
        expected = model(threshold_k=torch.from_numpy(observed))["x"].numpy()
    params = {name: value.astype(np.float64) for name, value in model.kernel_params().items()}
    assert relative(kernel.solve(params, threshold_k=observed)["x"], expected) < 1e-10


def _image_loop(*refs: Ref) -> Loop:
    value: list = [Scalar("step_k", frozenset({"step", "k"}))]
    for ref in refs:
        value += [" + ", ref]
    return Loop("X", tuple(value), (4, 6), ("i", "j"))


def test_a_loop_over_a_matrix_runs_once_over_its_entries_where_every_array_is_read_whole() -> None:
    flat = statement_lines(_image_loop(Ref("Y", subscript=("i", "j")), Ref("Z", subscript=("i", "j"))))
    assert flat == ["for i in range(24):", "    X.flat[i] = step_k + Y.flat[i] + Z.flat[i]"]
    for other in (Ref("Y", subscript=("j", "i")), Ref("Y", "k", ("i", "j")), Ref("Y", subscript=("i", "j"), transposed=True)):
        nested = statement_lines(_image_loop(Ref("Z", subscript=("i", "j")), other))
        assert nested[:2] == ["for i in range(4):", "    for j in range(6):"], other
    batched = statement_lines(_image_loop(Ref("Y", subscript=("i", "j"))), Sample(index="b", arrays=frozenset({"X", "Y"})))
    assert batched[:2] == ["for i in range(4):", "    for j in range(6):"]  # the batch's loops index the sample


def test_a_large_blas_batch_runs_one_share_per_thread_with_one_blas_thread(tmp_path, rng, monkeypatch) -> None:
    """From SPLIT_MIN_FLOPS on, with more than one Numba thread, the BLAS path runs one share
    of the samples per thread (``_solve_blas_shares``), each through ``_solve_blas`` on its own
    thread with BLAS held to one thread; the result equals the whole batch's and the module's,
    in float64 and float32, for batch-first (FISTA) and batch-last (LISTA) layouts. BLAS has its
    threads back afterwards; without threadpoolctl the whole batch runs as before."""
    import importlib.util

    if numba.config.NUMBA_NUM_THREADS < 2:  # the machine has one core: nothing to share
        return
    find_spec, threads = importlib.util.find_spec, numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        _check_shares(tmp_path, rng, monkeypatch, find_spec)
    finally:
        numba.set_num_threads(threads)


def _check_shares(tmp_path, rng, monkeypatch, find_spec) -> None:
    """The checks of the test above, with two Numba threads (restored by the test)."""
    import importlib.util
    import threading

    from threadpoolctl import threadpool_info

    from tests.test_backends_agree import assert_backends_agree, solve_through_blas

    shares: list[tuple[int, int]] = []  # the thread and the samples of each _solve_blas call

    def blas_threads() -> list[int]:
        return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]

    for spec, dims in (("fista_lasso", {"m": 8, "n": 12}), ("lista_small", {"m": 250, "n": 254})):
        built = variant(spec, tmp_path / spec, dims=dims, layers=3)
        kernel = built.kernel
        constants = {name: rng.standard_normal(shape) / 3 for name, shape in built.program.constants.items()}
        params = built.model.Unfolded(**constants, dtype=torch.float64).kernel_params()
        y = rng.standard_normal((21, dims["m"]))
        whole = solve_through_blas(kernel, params, {"y": y})["x"]  # below SPLIT_MIN_FLOPS: one share
        shares.clear()
        before = blas_threads()
        solve_blas = kernel._solve_blas

        def recorded(*arguments, solve_blas=solve_blas):
            shares.append((threading.get_ident(), arguments[-1].shape[0]))
            return solve_blas(*arguments)

        monkeypatch.setattr(kernel, "_solve_blas", recorded)
        monkeypatch.setattr(kernel, "SPLIT_MIN_FLOPS", 0)
        split = solve_through_blas(kernel, params, {"y": y})["x"]
        assert sorted(size for _, size in shares) == [10, 11] and len({thread for thread, _ in shares}) == 2
        assert relative(split, whole) < 1e-12
        assert blas_threads() == before
        monkeypatch.setattr(kernel, "_solve_blas", solve_blas)
        monkeypatch.setattr(kernel, "BLAS_MIN_BATCH", 1)
        assert_backends_agree(built, rng, batch=6)  # the module, float64 and float32, through the shares
        shares.clear()
        monkeypatch.setattr(kernel, "_solve_blas", recorded)
        monkeypatch.setattr(kernel, "_POOL", [])
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "threadpoolctl" else find_spec(name))
        assert relative(kernel.solve(params, y=y)["x"], whole) < 1e-12
        assert [size for _, size in shares] == [21]
        monkeypatch.undo()



POINTER_MODULES_IN_A_PROCESS = """
import json, sys
import numpy as np
before, folder = sys.argv[1], sys.argv[2]
if before == "scipy.linalg":
    import scipy.linalg
elif before == "no scipy":
    sys.modules["scipy"] = None  # find_spec('scipy') is None, as where SciPy is not installed
finders = list(sys.meta_path)
sys.path.insert(0, folder)
import kernel
report = {name: name in sys.modules for name in ("scipy.linalg", *kernel.SCIPY_POINTER_MODULES)}
report["new_finders"] = [type(f).__name__ for f in sys.meta_path if f not in finders]
if before == "nothing":
    Y = np.load(folder + "/Y.npy")
    np.savez(folder + "/out.npz", **kernel.solve_one(dict(np.load(folder + "/params.npz")), Y=Y))
    report["linalg_after_the_first_result"] = "scipy.linalg" in sys.modules
    import scipy.linalg
    import scipy.linalg.cython_blas
    report["attached"] = (scipy.linalg.cython_blas is sys.modules["scipy.linalg.cython_blas"]
                          and scipy.linalg.cython_lapack is sys.modules["scipy.linalg.cython_lapack"])
    report["linalg_works"] = bool(np.allclose(scipy.linalg.svdvals(Y), np.linalg.svd(Y, compute_uv=False)))
print(json.dumps(report))
"""


def test_the_kernel_loads_only_scipys_pointer_modules_and_a_later_scipy_linalg_gets_them(tmp_path, rng) -> None:
    """Numba reaches BLAS and LAPACK through scipy.linalg.cython_blas/cython_lapack; the kernel
    loads those two at import without running scipy.linalg (0.1 s of a cached start). The
    LAPACK SVD then runs through them, scipy.linalg stays unimported until the user imports it,
    and it then has them as attributes. Where scipy.linalg is already imported, or SciPy is
    missing, the kernel changes nothing."""
    built = variant("rpca", tmp_path, dims={"m": 9, "n": 6}, layers=2)
    folder = str(built.directory)
    Y = rng.standard_normal((9, 6))
    params = built.model.Unfolded(dtype=torch.float64).kernel_params()
    np.save(built.directory / "Y.npy", Y)
    np.savez(built.directory / "params.npz", **params)

    def run(before: str) -> dict:
        # Numba's cache of its own (the in-process kernel has another module name)
        env = os.environ | {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}
        done = subprocess.run([sys.executable, "-c", POINTER_MODULES_IN_A_PROCESS, before, folder],
                              capture_output=True, text=True, check=True, env=env)
        return json.loads(done.stdout.strip().splitlines()[-1])

    fresh = run("nothing")
    assert fresh == {"scipy.linalg": False, "scipy.linalg.cython_blas": True, "scipy.linalg.cython_lapack": True,
                     "new_finders": ["_AttachPointerModules"], "linalg_after_the_first_result": False,
                     "attached": True, "linalg_works": True}
    expected = built.kernel.solve_one(params, Y=Y)
    with np.load(built.directory / "out.npz") as out:
        assert set(out.files) == set(expected)
        for name in expected:
            assert np.array_equal(out[name], expected[name])
    already = run("scipy.linalg")  # which itself imports the pointer modules
    assert already["scipy.linalg"] and already["new_finders"] == []
    assert run("no scipy") == {"scipy.linalg": False, "scipy.linalg.cython_blas": False,
                               "scipy.linalg.cython_lapack": False, "new_finders": []}
