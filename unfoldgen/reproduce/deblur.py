"""Study 5: TV deblurring by unrolled primal-dual (``specs/deblur_tv.yaml`` and
``specs/learned_primal_dual.yaml``).

A sample is a piecewise-constant image (64x64, rectangles on a flat background) blurred by a
5x5 Gaussian kernel (standard deviation 1 pixel, circular boundary) with noise at 30 dB SNR.
Three networks of 10 layers, all the primal-dual iteration for
``0.5 ||h * X - Y||^2 + lam TV(X)``:

- ``PDHG``: the classical iteration (Condat-Vu, steps from ``||grad2d||`` and ``L``), untrained;
- ``PDHG-learned-step``: a primal and a dual step learned per layer (paradigm 1);
- ``learned-PD``: steps plus a CNN added to the primal and to the dual prox of each layer
  (paradigm 4; after Adler and Oktem's learned primal-dual).

Per layer on held-out images: PSNR; at the last layer, SSIM; how many classical iterations reach
each network's PSNR; and, on a natural image (scikit-image's ``camera``, averaged down to the
images' size, degraded the same way), PSNR and SSIM of each network and a picture of all of them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unfoldgen.reproduce.common import (
    Run,
    Variant,
    checkpoints,
    classical_network,
    evaluation_session,
    held_out,
    network,
    rounded,
    spec_name,
    train_or_reuse,
)
from unfoldgen.training.checkpoint import save_json, write_atomically
from unfoldgen.training.data import Batch
from unfoldgen.training.metrics import psnr_db, ssim
from unfoldgen.training.network import run_network
from unfoldgen.training.session import Session


@dataclass(frozen=True)
class Scale:
    size: int
    layers: int
    test_samples: int
    classical_iterations: int
    steps: int
    batch_size: int


FULL = Scale(size=64, layers=10, test_samples=64, classical_iterations=1000, steps=400, batch_size=16)
SMOKE = Scale(size=16, layers=2, test_samples=4, classical_iterations=12, steps=4, batch_size=4)
NATURAL_SNR_DB = 30.0


def variants(scale: Scale) -> dict[str, Variant]:
    networks = {}
    for name, base in (("PDHG-learned-step", "deblur_tv"), ("learned-PD", "learned_primal_dual")):
        doc = Variant(base, {}).document()
        train = {**doc["train"], "steps": scale.steps, "batch_size": scale.batch_size,
                 "validate_every": max(scale.steps // 4, 1), "checkpoint_every": max(scale.steps // 2, 1)}
        networks[name] = Variant(base, {"dims": {"m": scale.size, "n": scale.size},
                                        "algorithm": {**doc["algorithm"], "layers": scale.layers}, "train": train})
    return {"PDHG": networks["PDHG-learned-step"].with_sections(learn=None), **networks}


def psnr_curve(session: Session, model: torch.nn.Module, batch: Batch, depth: int) -> tuple[list[float], float]:
    """Mean PSNR after each of ``depth`` layers, and the mean SSIM after the last."""
    quality = session.image_quality_per_layer(model, batch, depth)
    assert quality is not None
    return quality["psnr_db"], quality["ssim"][-1]


def natural_image(size: int) -> np.ndarray:
    """scikit-image's ``camera``, averaged over blocks down to ``size`` x ``size``, scaled to zero
    mean and the training images' spread (their levels are N(0, 0.5^2) per rectangle)."""
    try:
        from skimage import data
    except ImportError as exc:  # the study's one extra dependency
        raise SystemExit("the deblurring study needs scikit-image for its natural test image: "
                         "pip install scikit-image") from exc
    image = data.camera().astype(np.float64)
    block = image.shape[0] // size
    small = image[: block * size, : block * size].reshape(size, block, size, block).mean(axis=(1, 3))
    return (small - small.mean()) / small.std() * 0.5


def degrade(session: Session, image: np.ndarray, seed: int) -> torch.Tensor:
    """``Y = h * X + noise`` at the spec's SNR (the data model of the spec, on one image)."""
    truth = {"X": torch.from_numpy(image[None])}
    clean = session.problem.measure(truth, session.constants)["Y"]
    sigma = float(clean.square().mean().sqrt()) / 10 ** (NATURAL_SNR_DB / 20)
    noise = torch.from_numpy(np.random.default_rng(seed).standard_normal(clean.shape))
    return clean + sigma * noise


def restore(session: Session, model: torch.nn.Module, blurred: torch.Tensor, depth: int) -> torch.Tensor:
    with torch.no_grad():
        return run_network(model, session.program, {"Y": blurred}, layers=depth)["X"]


def study(scale: Scale, run: Run) -> dict[str, Any]:
    started = time.perf_counter()
    run.log(f"TV deblurring: {scale.size}x{scale.size} images, {scale.layers} layers, {scale.test_samples} test images")
    specs = {name: variant.spec(spec_name(name)) for name, variant in variants(scale).items()}
    test = held_out(specs["PDHG"], scale.test_samples)
    sessions = {name: evaluation_session(spec) for name, spec in specs.items()}
    classical_session = sessions["PDHG"]
    long = classical_network(classical_session, scale.classical_iterations)
    classical_psnr, classical_ssim = psnr_curve(classical_session, long, test, scale.classical_iterations)
    image = natural_image(scale.size)
    blurred = degrade(classical_session, image, seed=1)
    truth = torch.from_numpy(image[None])
    pictures = {"blurred input": blurred[0].numpy(), "truth": image}

    def quality(estimate: torch.Tensor) -> dict[str, float]:
        return {"psnr_db": round(float(psnr_db(estimate, truth)[0]), 2), "ssim": round(float(ssim(estimate, truth)[0]), 4)}

    networks: dict[str, dict[str, Any]] = {}
    natural: dict[str, dict[str, float]] = {"blurred input": quality(blurred)}
    for name, spec in specs.items():
        session = sessions[name]
        weights, train_s = (None, 0.0) if name == "PDHG" else \
            train_or_reuse(spec, run.runs / "deblur_tv" / spec.name, run.log)
        model = network(session, weights)
        psnr, final_ssim = psnr_curve(session, model, test, scale.layers)
        match = next((k + 1 for k, value in enumerate(classical_psnr) if value >= psnr[-1]), None)
        networks[name] = {"psnr_db": rounded(psnr, 2), "ssim": round(final_ssim, 4), "train_s": round(train_s, 1),
                          "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
                          "classical_iters_to_match": match}
        restored = restore(session, model, blurred, scale.layers)
        natural[name] = quality(restored)
        pictures[name] = restored[0].numpy()
        run.log(f"  {name}: PSNR {psnr[-1]:.2f} dB, SSIM {final_ssim:.4f}; classical iterations to match: {match}")
    restored = restore(classical_session, long, blurred, scale.classical_iterations)
    label = f"PDHG, {scale.classical_iterations} iterations"
    natural[label] = quality(restored)
    pictures[label] = restored[0].numpy()
    kept = checkpoints(scale.classical_iterations)
    result = {
        "study": "deblur_tv",
        "scale": run.scale,
        "setting": asdict(scale),
        "networks": networks,
        "classical": {"iterations": kept, "psnr_db": rounded([classical_psnr[k - 1] for k in kept], 2),
                      "ssim_last": round(classical_ssim, 4)},
        "natural_image": {"name": "camera (scikit-image)", "snr_db": NATURAL_SNR_DB, "quality": natural},
        "wall_s": round(time.perf_counter() - started, 1),
        "command": run.command,
    }
    save_json(run.out / "deblur_tv.json", result)
    save_pictures(run.out / "deblur_tv_images.png", pictures, natural)
    return result


def save_pictures(path: Path, pictures: dict[str, np.ndarray], natural: dict[str, dict[str, float]]) -> None:
    """One row: the blurred input, each network's output, the long classical run and the truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = [name for name in pictures if name != "truth"] + ["truth"]
    low, high = float(pictures["truth"].min()), float(pictures["truth"].max())
    figure, axes = plt.subplots(1, len(order), figsize=(2.4 * len(order), 2.8))
    for axis, name in zip(axes, order, strict=True):
        axis.imshow(pictures[name], cmap="gray", vmin=low, vmax=high)
        caption = name if name == "truth" else f"{name}\n{natural[name]['psnr_db']:.2f} dB, SSIM {natural[name]['ssim']:.3f}"
        axis.set_title(caption, fontsize=7)
        axis.axis("off")
    figure.tight_layout()
    write_atomically(path, lambda file: figure.savefig(file, format="png", dpi=110))
    plt.close(figure)
