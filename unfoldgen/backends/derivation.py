"""Emit ``DERIVATION.md``: the math of every step, in LaTeX produced from the SymPy objects."""

from __future__ import annotations

import sympy as sp

from unfoldgen.backends.common import METHOD_TITLES
from unfoldgen.backends.render import render
from unfoldgen.ir.program import Parameter, Program


def parameter_rows(program: Program) -> list[dict[str, object]]:
    """The parameter table (also printed by ``unfoldgen show``)."""
    rows = []
    for p in program.parameters:
        rows.append({
            "name": p.name,
            "shape": "scalar" if not p.shape else "x".join(map(str, p.shape)),
            "tying": "untied (per layer)" if p.per_layer else "tied (shared)",
            "trainable": "yes" if p.trainable else "no",
            "count": p.count(program.layers),
            "init": _init_latex(p),
        })
    return rows


def _init_latex(parameter: Parameter) -> str:
    if isinstance(parameter.init, tuple):
        values = ", ".join(f"{float(v):.4g}" for v in parameter.init[:4])
        return rf"\beta_k: {values}" + (r", \dots" if len(parameter.init) > 4 else "")
    return sp.latex(parameter.init.subs(sp.Symbol("lipschitz", positive=True), sp.Symbol("L")))


def emit_derivation(program: Program) -> str:
    d = program.derivation
    return render(
        "DERIVATION.md.j2",
        name=program.name, spec_hash=program.spec_hash, description=program.description,
        variable=d["variable"], smooth=d["smooth"], nonsmooth=d["nonsmooth"], params=d["params"],
        gradient=d["gradient"], hessian=d["hessian"], lipschitz=d["lipschitz"],
        lipschitz_exact=d["lipschitz_exact"], method_title=METHOD_TITLES[program.method],
        layers=program.layers,
        proxes=[{"function": p.function_name, "definition": p.definition(), "closed_form": p.closed_form}
                for p in program.proxes],
        steps=[s.comment for s in program.steps],
        states=[{"name": s.name, "init": "0" if s.init is None else sp.latex(s.init)} for s in program.states],
        parameters=parameter_rows(program), total=program.total_parameters(),
    )
