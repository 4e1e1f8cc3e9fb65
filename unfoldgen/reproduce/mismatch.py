"""Study 3: the sparse-recovery networks trained at density 0.1 and 40 dB SNR, tested where the
data departs from training: sparser (0.05) and denser (0.2) signals, more noise (30, 20 dB).

The networks are those of the 40 dB setting of study 1 (trained there, or trained here with the
same specs when study 1 has not run); only the test data changes, with the same ``A``.
"""

from __future__ import annotations

import time

import yaml

from unfoldgen.reproduce.common import Run, evaluation_session, held_out, network, rounded
from unfoldgen.reproduce.sparse import Scale, data, network_variants, trained_weights
from unfoldgen.spec import load_spec_text
from unfoldgen.spec.model import Spec
from unfoldgen.training.checkpoint import save_json

TRAINED_ON = {"density": 0.1, "snr_db": 40.0}
CONDITIONS = {
    "nominal": {"density": 0.1, "snr_db": 40.0},
    "density 0.05": {"density": 0.05, "snr_db": 40.0},
    "density 0.2": {"density": 0.2, "snr_db": 40.0},
    "SNR 30 dB": {"density": 0.1, "snr_db": 30.0},
    "SNR 20 dB": {"density": 0.1, "snr_db": 20.0},
}


def with_test_data(spec: Spec, density: float, snr_db: float) -> Spec:
    """The same network and constants (same data seed), with samples of another density and noise."""
    doc = yaml.safe_load(spec.text)
    doc["data"] = data(density, snr_db)
    return load_spec_text(yaml.safe_dump(doc, sort_keys=False), spec.file)


def study(scale: Scale, run: Run) -> dict:
    started = time.perf_counter()
    run.log(f"mismatch: networks of the 40 dB setting, {scale.m}x{scale.n}, {scale.layers} layers")
    trained = trained_weights(network_variants(scale, TRAINED_ON["snr_db"]), run.runs / "lista_snr40", run.log)
    models = {}
    for name, (spec, weights, _) in trained.items():
        session = evaluation_session(spec)
        models[name] = (session, network(session, weights))
    curves: dict[str, dict[str, list[float]]] = {name: {} for name in trained}
    for condition, values in CONDITIONS.items():
        test = held_out(with_test_data(trained["ISTA"][0], values["density"], values["snr_db"]), scale.test_samples)
        for name, (session, model) in models.items():
            curves[name][condition] = rounded(session.nmse_per_layer(model, test, scale.layers))
        run.log(f"  {condition:<13} " + "  ".join(f"{n} {c[condition][-1]:.1f}" for n, c in curves.items()))
    result = {
        "study": "lista_mismatch",
        "scale": run.scale,
        "trained_on": TRAINED_ON,
        "conditions": CONDITIONS,
        "layers": scale.layers,
        "test_samples": scale.test_samples,
        "nmse_db": curves,
        "wall_s": round(time.perf_counter() - started, 1),
        "command": run.command,
    }
    save_json(run.out / "lista_mismatch.json", result)
    return result
