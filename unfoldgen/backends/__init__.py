"""Stage 4: lower a Program to source text (PyTorch module, Numba kernel, derivation)."""
