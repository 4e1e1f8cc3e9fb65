"""Emit ``DERIVATION.md``: the math of every step, in LaTeX produced from the SymPy objects."""

from __future__ import annotations

import sympy as sp

from unfoldgen.backends.render import render
from unfoldgen.ir.program import Parameter, Program, RandomInit


def parameter_rows(program: Program) -> list[dict[str, object]]:
    """The parameter table (also printed by ``unfoldgen show``)."""
    rows: list[dict[str, object]] = []
    for p in program.parameters:
        rows.append({
            "name": p.name,
            "shape": "scalar" if not p.shape else "x".join(map(str, p.shape)),
            "tying": "untied (per layer)" if p.per_layer else "tied (shared)",
            "trainable": "yes" if p.trainable else "no",
            "count": p.count(program.layers),
            "init": _init_latex(program, p),
        })
    return rows


def _init_latex(program: Program, parameter: Parameter) -> str:
    init = parameter.init
    if isinstance(init, RandomInit):
        return "0" if init.zero else rf"\mathcal{{U}}(\pm 1/\sqrt{{{init.fan_in}}})"
    if isinstance(init, tuple):
        values = ", ".join(f"{float(v):.4g}" for v in init[:4])
        return rf"\beta_k: {values}" + (r", \dots" if len(init) > 4 else "")
    lipschitz = {s: sp.Symbol("L" + s.name[len("lipschitz"):]) for s in init.free_symbols  # the derived ones
                 if s.name.startswith("lipschitz") and program.role(s.name) == "derived"}
    return sp.latex(init.xreplace(lipschitz))


def emit_derivation(program: Program) -> str:
    d = program.derivation
    return render(
        "DERIVATION.md.j2",
        name=program.name, spec_hash=program.spec_hash, description=program.description,
        variables=d["variables"], smooth=d.get("smooth"), nonsmooth=d.get("nonsmooth", []),
        operators=d.get("operators", []), composites=d.get("composites", []),
        params=program.params, method_title=program.method_title, layers=program.layers,
        derived=[{"name": x.name, "math": sp.latex(x.expr), "description": x.description} for x in program.derived],
        networks=[{"name": n.name, "description": n.description, "kind": n.kind,
                   "sizes": " -> ".join(map(str, n.sizes)), "activation": n.activation} for n in program.networks],
        init_steps=[s.comment for s in program.init_steps],
        proxes=[{"function": p.function_name, "definition": p.definition(), "closed_form": p.closed_form}
                for p in program.proxes],
        steps=[s.comment for s in program.steps],
        states=[{"name": s.name, "init": "0" if s.init is None else sp.latex(s.init)} for s in program.states],
        parameters=parameter_rows(program), total=program.total_parameters(),
    )
