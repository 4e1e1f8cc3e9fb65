"""The Numba functions that run the networks of paradigms 3 and 4, one sample at a time.

Each network becomes one ``@njit`` function taking its inputs, its weights for the current
layer, and buffers allocated once per sample by the kernel: dense layers are ``matvec`` into a
buffer plus a bias-and-activation loop; 3x3 convolutions (zero padding) are direct loops
(``conv3x3`` in the kernel) over a zero-bordered copy of their input, made at each call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from unfoldgen.backends.common import Locals
from unfoldgen.backends.hygiene import Spelling
from unfoldgen.ir.program import Network

NUMBA_ACTIVATIONS = {"relu": "max({value}, 0.0)", "tanh": "{math}.tanh({value})", "softplus": "{softplus}({value})"}


@dataclass(frozen=True)
class NetworkCode:
    buffers: Sequence[tuple[str, tuple[int, ...], str]]  # the last one receives the output
    signature: list[str]


def network_products(network: Network) -> tuple[str, ...]:
    """The loop helpers of templates/numba_products.py.j2 the network's function calls."""
    return ("matvec",) if network.kind == "mlp" else ("pad_flat",)


def network_call(network: Network) -> NetworkCode:
    return _mlp(network) if network.kind == "mlp" else _cnn(network)


def _weights(network: Network) -> list[str]:
    return [name for i in range(network.depth) for name in (f"w{i}", f"b{i}")]


def _mlp(network: Network) -> NetworkCode:
    sizes = network.sizes
    buffers = [(f"{network.name}_h{i}", (sizes[i],), f"{network.name}: layer {i} activations")
               for i in range(network.depth)]
    buffers.append((f"{network.name}_out", (sizes[-1],), f"{network.name}: output"))
    return NetworkCode(buffers, _weights(network))


def mlp_lines(network: Network, inputs: list[tuple[str, tuple[int, ...]]], g: Spelling) -> list[str]:
    """Body of the dense network: features, then ``h <- act(W h + b)`` per layer."""
    local = Locals(name for name, _ in inputs)
    i = local("i")
    lines = ["# features: the inputs, flattened and concatenated"]
    offset = 0
    for name, shape in inputs:
        if len(shape) == 1:
            lines.append(f"{local('hidden0')}[{offset}:{offset + shape[0]}] = {name}")
        else:
            lines += [f"for {i} in {g.range}({shape[0]}):",
                      f"    {local('hidden0')}[{offset} + {i}*{shape[1]}:{offset} + ({i} + 1)*{shape[1]}] = {name}[{i}]"]
        offset += math.prod(shape)
    activation = NUMBA_ACTIVATIONS[network.activation]
    for layer in range(network.depth):
        source = local(f"hidden{layer}")
        target = local(f"hidden{layer + 1}") if layer < network.depth - 1 else local("out")
        lines.append(f"{g.matvec}({local(f'w{layer}')}, {source}, {target})")
        value = f"{target}[{i}] + {local(f'b{layer}')}[{i}]"
        if layer < network.depth - 1:
            value = g.format(activation, value=value)
        lines += [f"for {i} in {g.range}({network.sizes[layer + 1]}):", f"    {target}[{i}] = {value}"]
    return lines


def _cnn(network: Network) -> NetworkCode:
    rows, cols = network.output_shape
    buffers = [(f"{network.name}_h{i}", (network.sizes[i], rows, cols), f"{network.name}: layer {i} channels")
               for i in range(network.depth)]
    buffers.append((f"{network.name}_out", (1, rows, cols), f"{network.name}: output"))
    return NetworkCode(buffers, _weights(network))


def cnn_lines(network: Network, inputs: list[tuple[str, tuple[int, ...]]], g: Spelling) -> list[str]:
    ((name, _),) = inputs
    local = Locals(name for name, _ in inputs)
    i, flat = local("i"), local("flat")
    lines = [f"{local('hidden0')}[0] = {name}"]
    activation = NUMBA_ACTIVATIONS[network.activation]
    for layer in range(network.depth):
        source = local(f"hidden{layer}")
        target = local(f"hidden{layer + 1}") if layer < network.depth - 1 else local("out")
        lines.append(f"{g.conv3x3}({source}, {local(f'w{layer}')}, {local(f'b{layer}')}, {target})")
        if layer < network.depth - 1:
            lines += [f"{flat} = {target}.reshape({target}.size)",
                      f"for {i} in {g.range}({flat}.size):",
                      f"    {flat}[{i}] = {g.format(activation, value=f'{flat}[{i}]')}"]
    return lines


def network_function(network: Network, inputs: list[tuple[str, tuple[int, ...]]], g: Spelling) -> dict[str, object]:
    """What the kernel template needs to emit the network's function."""
    code = network_call(network)
    local = Locals(name for name, _ in inputs)
    hidden = [local(f"hidden{i}") for i in range(network.depth)]
    arguments = [name for name, _ in inputs] + [local(w) for w in code.signature] + hidden + [local("out")]
    lines = mlp_lines(network, inputs, g) if network.kind == "mlp" else cnn_lines(network, inputs, g)
    sizes = " -> ".join(map(str, network.sizes))
    kind = "dense layers" if network.kind == "mlp" else "3x3 convolutions, channels"
    return {"name": network.name, "arguments": arguments, "lines": lines,
            "doc": f"{network.description}: {kind} {sizes}, {network.activation}. Writes `{local('out')}`."}
