"""The validated spec: plain, immutable data with every expression kept as located text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from unfoldgen.errors import SpecError

if TYPE_CHECKING:
    from unfoldgen.spec.reader import SpecReader

TYING_CHOICES = ("per_layer", "shared", "fixed")
OBJECTIVE_POLICIES = ("untied", "tied", "coupled", "analytic", "weights")
ACTIVATIONS = ("relu", "tanh", "softplus")
NETWORK_KINDS = ("mlp", "cnn")


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
    """The ``algorithm`` section: the method, the number of layers, and the method's own keys.

    The spec stage does not know the methods: ``options`` keeps the other keys as raw YAML
    values, and the method (a class in ``unfoldgen.ir.methods``) checks and reads them with
    ``reader`` when the spec is lowered, so adding a method never touches the spec stage.
    """

    method: str
    layers: int
    where: Located
    options: dict[str, Any]
    reader: SpecReader = field(compare=False, repr=False)


@dataclass(frozen=True)
class NetworkSpec:
    """A small network of paradigm 3 (correction) or 4 (learned prox)."""

    kind: str
    widths: tuple[int, ...]
    activation: str
    tying: str
    where: Located


@dataclass(frozen=True)
class SupportSelection:
    """LISTA-CPSS: at layer k the ``min(fraction*(k+1), max_fraction)`` share of entries of
    largest magnitude pass the soft threshold untouched."""

    fraction: float
    max_fraction: float
    where: Located


@dataclass(frozen=True)
class LearnSpec:
    """What becomes trainable, one section per paradigm.

    ``hyperparameters`` (1) maps a hyperparameter name to a tying (``per_layer``, ``shared`` or
    ``fixed``); ``objective`` (2) names the policy for the linear maps of the update;
    ``correction`` (3) and ``prox`` (4) describe networks; ``seed`` seeds their initialisation.
    """

    hyperparameters: dict[str, Located] = field(default_factory=dict)
    objective: Located | None = None
    support_selection: SupportSelection | None = None
    correction: NetworkSpec | None = None
    prox: NetworkSpec | None = None
    seed: int = 0


# half_normal: |N(0, std^2)|, a nonnegative matrix; gaussian_blur: a normalised Gaussian kernel of
# standard deviation ``width`` pixels; mask: 1 with probability ``density``, else 0
CONSTANT_LAWS = ("gaussian", "half_normal", "gaussian_blur", "mask")
NORMALIZATIONS = ("columns", "none")
TRUTH_LAWS = ("sparse", "gaussian", "low_rank", "piecewise_constant")
VALUE_LAWS = ("normal", "uniform", "sign", "positive")
LOSSES = ("supervised", "deep_supervision", "unsupervised")
SCHEMES = ("end_to_end", "layerwise")
SCHEDULES = ("cosine", "constant", "step")
DTYPES = ("float32", "float64")
DEVICES = ("auto", "cpu", "cuda")
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class ConstantSource:
    """Where a constant comes from: a seeded law, or an array in a ``.npy``/``.npz`` file."""

    where: Located
    law: str | None = None
    normalize: str = "columns"
    std: float | None = None  # None: 1/sqrt(rows)
    width: float = 1.0  # gaussian_blur: the kernel's standard deviation, in pixels
    density: float = 0.5  # mask: the probability that an entry is kept
    file: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class TruthLaw:
    """The law of one ground-truth tensor of a sample.

    ``sparse``: each entry is nonzero with probability ``density``, with values from
    ``values`` (normal, uniform in [-1, 1], sign +-1, positive |normal|) times ``amplitude``,
    times the mean absolute value of the truth ``relative_to`` when given. ``gaussian``:
    N(0, amplitude^2) entries. ``low_rank``: ``U V^T / sqrt(rank)`` with N(0, 1) factors (unit
    variance entries), times ``amplitude``. ``piecewise_constant``: a vector of ``pieces`` constant
    runs, or an image of ``pieces`` overlapping rectangles on a flat background, the levels
    N(0, amplitude^2). ``estimate`` maps the network's outputs to this
    truth when it is not an output itself (e.g. ``U @ V.T``).
    """

    name: str
    law: str
    where: Located
    shape: tuple[str | int, ...] = ()
    density: float = 0.1
    values: str = "normal"
    amplitude: float = 1.0
    relative_to: str | None = None
    rank: str | int = 1
    pieces: int = 8
    estimate: Located | None = None


@dataclass(frozen=True)
class InputModel:
    """An input made from the truth: ``model`` plus Gaussian noise at ``snr_db`` (per sample)."""

    name: str
    model: Located
    snr_db: float | None = None


@dataclass(frozen=True)
class DataSpec:
    seed: int = 0
    constants: dict[str, ConstantSource] = field(default_factory=dict)
    truth: dict[str, TruthLaw] = field(default_factory=dict)
    inputs: dict[str, InputModel] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # split -> .npz path
    where: Located | None = None

    @property
    def synthetic(self) -> bool:
        return bool(self.inputs)


@dataclass(frozen=True)
class TrainSpec:
    """Every key is also a CLI flag of ``unfoldgen train`` (``batch_size`` -> ``--batch-size``)."""

    loss: str = "supervised"
    layer_weights: str = "1"
    scheme: str = "end_to_end"
    steps: int = 1000
    epochs: int | None = None
    stage_steps: int = 200
    batch_size: int = 64
    train_samples: int | None = None  # None: fresh samples at every step
    lr: float = 1e-3
    lr_groups: dict[str, float] = field(default_factory=dict)
    schedule: str = "cosine"
    clip_grad_norm: float | None = None
    checkpoint_every: int = 100
    validate_every: int = 100
    validation_samples: int = 256
    dtype: str = "float32"
    device: str = "auto"
    seed: int = 0


@dataclass(frozen=True)
class EvalSpec:
    samples: int = 1000
    classical_iterations: int = 10000
    batch_size: int = 500



@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    dims: dict[str, int]
    inputs: dict[str, TensorDecl]
    constants: dict[str, TensorDecl]
    params: dict[str, float]
    variables: dict[str, VariableDecl]
    smooth: Located | None  # None only for a custom iteration without an objective
    nonsmooth: tuple[Located, ...]
    algorithm: AlgorithmSpec
    learn: LearnSpec
    file: str
    text: str
    data: DataSpec | None = None
    train: TrainSpec = field(default_factory=TrainSpec)
    evaluation: EvalSpec = field(default_factory=EvalSpec)
    dtype: str | None = None  # the module's floating dtype; None: the constants'

    def size_of(self, dim: str | int) -> int:
        return dim if isinstance(dim, int) else self.dims[dim]

    def concrete_shape(self, shape: tuple[str | int, ...]) -> tuple[int, ...]:
        return tuple(self.size_of(d) for d in shape)
