"""Stage 2: turn spec text into SymPy objects and derive gradients, Lipschitz constants, proxes."""
