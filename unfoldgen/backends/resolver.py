"""How the emitted code spells each name of the IR: one resolver, fed by the program.

The spec's names keep their spelling; where a value lives decides the rest:

- :attr:`Storage.MODULE` (the PyTorch module): constants and params are attributes
  (``self.A``, or another attribute where ``torch.nn.Module`` has the name); a positive
  parameter is the local that ``layer_values()`` computes through softplus from the stored
  ``<name>_raw``; a derived tensor is an attribute, or a local when it depends on trainable
  parameters; per-layer values are indexed ``[k]``.
- :attr:`Storage.ARRAYS` (the Numba kernel and the NumPy loop): every value is an argument
  of the kernel's ``params``; parameters carry a leading layer axis, indexed ``[k]``, or ``[0]``
  when tied.

The resolver also records what it resolved (:attr:`NameResolver.read`), so an emitter knows which
arrays and params its code reads without scanning the code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import sympy as sp

from unfoldgen.backends.hygiene import Spelling, spelling
from unfoldgen.ir.program import Program
from unfoldgen.names import around
from unfoldgen.symbolic.prox.separable import V

# Attributes of torch.nn.Module (torch 2.13; tests/test_names.py compares) and of the generated
# Unfolded: a constant or param of one of these names is stored under another attribute, while
# its keyword and its key in kernel_params() keep the spec's spelling.
MODULE_ATTRIBUTES = frozenset({
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile",
    "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer",
    "get_extra_state", "get_parameter", "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia",
    "named_buffers", "named_children", "named_modules", "named_parameters", "parameters",
    "register_backward_hook", "register_buffer", "register_forward_hook", "register_forward_pre_hook",
    "register_full_backward_hook", "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter",
    "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_", "set_extra_state",
    "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train", "type", "xpu", "zero_grad",
    "training", "kernel_params", "layer_values",
})


def module_attribute(program: Program, name: str) -> str:
    """The attribute of ``Unfolded`` that stores the constant or param ``name``: its own name,
    unless ``torch.nn.Module`` uses it (``forward``, ``to``, ...)."""
    if name not in MODULE_ATTRIBUTES:
        return name
    return around(name, MODULE_ATTRIBUTES | program.names())


class Storage(enum.Enum):
    MODULE = "attributes of the PyTorch module"
    ARRAYS = "the kernel's params"


@dataclass
class NameResolver:
    program: Program
    storage: Storage
    g: Spelling | None = None  # the file's spelling of the emitted code's own names
    read: set[str] = field(default_factory=set)  # the program's names resolved so far

    def __post_init__(self) -> None:
        self.k = self.program.local("k")  # the layer index, spelled around the spec's names
        self.spelled: Spelling = self.g or spelling(self.program)
        self.roles = {name: self.program.role(name) for name in self.program.names() if name not in self.program.dims}

    def __call__(self, symbol: sp.Symbol) -> str:
        if symbol == V:
            return "v"  # the argument of a prox function
        name = symbol.name
        if name in self.program.dims and name not in self.roles:  # a size, e.g. in an operator's norm
            return str(self.program.dims[name])
        self.read.add(name)
        stored = self.stored(name)
        index = self.layer_index(name)
        return f"{stored}[{index}]" if index is not None else stored

    def stored(self, name: str) -> str:
        """The value without its layer index."""
        if self.storage is Storage.ARRAYS:
            return name
        role = self.roles.get(name)
        if role in ("constant", "param"):
            return f"{self.spelled.self}.{module_attribute(self.program, name)}"
        if role == "parameter":
            return name if self.program.parameter(name).positive else f"{self.spelled.self}.{name}"
        if role == "derived":
            derived = self.program.derived_value(name)
            return name if not derived.shape or self.program.is_dynamic(derived) else f"{self.spelled.self}.{name}"
        return name

    def layer_index(self, name: str) -> str | None:
        """``k`` for values with one entry per layer, ``0`` for a tied parameter of the kernel's
        params (stored with a leading axis of 1), else None."""
        role = self.roles.get(name)
        if role == "parameter":
            if self.program.parameter(name).per_layer:
                return self.k
            return "0" if self.storage is Storage.ARRAYS else None
        if role == "derived":
            derived = self.program.derived_value(name)
            if derived.per_layer and (derived.shape or self.storage is Storage.ARRAYS):
                return self.k
        return None


def prox_argument_name(symbol: sp.Symbol) -> str:
    """Inside a prox function every symbol is one of its arguments (``v``: the value)."""
    return "v" if symbol == V else symbol.name
