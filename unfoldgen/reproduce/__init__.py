"""Re-runnable studies that reproduce the deep-unfolding literature with bundled specs.

``python -m unfoldgen.reproduce {sparse,rpca,mismatch,report,all} [--smoke]`` (``make reproduce``
runs ``all``). Each study trains what it needs (reusing finished runs under ``runs/reproduce``),
evaluates on held-out data and writes one JSON under ``docs/results/``; ``report`` turns the JSON,
and nothing else, into ``docs/results.md`` and its plots. It sits on top of training and imports
downwards only.
"""
