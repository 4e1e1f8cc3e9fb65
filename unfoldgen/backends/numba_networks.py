"""The networks of paradigms 3 and 4 in the Numba kernel.

A dense network is no function of its own: the lowering writes its layers as the kernel's
products and loops (``NumbaLowering.dense_layers``), so one sample fuses each layer into a
pass over the weight rows and a batch runs each layer as one BLAS product. A convolutional
network becomes one ``@njit`` function taking its input, its weights for the current layer,
and buffers allocated once per sample by the kernel: 3x3 convolutions (zero padding) are
direct loops (``conv3x3`` in the kernel) over a zero-bordered copy of their input.
"""

from __future__ import annotations

from unfoldgen.backends.common import Locals
from unfoldgen.backends.hygiene import Spelling
from unfoldgen.backends.numba_statements import Code
from unfoldgen.ir.program import Network

NUMBA_ACTIVATIONS = {"relu": "max({value}, 0.0)", "tanh": "{math}.tanh({value})", "softplus": "{softplus}({value})"}


Buffers = list[tuple[str, tuple[int, ...], str]]  # name, shape, comment; the last receives the output


def network_products(network: Network) -> tuple[str, ...]:
    """The loop helpers of templates/numba_products.py.j2 the network's function calls (a
    dense network has no function: its layers are the kernel's own products and loops)."""
    return () if network.kind == "mlp" else ("pad_flat",)


def network_buffers(network: Network) -> Buffers:
    """The buffers the kernel allocates once per sample for the network: each layer's input
    (a dense network's first, its features, only where its inputs are copied there), the output."""
    return _mlp(network) if network.kind == "mlp" else _cnn(network)


def _weights(network: Network) -> list[str]:
    return [name for i in range(network.depth) for name in (f"w{i}", f"b{i}")]


def _mlp(network: Network) -> Buffers:
    sizes = network.sizes
    buffers: Buffers = [(f"{network.name}_h{i}", (sizes[i],), f"{network.name}: layer {i} activations")
               for i in range(network.depth)]
    buffers.append((f"{network.name}_out", (sizes[-1],), f"{network.name}: output"))
    return buffers


def activation(name: str, value: Code, g: Spelling) -> Code:
    """``value`` through the activation ``name`` (code fragments, for a loop's value)."""
    before, after = g.format(NUMBA_ACTIVATIONS[name], value="\0").split("\0")
    return (before, *value, after)


def _cnn(network: Network) -> Buffers:
    rows, cols = network.output_shape
    buffers: Buffers = [(f"{network.name}_h{i}", (network.sizes[i], rows, cols), f"{network.name}: layer {i} channels")
               for i in range(network.depth)]
    buffers.append((f"{network.name}_out", (1, rows, cols), f"{network.name}: output"))
    return buffers


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
    """What the kernel template needs to emit a convolutional network's function."""
    local = Locals(name for name, _ in inputs)
    hidden = [local(f"hidden{i}") for i in range(network.depth)]
    arguments = [name for name, _ in inputs] + [local(w) for w in _weights(network)] + hidden + [local("out")]
    sizes = " -> ".join(map(str, network.sizes))
    return {"name": network.name, "arguments": arguments, "lines": cnn_lines(network, inputs, g),
            "doc": f"{network.description}: 3x3 convolutions, channels {sizes}, {network.activation}. "
                   f"Writes `{local('out')}`."}
