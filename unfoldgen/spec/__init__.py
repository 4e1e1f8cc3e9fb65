"""Stage 1: read a spec file (untrusted YAML) and validate it into a typed :class:`Spec`."""

from unfoldgen.spec.load import load_spec, load_spec_text
from unfoldgen.spec.model import (
    AlgorithmSpec,
    LearnSpec,
    Spec,
    TensorDecl,
    VariableDecl,
)

__all__ = [
    "AlgorithmSpec",
    "LearnSpec",
    "Spec",
    "TensorDecl",
    "VariableDecl",
    "load_spec",
    "load_spec_text",
]
