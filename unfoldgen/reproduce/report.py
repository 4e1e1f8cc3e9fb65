"""``docs/results.md`` and its plots, written from the studies' JSON and nothing else.

Every number on the page is read from ``docs/results/*.json``; a study whose JSON is missing is
listed with the command that makes it. Targets of the issue are checked here, on the JSON, and
the page says whether each is met.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unfoldgen.reproduce.rpca import INTERPRETABLE
from unfoldgen.training.checkpoint import write_atomically

SPARSE = {"noiseless": ("lista_noiseless", -50.0), "40 dB SNR": ("lista_snr40", -35.0)}
LAYER_GAIN_TARGET = 20.0
RPCA_ITERATION_TARGET = 10.0
MAKE = {"lista_noiseless": "sparse", "lista_snr40": "sparse", "lista_mismatch": "mismatch", "rpca": "rpca",
        "sparse_logistic": "logistic", "deblur_tv": "deblur"}


def load(out: Path, name: str) -> dict[str, Any] | None:
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def write(out: Path) -> Path:
    """Write the plots into ``out`` and the page beside it (``docs/results`` -> ``docs/results.md``)."""
    results = {name: load(out, name) for name in MAKE}
    sections = [header(results)]
    for label, (name, target) in SPARSE.items():
        sections.append(sparse_section(out, label, name, results[name], target))
    sections.append(mismatch_section(results["lista_mismatch"]))
    sections.append(rpca_section(out, results["rpca"]))
    sections.append(logistic_section(out, results["sparse_logistic"]))
    sections.append(deblur_section(out, results["deblur_tv"]))
    page = out.parent / f"{out.name}.md"
    text = "\n\n".join(s.strip() for s in sections) + "\n"
    write_atomically(page, lambda file: file.write(text.encode()))
    return page


def header(results: dict[str, dict[str, Any] | None]) -> str:
    rows = "\n".join(
        f"| `{name}.json` | {result['scale']} | {duration(result['wall_s'])} | `{result['command']}` |"
        if result else f"| `{name}.json` | not run | | `python -m unfoldgen.reproduce {MAKE[name]}` |"
        for name, result in results.items())
    return f"""
# Reproduced results

Written by `python -m unfoldgen.reproduce report` from the JSON files in `docs/results/`; every
number below is read from them. `make reproduce` runs every study and then this report
(`python -m unfoldgen.reproduce all`). A study trains what it needs under `runs/reproduce/` and
reuses finished runs of the same spec, so a killed run picks up where it stopped; the wall times
below include training unless a run was reused (then `train_s` in the JSON keeps the time of the
run that trained it). Machine: the project's 2-core CPU, PyTorch eager, float32 training,
float64 evaluation.

| output | scale | wall time | command |
| --- | --- | --- | --- |
{rows}
"""


def duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"


def met(condition: bool) -> str:
    return "**met**" if condition else "**missed**"


def sparse_section(out: Path, label: str, name: str, result: dict[str, Any] | None, target: float) -> str:
    title = f"## Sparse recovery, {label}"
    if result is None:
        return f"{title}\n\nNot run yet: `python -m unfoldgen.reproduce sparse`."
    setting = result["setting"]
    layers = setting["layers"]
    nmse, untrained = result["nmse_db"], result["untrained_nmse_db"]
    matches = result["classical_iters_to_match"]
    shown = sorted({1, 2, 4, 8, layers} & set(range(1, layers + 1)))
    head = " | ".join(f"layer {k}" for k in shown)
    rows = []
    for network, curve in nmse.items():
        values = " | ".join(f"{curve[k - 1]:.2f}" for k in shown)
        match = matches[network]
        ratio = "never" if match is None else f"{match} ({match / layers:.1f}x)"
        rows.append(f"| {network} | {result['params'][network]} | {result['train_s'][network]:.0f} | {values} | "
                    f"{untrained[network][-1]:.2f} | {ratio} |")
    best = min(nmse, key=lambda n: nmse[n][-1])
    learned = [n for n in nmse if result["params"][n] > 0]
    gains = {n: matches[n] / layers if matches[n] is not None else float("inf") for n in learned}
    beaten = [n for n in learned if gains[n] >= LAYER_GAIN_TARGET]
    ista = result["ista_nmse_db"]
    plot(out / f"{name}.png", f"Sparse recovery, {label} ({setting['m']}x{setting['n']})", "NMSE (dB)",
         nmse, {"ISTA": (ista["iterations"], ista["nmse_db"])}, layers)
    snr = "noiseless" if setting["snr_db"] is None else f"{setting['snr_db']:g} dB SNR"
    return f"""
{title}

`A` of {setting['m']}x{setting['n']} (N(0, 1/m), unit columns), `x` Bernoulli({setting['density']}) with N(0, 1)
values, {snr}, lam = {setting['lam']}, {layers} layers; NMSE in dB on {setting['test_samples']} held-out
samples after each layer. "ISTA iterations" is how many ISTA iterations (of {setting['classical_iterations']})
reach the network's layer-{layers} NMSE. Training: layer-wise, see `training` in the JSON;
ISTA's long run took {result['classical_s']:.0f} s.

| network | trainable | train (s) | {head} | untrained, layer {layers} | ISTA iterations |
| --- | --- | --- | {' | '.join('---' for _ in shown)} | --- | --- |
{chr(10).join(rows)}

- Best network at layer {layers}: {best}, {nmse[best][-1]:.2f} dB (target {target:g} dB: {met(nmse[best][-1] <= target)}).
- ISTA after {setting['classical_iterations']} iterations: {ista['nmse_db'][-1]:.2f} dB.
- Learned networks with at least {LAYER_GAIN_TARGET:g}x fewer layers than ISTA needs iterations for the same
  NMSE ("never" counts): {', '.join(beaten) or 'none'} ({len(beaten)} of {len(learned)}; for the best network:
  {met(best in beaten)}).{budget_note(setting, [n for n in learned if n not in beaten])}

![NMSE against layer]({out.name}/{name}.png)
"""


def budget_note(setting: dict[str, Any], short: list[str]) -> str:
    """Why networks fall short of the literature's curves, where some do: the training budget."""
    if not short:
        return ""
    return f"""
- Training budget: {setting['scalar_stage_steps']} Adam steps per layer-wise stage for networks with
  scalar parameters, {setting['matrix_stage_steps']} for networks with matrices (batch {setting['batch_size']}),
  chosen to fit a 2-core CPU; the papers train every stage until the validation loss stalls
  (thousands of steps). Below the target here: {', '.join(short)}; they are under-trained at this
  budget rather than at their published accuracy (raise the stage steps in `Scale` in
  `unfoldgen/reproduce/sparse.py` to train them further)."""


def mismatch_section(result: dict[str, Any] | None) -> str:
    title = "## Sparse recovery under mismatch"
    if result is None:
        return f"{title}\n\nNot run yet: `python -m unfoldgen.reproduce mismatch`."
    conditions = list(result["conditions"])
    layers = result["layers"]
    rows = "\n".join(f"| {network} | " + " | ".join(f"{curves[c][-1]:.2f}" for c in conditions) + " |"
                     for network, curves in result["nmse_db"].items())
    trained = result["trained_on"]
    described = ", ".join(f"{c}: density {v['density']}, {v['snr_db']:g} dB" for c, v in result["conditions"].items())
    return f"""
{title}

The networks trained at density {trained['density']} and {trained['snr_db']:g} dB SNR, tested on
{result['test_samples']} samples each of data they were not trained on ({described}). NMSE (dB)
at layer {layers}:

| network | {' | '.join(conditions)} |
| --- | {' | '.join('---' for _ in conditions)} |
{rows}
"""


def rpca_section(out: Path, result: dict[str, Any] | None) -> str:
    title = "## Robust PCA: the four paradigms"
    if result is None:
        return f"{title}\n\nNot run yet: `python -m unfoldgen.reproduce rpca`."
    setting = result["setting"]
    layers = setting["layers"]
    networks = result["networks"]
    trade = []
    for name, record in networks.items():
        match = record["classical_iters_to_match"]
        reached_at = f"never in {setting['classical_iterations']}" if match is None else f"{match} ({match / layers:.1f}x)"
        trade.append(f"| {name} | {record['paradigm'] or 'classical'} | {record['params']} | {record['train_s']:.0f} | "
                     f"{record['inference_ms']:.2f} | {record['rel_err'][-1]:.4f} | {reached_at} | "
                     f"{record['robust_rel_err'][-1]:.4f} | {INTERPRETABLE[record['paradigm']]} |")
    shown = sorted({1, 2, 3, 5, layers} & set(range(1, layers + 1)))
    per_layer = "\n".join(f"| {name} | " + " | ".join(f"{record['rel_err'][k - 1]:.4f}" for k in shown) + " |"
                          for name, record in networks.items())
    unfolded = {n: r for n, r in networks.items() if r["paradigm"] > 0}
    best = min(unfolded, key=lambda n: unfolded[n]["rel_err"][-1])
    match = unfolded[best]["classical_iters_to_match"]
    ratio = float("inf") if match is None else match / layers
    classical = result["classical_rel_err"]
    plot(out / "rpca.png", f"Robust PCA ({setting['size']}x{setting['size']}, rank {setting['rank']})",
         "||L - L*||_F / ||L*||_F", {n: r["rel_err"] for n, r in networks.items() if r["paradigm"] > 0},
         {n: (c["iterations"], c["rel_err"]) for n, c in classical.items()}, layers, log_y=True)
    reached = (f"{match} iterations of {unfolded[best]['classical']}" if match is not None else
               f"more than the {setting['classical_iterations']} iterations of {unfolded[best]['classical']} that were run")
    return f"""
{title}

`Y = L* + S*`, {setting['size']}x{setting['size']}, `L*` of rank {setting['rank']}, a fraction
{setting['outliers']} of entries of `S*` uniform in [-m, m] (m the mean |L*|); {layers} layers, trained
layer-wise ({setting['stage_steps']} steps per phase, batch {setting['batch_size']}); errors on
{setting['test_samples']} held-out matrices. Error: `||L - L*||_F / ||L*||_F` (root of summed squares).
Robustness: the same networks on data with {setting['robust_outliers']} outliers and rank
{setting['robust_rank']}. Inference: PyTorch eager, float32, per matrix in a batch of
{setting['test_samples']}. The factorised algorithm is a custom iteration, which learns only its
declared hyperparameters, so paradigms 2-4 are shown for BPG only.

Trade-offs (paradigm 0: the classical algorithm, {layers} iterations):

| network | paradigm | trainable | train (s) | inference (ms) | error, layer {layers} | classical iterations to match | robust error | interpretable |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(trade)}

Error per layer:

| network | {' | '.join(f'layer {k}' for k in shown)} |
| --- | {' | '.join('---' for _ in shown)} |
{per_layer}

- Best unfolded network: {best}, error {unfolded[best]['rel_err'][-1]:.4f} after {layers} layers, which
  takes {reached}: {'more than ' if match is None else ''}{ratio if match is not None else setting['classical_iterations'] / layers:.1f}x more
  (target {RPCA_ITERATION_TARGET:g}x: {met(ratio >= RPCA_ITERATION_TARGET)}).

![relative error against layer]({out.name}/rpca.png)
"""


def logistic_section(out: Path, result: dict[str, Any] | None) -> str:
    title = "## Sparse logistic regression: a smooth data term beyond least squares"
    if result is None:
        return f"{title}\n\nNot run yet: `python -m unfoldgen.reproduce logistic`."
    setting, networks = result["setting"], result["networks"]
    layers = setting["layers"]
    shown = sorted({1, 2, 3, 5, layers} & set(range(1, layers + 1)))
    rows = "\n".join(f"| {name} | {record['train_s']:.0f} | "
                     + " | ".join(f"{record['accuracy'][k - 1]:.3f} / {record['objective'][k - 1]:.2f}" for k in shown)
                     + " |" for name, record in networks.items())
    classical = result["classical"]
    def reached(match: int | None) -> str:
        return (f"{match} classical iterations ({match / layers:.1f}x its {layers} layers)" if match is not None
                else f"more than the {setting['classical_iterations']} classical iterations that were run")
    plot(out / "sparse_logistic.png", "Sparse logistic regression", "objective",
         {name: record["objective"] for name, record in networks.items()},
         {"proximal gradient": (classical["iterations"], classical["objective"])}, layers)
    return f"""
{title}

`specs/sparse_logistic.yaml`: a sample is a classification problem, labels `y = sigmoid(A x*)`
of 64 examples with fixed features `A` (N(0, 1) entries) for sparse weights `x*` (32 features,
density 0.2); the networks minimise `sum(softplus(A x) - y * (A x)) + lam ||x||_1` in {layers}
layers. PG is proximal gradient with the step `1/L`, `L = ||A||^2/4` derived by the compiler;
PG-learned-step learns a step and a threshold per layer ({setting['steps']} steps of Adam,
supervised on `x*`). {setting['test_samples']} held-out problems; accuracy: the share of examples
whose label `A x > 0` is the true one (`A x* > 0`).

Accuracy / mean objective per layer:

| network | train (s) | {' | '.join(f'layer {k}' for k in shown)} |
| --- | --- | {' | '.join('---' for _ in shown)} |
{rows}

- The classical algorithm reaches PG-learned-step's accuracy after layer {layers}
  ({networks['PG-learned-step']['accuracy'][-1]:.3f}) in {reached(result['classical_iters_to_match_accuracy'])},
  and its objective ({networks['PG-learned-step']['objective'][-1]:.4f}) in
  {reached(result['classical_iters_to_match'])}. The learned network is trained on the weights `x*`,
  not on the objective, so it trades objective in early layers for accuracy. After
  {classical['iterations'][-1]} iterations the classical objective is {classical['objective'][-1]:.4f} and
  its accuracy {classical['accuracy'][-1]:.3f}.

![objective against layer]({out.name}/sparse_logistic.png)
"""


def deblur_section(out: Path, result: dict[str, Any] | None) -> str:
    title = "## TV deblurring: unrolled primal-dual, learned steps and learned primal-dual"
    if result is None:
        return f"{title}\n\nNot run yet: `python -m unfoldgen.reproduce deblur`."
    setting, networks, classical = result["setting"], result["networks"], result["classical"]
    layers, size = setting["layers"], setting["size"]
    shown = sorted({1, 2, 3, 5, layers} & set(range(1, layers + 1)))

    def reached(match: int | None) -> str:
        return (f"{match} ({match / layers:.1f}x)" if match is not None
                else f"more than {setting['classical_iterations']}")

    rows = "\n".join(f"| {name} | {record['parameters']} | {record['train_s']:.0f} | "
                     + " | ".join(f"{record['psnr_db'][k - 1]:.2f}" for k in shown)
                     + f" | {record['ssim']:.4f} | {reached(record['classical_iters_to_match'])} |"
                     for name, record in networks.items())
    natural = result["natural_image"]
    natural_rows = "\n".join(f"| {name} | {values['psnr_db']:.2f} | {values['ssim']:.4f} |"
                              for name, values in natural["quality"].items())
    plot(out / "deblur_tv.png", "TV deblurring", "PSNR (dB)",
         {name: record["psnr_db"] for name, record in networks.items()},
         {"PDHG": (classical["iterations"], classical["psnr_db"])}, layers)
    last = classical["iterations"][-1]
    return f"""
{title}

`specs/deblur_tv.yaml` and `specs/learned_primal_dual.yaml`: a sample is a piecewise-constant
{size}x{size} image (rectangles on a flat background) blurred by a 5x5 Gaussian kernel (standard
deviation 1 pixel, circular boundary), with noise at 30 dB SNR; the networks unroll {layers} layers of
the primal-dual iteration (Condat-Vu) for `0.5 ||h * X - Y||^2 + lam TV(X)`. PDHG is the classical
iteration (untrained); PDHG-learned-step learns a primal and a dual step per layer;
learned-PD also adds a CNN (3x3 convolutions, widths 8, 8) to the primal and to the dual prox of
each layer. Trained {setting['steps']} steps of Adam (batch {setting['batch_size']}, supervised on `X`);
{setting['test_samples']} held-out images.

Mean PSNR (dB) per layer, SSIM after layer {layers}, and the classical iterations that reach the
network's PSNR after layer {layers}:

| network | learned parameters | train (s) | {' | '.join(f'layer {k}' for k in shown)} | SSIM | PDHG iterations to match |
| --- | --- | --- | {' | '.join('---' for _ in shown)} | --- | --- |
{rows}

After {last} iterations PDHG reaches {classical['psnr_db'][-1]:.2f} dB (SSIM {classical['ssim_last']:.4f}).

![PSNR against layer]({out.name}/deblur_tv.png)

On a natural image the networks never saw in training ({natural['name']}, averaged down to
{size}x{size}, degraded the same way):

| | PSNR (dB) | SSIM |
| --- | --- | --- |
{natural_rows}

![blurred input, outputs and truth]({out.name}/deblur_tv_images.png)
"""


def plot(path: Path, title: str, ylabel: str, networks: dict[str, list[float]],
         classical: dict[str, tuple[list[int], list[float]]], layers: int, log_y: bool = False) -> None:
    """Left: networks against layer. Right: the same, with the classical runs on a log axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis in (left, right):
        for name, curve in networks.items():
            axis.plot(range(1, len(curve) + 1), curve, marker="o", markersize=3, label=name)
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3)
        if log_y:
            axis.set_yscale("log")
    for name, (iterations, values) in classical.items():
        right.plot(iterations, values, color="black", linestyle="--" if "Scaled" in name else "-",
                   label=f"{name} (iterations)")
    right.set_xscale("log")
    right.axvline(layers, color="grey", linewidth=0.8)
    left.set_xlabel("layer")
    right.set_xlabel("layer / iteration (log)")
    left.set_title(title)
    right.legend(fontsize=7)
    figure.tight_layout()
    write_atomically(path, lambda file: figure.savefig(file, format="png", dpi=110))
    plt.close(figure)
