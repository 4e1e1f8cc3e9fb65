"""unfoldgen: compile an optimization spec into a deep-unfolded network.

Pipeline (one package per stage, each importing only from the stages before it):
``spec`` (parse, validate) -> ``symbolic`` (derive gradient, Lipschitz constant, proxes)
-> ``ir`` (one layer's steps and parameters) -> ``backends`` (torch, numba, derivation)
-> ``build`` / ``cli``.
"""

__version__ = "0.1.0"
