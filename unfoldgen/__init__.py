"""unfoldgen: compile an optimization spec into a deep-unfolded network.

Pipeline (one package per stage, each importing only from the stages before it):
``spec`` (parse, validate) -> ``symbolic`` (derive gradient, Lipschitz constant, proxes)
-> ``ir`` (one layer's steps and parameters) -> ``backends`` (torch, numba, derivation)
-> ``compiler`` / ``cli`` / ``api``.

The Python API (see docs/api.md)::

    import unfoldgen
    net = unfoldgen.compile("spec.yaml")        # net.Unfolded, net.kernel, net.numpy_loop, net.derivation
    unfoldgen.build("spec.yaml", "generated")   # as `unfoldgen build`
    unfoldgen.train("spec.yaml", "runs/x")      # as `unfoldgen train`
    unfoldgen.evaluate("spec.yaml", "runs/x/weights.pt")
    unfoldgen.export("spec.yaml", "runs/x/weights.pt", "deploy", format="onnx")
    model = unfoldgen.load("spec.yaml", "runs/x/weights.pt")
"""

__version__ = "0.1.0"

from unfoldgen.api import Compiled, build, cache_dir, compile, evaluate, export, load, train
from unfoldgen.errors import SpecError

__all__ = ["Compiled", "SpecError", "__version__", "build", "cache_dir", "compile", "evaluate", "export",
           "load", "train"]
