"""Low-precision weight formats of the exported Numba kernel (``--weights-dtype``).

At batch 1 a layer reads each weight once and does two flops with it, so its time is the
weights' bytes over the memory bandwidth: storing them in 16 or 8 bits halves or quarters it.
The kernel keeps its arithmetic in the data's precision and dequantises inside the inner loop
of its dot products (``dot_<format>``), one weight row at a time, so no float32 copy of the
weights is ever made per sample; the batched path dequantises one layer's matrix before its
BLAS product (once per batch, amortised over the samples).

A format is one module of this package: its storage, ``quantize`` and ``dequantize`` (NumPy,
for the export, the manifest's error figures and the tests), and its template
``templates/weights/<name>.py.j2`` with the kernel's dot helper (macro ``numba``) and the
batched path's dequantisation (macro ``numpy``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WeightFormat:
    """How one weight matrix is stored in ``params.npz`` and read by the kernel."""

    name: str  # the --weights-dtype value
    stored: str  # numpy dtype of the stored array (the kernel sees float16 as its uint16 bits)
    scaled: bool  # a float32 scale per row, stored as '<name>_scale'
    bits_per_weight: int
    description: str

    @property
    def dot(self) -> str:
        """The kernel's dot helper for rows of this format."""
        return f"dot_{self.name}"

    @property
    def dequantize_helper(self) -> str:
        """The batched path's helper that dequantises one layer's matrix (NumPy)."""
        return f"dequantize_{self.name}"

    @property
    def template(self) -> str:
        return f"weights/{self.name}.py.j2"

    def scale_name(self, weight: str) -> str:
        return f"{weight}_scale"

    def quantize(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """The arrays stored for ``weights`` (float32 or float64): the weights under their own
        key ``"weights"``, and the per-row scale under ``"scale"`` where the format has one."""
        raise NotImplementedError

    def dequantize(self, stored: dict[str, np.ndarray]) -> np.ndarray:
        """float32 values the kernel computes with, from :meth:`quantize`'s arrays."""
        raise NotImplementedError

    def store(self, params: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        """``params`` with the weights ``names`` in this format, each followed by its row scales
        where the format has them: the ``params.npz`` of a low-precision kernel."""
        stored: dict[str, np.ndarray] = {}
        for name, value in params.items():
            if name not in names:
                stored[name] = value
                continue
            arrays = self.quantize(value)
            stored[name] = arrays["weights"]
            if self.scaled:
                stored[self.scale_name(name)] = arrays["scale"]
        return stored

    def restore(self, stored: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        """The inverse of :meth:`store`: float32 values of the weights ``names`` (what the
        kernel computes with), the other params as they are."""
        scales = {self.scale_name(name) for name in names} if self.scaled else set()
        restored = {name: value for name, value in stored.items() if name not in scales}
        for name in names:
            arrays = {"weights": stored[name]} | ({"scale": stored[self.scale_name(name)]} if self.scaled else {})
            restored[name] = self.dequantize(arrays)
        return restored
