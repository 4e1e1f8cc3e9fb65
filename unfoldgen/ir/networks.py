"""Paradigms 3 and 4: small networks inside each layer.

- A learned correction (paradigm 3) adds ``c_k(x, grad)`` to the update: an MLP on the
  flattened, concatenated inputs.
- A learned prox (paradigm 4) is ``D_k(v) = P(v) + N_k(v)``: the classical prox ``P`` plus a
  network ``N_k`` (an MLP for vectors, a residual CNN of 3x3 convolutions for matrices seen as
  one-channel images). ``D_k`` replaces the prox as a whole operator; the classical prox is its
  starting point.

In both, the network's last layer starts at zero, so the untrained network equals the
classical algorithm exactly (the distance is 0, and the tests check it); the other layers
start from a seeded uniform draw, as PyTorch initialises linear layers.
"""

from __future__ import annotations

import math

import sympy as sp

from unfoldgen.ir.builder import LayerBuilder
from unfoldgen.ir.program import Network, RandomInit
from unfoldgen.spec.model import NetworkSpec


def build_network(b: LayerBuilder, spec: NetworkSpec, name: str, inputs: tuple[sp.MatrixSymbol, ...],
                  output: sp.MatrixSymbol, description: str) -> Network:
    output_shape = b.shape_of(output)
    if spec.kind == "cnn":
        if len(output_shape) != 2 or len(inputs) != 1:
            raise spec.where.error("a cnn acts on one matrix variable (seen as an image)",
                                   hint="use network: mlp for vector variables")
        sizes = (1, *spec.widths, 1)
    else:
        features = sum(math.prod(b.shape_of(i)) for i in inputs)
        sizes = (features, *spec.widths, math.prod(output_shape))
    network = Network(b.fresh(name), spec.kind, sizes, spec.activation, spec.tying == "per_layer",
                      output_shape, description)
    for i in range(network.depth):
        weight_name, bias_name = network.weight_names(i)
        fan_in = sizes[i] * (9 if spec.kind == "cnn" else 1)
        init = RandomInit(fan_in, zero=i == network.depth - 1)
        kernel = (3, 3) if spec.kind == "cnn" else ()
        b.network_parameter(weight_name, (sizes[i + 1], sizes[i], *kernel), network.per_layer, init,
                            f"{network.name}: weights of layer {i + 1}")
        b.network_parameter(bias_name, (sizes[i + 1],), network.per_layer, init,
                            f"{network.name}: biases of layer {i + 1}")
    b.networks.append(network)
    return network
