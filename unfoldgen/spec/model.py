"""The validated spec: plain, immutable data with every expression kept as located text."""

from __future__ import annotations

from dataclasses import dataclass, field

from unfoldgen.errors import SpecError

TYING_CHOICES = ("per_layer", "shared", "fixed")
METHODS = ("gradient_descent", "proximal_gradient", "fista", "projected_gradient")


@dataclass(frozen=True)
class Located:
    """A piece of spec text together with where it came from (for error messages)."""

    text: str
    key_path: str
    line: int | None

    def error(self, message: str, hint: str | None = None) -> SpecError:
        return SpecError(message, key_path=self.key_path, line=self.line, hint=hint)


@dataclass(frozen=True)
class TensorDecl:
    """An input or a constant: a name and a shape made of dim names or integers."""

    name: str
    shape: tuple[str | int, ...]
    where: Located


@dataclass(frozen=True)
class VariableDecl:
    """An unknown of the problem; ``init`` is ``zeros`` or an expression of inputs/constants."""

    name: str
    shape: tuple[str | int, ...]
    init: Located


@dataclass(frozen=True)
class AlgorithmSpec:
    method: str
    layers: int
    step: Located
    where: Located


@dataclass(frozen=True)
class LearnSpec:
    """What becomes trainable. ``hyperparameters`` maps a hyperparameter name to a tying
    (``per_layer``, ``shared`` or ``fixed``). The other paradigms get sibling sections."""

    hyperparameters: dict[str, Located] = field(default_factory=dict)


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    dims: dict[str, int]
    inputs: dict[str, TensorDecl]
    constants: dict[str, TensorDecl]
    params: dict[str, float]
    variables: dict[str, VariableDecl]
    smooth: Located
    nonsmooth: tuple[Located, ...]
    algorithm: AlgorithmSpec
    learn: LearnSpec
    file: str
    text: str

    def size_of(self, dim: str | int) -> int:
        return dim if isinstance(dim, int) else self.dims[dim]

    def concrete_shape(self, shape: tuple[str | int, ...]) -> tuple[int, ...]:
        return tuple(self.size_of(d) for d in shape)
