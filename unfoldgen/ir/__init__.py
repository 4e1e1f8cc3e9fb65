"""Stage 3: one unrolled layer as an ordered list of steps over named parameters."""

from unfoldgen.ir.lower import lower
from unfoldgen.ir.program import ApplyProx, Assign, Derived, Parameter, Program, State, Step

__all__ = ["ApplyProx", "Assign", "Derived", "Parameter", "Program", "State", "Step", "lower"]
