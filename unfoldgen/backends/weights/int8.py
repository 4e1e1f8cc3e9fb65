"""Symmetric 8-bit integers with one float32 scale per row: ``w = scale[row] * q``, with
``scale = max |row| / 127`` and ``q`` rounded to nearest (a row of zeros has scale 0)."""

from __future__ import annotations

import numpy as np

from unfoldgen.backends.weights.base import WeightFormat


class Int8(WeightFormat):
    def quantize(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        values = np.asarray(weights, dtype=np.float64)
        scale = np.abs(values).max(axis=-1) / 127.0
        safe = np.where(scale > 0, scale, 1.0)[..., None]
        levels = np.clip(np.rint(values / safe), -127, 127).astype(np.int8)
        return {"weights": np.ascontiguousarray(levels), "scale": scale.astype(np.float32)}

    def dequantize(self, stored: dict[str, np.ndarray]) -> np.ndarray:
        return stored["weights"].astype(np.float32) * stored["scale"][..., None]


FORMAT = Int8("int8", "int8", scaled=True, bits_per_weight=8,
              description="8-bit integers with a float32 scale per row (max |row| / 127)")
