"""The emitted code's own names, spelled around the spec's.

The spec's names keep their spelling in the generated code, as parameters and locals of the
functions that run the layers (``forward``, ``unrolled``, ``solve``...). Those functions also
read globals (``np``, ``LAYERS``, ``matvec``, ``range``...) and define names of their own (the
keywords ``layers`` and ``dtype``, the receiver ``self``...). Where a spec name has one of
these spellings, the emitted code spells its own name differently (``around``: ``np_``) and,
for a global, binds that spelling at the end of the module (``np_ = np``): definitions at
module level keep their usual names, which no spec name can shadow, since the spec's names
are never module-level. For a spec without such a name nothing changes.
"""

from __future__ import annotations

import builtins
import string
from dataclasses import dataclass, field

from unfoldgen.ir.program import Program
from unfoldgen.names import around

# Globals read by the functions that hold the spec's names: imports, module-level names of the
# emitted files, and the builtins they call.
GLOBALS = (
    "np", "torch", "math", "prange",
    "LAYERS", "SUPPORT", "SEED", "INPUT_SHAPES", "OUTPUT_SHAPES", "BLAS_MIN_BATCH",
    "dot", "matvec", "matvec_t", "matmat", "matmat_nt", "invert", "jacobi_svd", "svd_into", "svd_factor", "analytic_weight",
    "soft_threshold_support", "conv3x3", "add_shifted", "pad_flat", "crop_flat", "softplus", "unrolled",
    "unrolled_one", "all_finite",
    "dot_float16", "dot_bfloat16", "dot_int8", "dequantize_float16", "dequantize_bfloat16", "dequantize_int8",
    "range", "len", "int", "bool", "tuple", "ValueError",
)
# Names the emitted code defines where the spec's names live: the generated API's keywords,
# the methods' receiver, and locals.
OWN = ("self", "super", "params", "layers", "all_layers", "on_layer", "dtype", "device", "reference", "generator",
       "hidden", "array", "rows_in_parallel")


# Every name an emitted file binds at module level (imports, constants, functions, the class),
# and the builtins: a value folded into an exported kernel as a module-level constant must not
# take one of these (it stays a param instead).
MODULE_NAMES = frozenset({
    "np", "torch", "math", "numba", "njit", "prange",
    "ARRAY_PARAMS", "BLAS_MIN_BATCH", "INPUT_SHAPES", "LAYERS", "OUTPUT_SHAPES", "PER_LAYER_PARAMETERS",
    "SCALAR_PARAMS", "SEED", "SPEC_DTYPE", "SUPPORT", "Unfolded", "analytic_weight", "invert", "jacobi_svd", "svd_into", "lapack_svd",
    "_lapack_usable", "_one_blas_thread", "contextlib", "importlib", "SAMPLE_FLOPS", "SHARED_MIN_FLOPS",
    "_rows_in_parallel", "_one_sample", "all_finite", "_solve_samples", "_solve_batch", "_solve_blas",
    "SPLIT_MIN_FLOPS", "_POOL", "_SPLITTING", "_solve_blas_shares", "_in_shares", "threading",
    "dot", "matmat", "matmat_nt", "matvec", "matvec_t", "soft_threshold_support", "unrolled_one", "solve", "solve_one", "svd_factor",
    "unrolled", "conv3x3", "add_shifted", "pad_flat", "crop_flat", "softplus", "WEIGHT_DTYPES", "float32_from_bits", "float32_from_half_bits", "intrinsic", "types", "ir",
    "dot_float16", "dot_bfloat16", "dot_int8", "dequantize_float16", "dequantize_bfloat16", "dequantize_int8",
    "sys", "SCIPY_POINTER_MODULES", "_load_scipy_pointer_modules", "_AttachPointerModules",
    *dir(builtins),
})


# Names that the code Numba generates for a parallel loop (prange) binds or reads in the function's
# scope: the parallel function's parameters are spelled around them.
PARFOR_NAMES = frozenset({"np", "numba", "range", "print", "sched"})


@dataclass(frozen=True)
class Spelling:
    """Each name of :data:`GLOBALS` and :data:`OWN` as one emitted file spells it (``g.np``).

    It records the names the file's code asked for (``used``), so that the file binds the
    displaced spellings of exactly those globals (:attr:`aliases`): one per emitted file."""

    names: dict[str, str]
    used: set[str] = field(default_factory=set, compare=False)

    def __getattr__(self, name: str) -> str:
        if name not in self.names:
            raise AttributeError(name)
        self.used.add(name)
        return self.names[name]

    def __getitem__(self, name: str) -> str:
        return getattr(self, name)

    def of(self, name: str) -> str:
        """``name`` as spelled, for any name (the spec's and allocated ones are their own)."""
        return getattr(self, name) if name in self.names else name

    def format(self, template: str, **values: object) -> str:
        """``template`` with ``{np}``, ``{self}``... replaced by their spellings."""
        fields = {field for _, field, _, _ in string.Formatter().parse(template) if field}
        self.used.update(fields & self.names.keys())
        return template.format(**self.names, **values)

    def uses(self, name: str) -> bool:
        """Whether this file's code asked for ``name`` (after a first rendering: see ``render``)."""
        return name in self.used

    @property
    def aliases(self) -> list[tuple[str, str]]:
        """``(spelling, global)`` for each global this file's code read under another name."""
        return [(self.names[name], name) for name in GLOBALS if self.names[name] != name and name in self.used]

    @property
    def renamed(self) -> dict[str, str]:
        return {name: spelled for name, spelled in self.names.items() if spelled != name}


CANONICAL = Spelling({name: name for name in (*GLOBALS, *OWN)})  # for code that holds no spec name


def spelling(program: Program) -> Spelling:
    """A fresh spelling for one emitted file of ``program``."""
    taken = program.names()
    reserved = taken | set(GLOBALS) | set(OWN)
    names: dict[str, str] = {}
    for name in (*GLOBALS, *OWN):
        names[name] = name if name not in taken else around(name, reserved)
        reserved.add(names[name])
    return Spelling(names)
