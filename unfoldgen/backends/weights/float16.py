"""IEEE half precision: 11 significant bits, largest magnitude 65504."""

from __future__ import annotations

import numpy as np

from unfoldgen.backends.weights.base import WeightFormat
from unfoldgen.errors import SpecError

LARGEST = float(np.finfo(np.float16).max)


class Float16(WeightFormat):
    def quantize(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        largest = float(np.abs(weights).max(initial=0.0))
        if largest > LARGEST:
            raise SpecError(f"a weight of magnitude {largest:.3g} does not fit float16 (largest {LARGEST:.0f})",
                            hint="export with --weights-dtype bfloat16 (float32's range) or int8 (scaled per row)")
        return {"weights": np.ascontiguousarray(weights, dtype=np.float16)}

    def dequantize(self, stored: dict[str, np.ndarray]) -> np.ndarray:
        return stored["weights"].astype(np.float32)


FORMAT = Float16("float16", "float16", scaled=False, bits_per_weight=16,
                 description="IEEE half precision (11 significant bits, magnitudes up to 65504)")
