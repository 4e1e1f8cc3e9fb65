"""bfloat16: float32's exponent with 8 significant bits, stored as the upper 16 bits of the
float32 (NumPy has no bfloat16 dtype: ``params.npz`` holds them as uint16), rounded to nearest
even."""

from __future__ import annotations

import numpy as np

from unfoldgen.backends.weights.base import WeightFormat


class BFloat16(WeightFormat):
    def quantize(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        bits = np.ascontiguousarray(weights, dtype=np.float32).view(np.uint32).astype(np.uint64)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # to nearest, ties to even
        return {"weights": rounded.astype(np.uint16)}

    def dequantize(self, stored: dict[str, np.ndarray]) -> np.ndarray:
        return (stored["weights"].astype(np.uint32) << 16).view(np.float32)


FORMAT = BFloat16("bfloat16", "uint16", scaled=False, bits_per_weight=16,
                  description="bfloat16 (float32's range, 8 significant bits), stored as uint16 bit patterns")
