"""``unfoldgen eval``: the trained network against the algorithm it came from.

On held-out samples it measures the NMSE (dB) after every layer of the trained network, of the
untrained network (the classical algorithm stopped at the same depth), and of the classical
algorithm run for many iterations; then how many classical iterations reach the trained
network's final NMSE. Long classical runs stream through ``forward(on_layer=...)``, so memory
does not grow with the iteration count.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from unfoldgen.errors import SpecError
from unfoldgen.spec.model import Spec
from unfoldgen.training.checkpoint import write_atomically
from unfoldgen.training.network import build_network, classical_program, load_weights
from unfoldgen.training.session import Session


@dataclass(frozen=True)
class EvalReport:
    name: str
    samples: int
    trained: list[float]
    untrained: list[float]
    classical: list[float]
    classical_iters_to_match: int | None
    seconds: dict[str, float]
    # For images: the last layer's (last iteration's) mean PSNR (dB) and SSIM of each network
    images: dict[str, dict[str, float]] | None = None

    def as_json(self) -> dict[str, Any]:
        report = {
            "spec": self.name, "samples": self.samples,
            "nmse_db": {"trained": self.trained, "untrained": self.untrained, "classical": self.classical},
            "classical_iters_to_match": self.classical_iters_to_match,
            "seconds": self.seconds,
        }
        if self.images is not None:
            report["images"] = self.images
        return report

    def table(self) -> str:
        lines = [f"{self.name}: NMSE (dB) on {self.samples} held-out samples",
                 f"{'layer':>6}  {'trained':>9}  {'untrained':>9}  {'classical':>9}"]
        for k, (trained, untrained) in enumerate(zip(self.trained, self.untrained)):
            lines.append(f"{k + 1:>6}  {trained:>9.2f}  {untrained:>9.2f}  {self.classical[k]:>9.2f}")
        layers = len(self.trained)
        lines.append(f"classical after {len(self.classical)} iterations: {self.classical[-1]:.2f} dB")
        if self.classical_iters_to_match is None:
            lines.append(f"the classical algorithm does not reach the trained network's {self.trained[-1]:.2f} dB "
                         f"within {len(self.classical)} iterations")
        else:
            lines.append(f"classical iterations to reach the trained network's {self.trained[-1]:.2f} dB: "
                         f"{self.classical_iters_to_match} ({self.classical_iters_to_match / layers:.1f}x its "
                         f"{layers} layers)")
        for network, values in (self.images or {}).items():
            lines.append(f"{network}: PSNR {values['psnr_db']:.2f} dB, SSIM {values['ssim']:.4f}")
        return "\n".join(lines)


def iterations_to_match(classical: list[float], target: float) -> int | None:
    return next((k + 1 for k, value in enumerate(classical) if value <= target), None)


def evaluate(spec: Spec, weights: Path, samples: int | None = None, classical_iterations: int | None = None,
             device: str = "cpu") -> EvalReport:
    settings = spec.evaluation
    samples = samples or settings.samples
    iterations = classical_iterations or settings.classical_iterations
    session = Session(spec, dataclasses.replace(spec.train, dtype="float64"), torch.device(device))
    test = session.source.fixed("test", samples)
    if not test.truth:
        raise SpecError("the test set has no ground truth, so NMSE cannot be measured", key_path="data.files.test",
                        hint="add the truth arrays to the test file")
    layers = session.program.layers
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    trained = session.network()
    load_weights(trained, weights, session.program)
    _check_constants(trained, session, weights)
    trained_nmse = session.nmse_per_layer(trained, test, layers, settings.batch_size)
    seconds["trained"] = time.perf_counter() - started

    started = time.perf_counter()
    untrained_nmse = session.nmse_per_layer(session.network(), test, layers, settings.batch_size)
    seconds["untrained"] = time.perf_counter() - started

    started = time.perf_counter()
    classical = build_network(classical_program(spec, iterations), session.constants, session.dtype, session.device)
    classical_nmse = session.nmse_per_layer(classical, test, iterations, settings.batch_size)
    seconds["classical"] = time.perf_counter() - started

    images = {}
    for label, network, depth in (("trained", trained, layers), ("untrained", session.network(), layers),
                                  ("classical", classical, iterations)):
        quality = session.image_quality_per_layer(network, test, depth, settings.batch_size)
        if quality is not None:
            images[label] = {metric: values[-1] for metric, values in quality.items()}
    return EvalReport(spec.name, len(test), trained_nmse, untrained_nmse, classical_nmse,
                      iterations_to_match(classical_nmse, trained_nmse[-1]),
                      {k: round(v, 3) for k, v in seconds.items()}, images or None)


def _check_constants(model: torch.nn.Module, session: Session, weights: Path) -> None:
    for name, value in session.constants.items():
        if not torch.allclose(getattr(model, name), value, rtol=1e-6, atol=1e-9):
            raise SpecError(f"the weights {weights} were trained with another constant '{name}'",
                            key_path=f"data.constants.{name}",
                            hint="evaluate with the data section the network was trained with")


def plot_report(report: EvalReport, path: Path) -> None:
    """NMSE against layer (networks) and iteration (classical), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    layers = range(1, len(report.trained) + 1)
    axes.plot(layers, report.trained, "o-", label="trained")
    axes.plot(layers, report.untrained, "s--", label="untrained (classical, same depth)")
    axes.plot(range(1, len(report.classical) + 1), report.classical, "-", color="gray", label="classical")
    axes.set_xscale("log")
    axes.set_xlabel("layer / iteration")
    axes.set_ylabel("NMSE (dB)")
    axes.set_title(f"{report.name}: {report.samples} test samples")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    write_atomically(path, lambda file: figure.savefig(file, format="png"))
    plt.close(figure)
