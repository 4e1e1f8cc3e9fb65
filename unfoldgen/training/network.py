"""The generated PyTorch module of a spec, imported for training and evaluation, and its weights.

Training runs exactly the code ``unfoldgen build`` writes: the module is rendered from the
program, written to a private temporary folder and imported from there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from unfoldgen import __version__
from unfoldgen.backends.hygiene import spelling
from unfoldgen.backends.resolver import module_attribute
from unfoldgen.backends.torch_module import emit_torch_module
from unfoldgen.compiler import load_generated_module
from unfoldgen.errors import SpecError
from unfoldgen.ir import Program, lower
from unfoldgen.spec.model import LearnSpec, Spec

if TYPE_CHECKING:
    import numpy as np

    class UnfoldedNetwork(torch.nn.Module):
        """For type checkers: what every generated ``Unfolded`` adds to ``nn.Module``."""

        def kernel_params(self) -> dict[str, np.ndarray]: ...
        def layer_values(self) -> tuple[torch.Tensor, ...]: ...


WEIGHTS_FORMAT = "unfoldgen-weights/1"
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def network_module(program: Program) -> Any:
    """Import the generated ``model.py`` of ``program`` (its ``Unfolded`` class and constants)."""
    source = emit_torch_module(program)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    with tempfile.TemporaryDirectory(prefix="unfoldgen-") as folder:
        path = Path(folder) / "model.py"
        path.write_text(source, encoding="utf-8")
        return load_generated_module(path, f"unfoldgen_network_{program.name}_{digest}")


def build_network(program: Program, constants: dict[str, torch.Tensor], dtype: torch.dtype,
                  device: torch.device | str) -> UnfoldedNetwork:
    """The untrained network: exactly the classical algorithm stopped after its layers."""
    module = network_module(program)
    arguments = {name: constants[name] for name in program.constants}
    return module.Unfolded(**arguments, **api_keywords(program, dtype=dtype, device=device))


def api_keywords(program: Program, **keywords: Any) -> dict[str, Any]:
    """``keywords`` of the generated API (``dtype``, ``layers``, ``on_layer``...) as this
    program's module spells them: a spec name of the same spelling moves them (``layers_``)."""
    g = spelling(program)
    return {g[name]: value for name, value in keywords.items()}


def run_network(model: torch.nn.Module, program: Program, inputs: Mapping[str, torch.Tensor], **keywords: Any) -> Any:
    """``model(*inputs, layers=..., ...)``: the inputs in order (an input may be called ``self``,
    which ``nn.Module.__call__`` takes by keyword), the keywords as :func:`api_keywords` spells them."""
    return model(*(inputs[name] for name in program.inputs), **api_keywords(program, **keywords))


def classical_program(spec: Spec, iterations: int) -> Program:
    """The classical algorithm the network came from, run for ``iterations``: nothing learned."""
    algorithm = dataclasses.replace(spec.algorithm, layers=iterations)
    return lower(dataclasses.replace(spec, algorithm=algorithm, learn=LearnSpec()))


def weights_payload(model: torch.nn.Module, program: Program) -> dict[str, Any]:
    return {
        "format": WEIGHTS_FORMAT, "name": program.name, "spec_hash": program.spec_hash,
        "unfoldgen_version": __version__,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def read_weights(path: Path) -> dict[str, Any]:
    """The payload of a ``weights.pt`` written by ``unfoldgen train``, checked to be one."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SpecError(f"no weights file at {path}", hint="train first: unfoldgen train SPEC") from None
    except Exception as exc:  # noqa: BLE001  (a corrupt pickle raises arbitrary exception types)
        raise SpecError(f"cannot read the weights {path}: {type(exc).__name__}: {exc}",
                        hint="pass the weights.pt that unfoldgen train wrote") from None
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise SpecError(f"{path} is not a weights file of unfoldgen", hint="pass the weights.pt that unfoldgen train wrote")
    return payload


def trained_network(program: Program, weights: Path, dtype: torch.dtype | None = None,
                    device: torch.device | str | None = None) -> UnfoldedNetwork:
    """The generated module of ``program`` with the trained ``weights`` loaded; its constants
    come from the weights file (``unfoldgen train`` stores them with the parameters)."""
    module = network_module(program)
    payload = read_weights(weights)
    state = payload["state_dict"]
    stored = {name: module_attribute(program, name) for name in program.constants}
    missing = [name for name, attribute in stored.items() if attribute not in state]
    if missing:
        raise SpecError(f"the weights {weights} hold no constant {', '.join(missing)}",
                        hint="pass the weights.pt that unfoldgen train wrote for this spec")
    constants = {name: state[attribute] for name, attribute in stored.items()}
    model = module.Unfolded(**constants, **api_keywords(program, dtype=dtype or state_dtype(state), device=device))
    fit_weights(model, payload, weights, program)
    return model


def state_dtype(state: dict[str, torch.Tensor]) -> torch.dtype:
    """The floating dtype the weights were saved in (that of their first floating tensor)."""
    return next((t.dtype for t in state.values() if t.is_floating_point()), torch.get_default_dtype())


def load_weights(model: torch.nn.Module, path: Path, program: Program) -> dict[str, Any]:
    """Load a ``weights.pt`` into ``model``, checked to fit its parameters and buffers."""
    payload = read_weights(path)
    fit_weights(model, payload, path, program)
    return payload


def fit_weights(model: torch.nn.Module, payload: dict[str, Any], path: Path, program: Program) -> None:
    """Load the state of a weights ``payload`` (read from ``path``) into ``model``, checked to fit."""
    state = payload["state_dict"]
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or extra or wrong:
        details = "; ".join(part for part in (
            f"missing {', '.join(missing)}" if missing else "",
            f"unexpected {', '.join(extra)}" if extra else "",
            f"other shapes for {', '.join(wrong)}" if wrong else "") if part)
        raise SpecError(f"the weights {path} do not fit the network of '{program.name}' ({details})",
                        hint=f"they were trained for spec '{payload.get('name')}'; train this spec, or pass its weights")
    model.load_state_dict(state)
