"""The weight formats, one module each; ``WEIGHT_FORMATS`` is derived from this list."""

from __future__ import annotations

from unfoldgen.backends.weights import bfloat16, float16, int8
from unfoldgen.backends.weights.base import WeightFormat

WEIGHT_FORMATS: dict[str, WeightFormat] = {module.FORMAT.name: module.FORMAT for module in (float16, bfloat16, int8)}

__all__ = ["WEIGHT_FORMATS", "WeightFormat"]
