"""The Python API: what the command line does, as typed functions (``import unfoldgen``).

``compile`` derives a spec and imports what it emits without touching the caller's folders;
``build``, ``train``, ``evaluate`` and ``export`` mirror the commands of the same names and
return what those print; ``load`` gives a trained network in one call. Bad specs raise
:class:`unfoldgen.SpecError` (the CLI prints the same error and exits with code 2).

Heavy packages (torch, numba, SymPy) are imported on first use, so ``import unfoldgen`` stays
cheap.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from unfoldgen.errors import SpecError

if TYPE_CHECKING:
    import torch

    from unfoldgen.compiler import BuildResult
    from unfoldgen.exporter import ExportResult
    from unfoldgen.ir import Program
    from unfoldgen.spec.model import TrainSpec
    from unfoldgen.training.evaluate import EvalReport
    from unfoldgen.training.network import UnfoldedNetwork
    from unfoldgen.training.trainer import TrainResult

SpecPath = str | os.PathLike[str]


@dataclass
class Compiled:
    """A compiled spec: the generated files, imported. ``Unfolded`` is the network class (of
    ``model.py``); ``kernel`` and ``numpy_loop`` are imported on first use (``kernel`` needs
    numba, and compiles on its first call); ``derivation`` is DERIVATION.md."""

    program: Program
    directory: Path  # where the files were written: a cache folder, never the caller's tree
    files: dict[str, str]
    _modules: dict[str, ModuleType] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return f"Compiled({self.name!r}, directory={str(self.directory)!r})"

    @property
    def name(self) -> str:
        return self.program.name

    @property
    def model(self) -> ModuleType:
        """``model.py`` as a module: ``Unfolded``, ``LAYERS``, ``INPUT_SHAPES``, ..."""
        return self._module("model")

    @property
    def Unfolded(self) -> type[UnfoldedNetwork]:
        return self.model.Unfolded

    @property
    def kernel(self) -> ModuleType:
        """``kernel.py``: ``solve(params, **inputs)`` and ``solve_one``; params from
        ``Unfolded(...).kernel_params()``."""
        return self._module("kernel")

    @property
    def numpy_loop(self) -> ModuleType:
        return self._module("numpy_loop")

    @property
    def derivation(self) -> str:
        return self.files["DERIVATION.md"]

    def _module(self, stem: str) -> ModuleType:
        if stem not in self._modules:
            from unfoldgen.compiler import load_generated_module

            digest = self.directory.name.rsplit("-", 1)[-1]
            self._modules[stem] = load_generated_module(self.directory / f"{stem}.py",
                                                        f"unfoldgen_compiled_{self.name}_{digest}_{stem}")
        return self._modules[stem]


def cache_dir() -> Path:
    """Where ``compile`` writes: ``$UNFOLDGEN_CACHE``, else ``$XDG_CACHE_HOME/unfoldgen``, else
    ``~/.cache/unfoldgen``. Folders are named by content, so Numba's on-disk cache of a kernel
    is reused by later processes."""
    override = os.environ.get("UNFOLDGEN_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "unfoldgen"


def compile(spec: SpecPath) -> Compiled:
    """Derive ``spec`` and import the generated module, kernel and NumPy loop::

        net = unfoldgen.compile("specs/ista_lasso.yaml")
        x = net.Unfolded(A=A)(y=y)["x"]
    """
    from unfoldgen.compiler import compile_program, write_atomically
    from unfoldgen.ir import lower
    from unfoldgen.spec import load_spec

    program = lower(load_spec(Path(spec)))
    files = compile_program(program)
    digest = hashlib.sha256("".join(f"{n}\0{t}\0" for n, t in sorted(files.items())).encode()).hexdigest()[:16]
    directory = cache_dir() / f"{program.name}-{digest}"
    if not _holds(directory, files):
        try:
            write_atomically(directory, files)
        except OSError:
            if not _holds(directory, files):  # else another process wrote the same files meanwhile
                raise
    return Compiled(program, directory, files)


def _holds(directory: Path, files: dict[str, str]) -> bool:
    return all((directory / name).is_file() and (directory / name).read_text(encoding="utf-8") == text
               for name, text in files.items())


def build(spec: SpecPath, outdir: SpecPath = "generated") -> BuildResult:
    """``unfoldgen build``: write ``OUTDIR/<name>/`` atomically."""
    from unfoldgen.compiler import build as build_spec

    return build_spec(Path(spec), Path(outdir))


def train(spec: SpecPath, out: SpecPath | None = None, *, resume: bool = False, stop_after: int | None = None,
          quiet: bool = True, **overrides: Any) -> TrainResult:
    """``unfoldgen train``: train as the spec's ``train`` section says, with ``overrides`` of
    its keys (``steps=200``, ``lr=0.01``, ...); the run folder defaults to ``runs/<name>``."""
    from unfoldgen.spec import load_spec
    from unfoldgen.training.trainer import Trainer

    loaded = load_spec(Path(spec))
    settings = train_settings(loaded.train, overrides)
    folder = Path(out) if out is not None else Path("runs") / loaded.name
    return Trainer(loaded, settings, folder, quiet=quiet, stop_after=stop_after).run(resume=resume)


def train_settings(train: TrainSpec, overrides: dict[str, Any]) -> TrainSpec:
    """``train`` with ``overrides`` checked and applied; a bad value is a SpecError naming the
    flag (``--batch-size``), as the CLI spells it."""
    from unfoldgen.spec.experiment import OverrideError, apply_overrides

    try:
        return apply_overrides(train, overrides)
    except OverrideError as exc:
        raise SpecError(exc.message, key_path=f"--{exc.key.replace('_', '-')}", hint=exc.hint) from None


def evaluate(spec: SpecPath, weights: SpecPath, *, samples: int | None = None,
             classical_iterations: int | None = None) -> EvalReport:
    """``unfoldgen eval``: NMSE per layer of the trained and untrained network and of the
    classical algorithm; ``.table()``, ``.as_json()``."""
    from unfoldgen.spec import load_spec
    from unfoldgen.training.evaluate import evaluate as evaluate_spec

    return evaluate_spec(load_spec(Path(spec)), Path(weights), samples, classical_iterations)


def export(spec: SpecPath, weights: SpecPath, outdir: SpecPath, *, dtype: str = "float32",
           format: str = "numba", weights_dtype: str | None = None) -> ExportResult:
    """``unfoldgen export``: a folder that runs without unfoldgen (``numba``: kernel.py and
    params.npz; ``onnx``: model.onnx checked with onnxruntime). ``weights_dtype`` (float16,
    bfloat16, int8) stores the kernel's dense weights in low precision."""
    from unfoldgen.exporter import export as export_spec

    return export_spec(Path(spec), Path(weights), Path(outdir), dtype, format, weights_dtype)


def load(spec: SpecPath, weights: SpecPath, *, dtype: torch.dtype | None = None,
         device: torch.device | str | None = None) -> UnfoldedNetwork:
    """The trained network of ``spec`` from the ``weights.pt`` that ``train`` wrote (constants
    included), in eval mode: ``unfoldgen.load(spec, weights)(y=y)["x"]``. dtype: the weights'
    unless given."""
    from unfoldgen.ir import lower
    from unfoldgen.spec import load_spec
    from unfoldgen.training.network import trained_network

    network = trained_network(lower(load_spec(Path(spec))), Path(weights), dtype, device)
    network.eval()
    return network

