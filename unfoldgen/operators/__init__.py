"""The vocabulary of the spec language, as registered objects: the bottom layer, imported by
every stage and importing nothing of unfoldgen but itself (SymPy only).

``operators.prox``: the prox functions of the nonsmooth part (``norm1``, ``box``, ...), one
module each, with the helpers of the emitted code that apply them.
"""
