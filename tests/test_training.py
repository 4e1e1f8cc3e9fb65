"""Training and evaluation: data, losses, schemes, checkpoints, DDP, and the eval report."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from tests.conftest import ROOT, load_module, write_spec
from unfoldgen.cli import main
from unfoldgen.compiler import build
from unfoldgen.errors import SpecError
from unfoldgen.ir import lower
from unfoldgen.spec import load_spec
from unfoldgen.spec.experiment import apply_overrides
from unfoldgen.spec.model import TrainSpec
from unfoldgen.training.data import DataSource
from unfoldgen.training.losses import layer_weights
from unfoldgen.training.problem import TrainingProblem
from unfoldgen.training.session import Session
from unfoldgen.training.trainer import Phase, Trainer

LISTA_SMALL = ROOT / "specs" / "lista_small.yaml"
LEARNABLE = ["lista", "lista_cp", "lista_cpss", "alista", "ista_correction", "pnp_pgd", "admm_lasso", "rpca",
             "rpca_factorized", "lista_small"]
SMALL_DIMS = {"m": 8, "n": 12, "r": 2}


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def small_spec(tmp_path: Path, name: str, **changes: object) -> Path:
    """A bundled spec at test sizes (and with ``changes`` to its top-level sections)."""
    data = yaml.safe_load((ROOT / "specs" / f"{name}.yaml").read_text())
    data["dims"] = {k: SMALL_DIMS.get(k, v) if k in SMALL_DIMS else v for k, v in data["dims"].items()}
    if name.startswith("rpca"):
        data["dims"] = {k: {"m": 10, "n": 9, "r": 2}[k] for k in data["dims"]}
        for law in data["data"]["truth"].values():
            if law.get("rank") == 5:
                law["rank"] = 2
    data["algorithm"]["layers"] = 3
    for key, value in changes.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return write_spec(tmp_path, data)


def trained(path: Path, out: Path, **settings: object) -> Trainer:
    spec = load_spec(path)
    trainer = Trainer(spec, apply_overrides(spec.train, {"dtype": "float64", **settings}), out, quiet=True)
    trainer.run()
    return trainer


def load_state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


# -- data -------------------------------------------------------------------------------------

def test_samples_are_seeded_by_step_and_follow_the_laws() -> None:
    spec = load_spec(LISTA_SMALL)
    problem = TrainingProblem(spec, lower(spec))
    first, again = DataSource(spec, problem), DataSource(spec, problem)
    assert torch.equal(first.constants["A"], again.constants["A"])
    np.testing.assert_allclose(np.linalg.norm(first.constants["A"].numpy(), axis=0), 1.0)
    batch, same, other = first.fresh(5, 4000), again.fresh(5, 4000), first.fresh(6, 4000)
    assert torch.equal(batch.inputs["y"], same.inputs["y"])
    assert not torch.equal(batch.inputs["y"], other.inputs["y"])
    x = batch.truth["x"]
    assert abs(float((x != 0).double().mean()) - 0.1) < 0.01
    clean = x @ first.constants["A"].T
    noise = batch.inputs["y"] - clean
    snr = 10 * np.log10(float(clean.square().sum() / noise.square().sum()))
    assert abs(snr - 40) < 0.2


def test_low_rank_plus_sparse_truth(tmp_path: Path) -> None:
    spec = load_spec(small_spec(tmp_path, "rpca"))
    problem = TrainingProblem(spec, lower(spec))
    batch = DataSource(spec, problem).fresh(0, 50)
    low_rank, sparse = batch.truth["L"], batch.truth["S"]
    assert all(int(torch.linalg.matrix_rank(m)) == 2 for m in low_rank)
    assert torch.allclose(batch.inputs["Y"], low_rank + sparse)
    bound = low_rank.abs().flatten(1).mean(1)[:, None, None]
    assert bool(((sparse.abs() <= bound + 1e-12)).all())


def test_user_data_sets_and_constant_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((8, 12))
    np.save(tmp_path / "A.npy", a)
    for split, count in (("train", 64), ("validation", 32), ("test", 40)):
        x = rng.standard_normal((count, 12)) * (rng.random((count, 12)) < 0.2)
        np.savez(tmp_path / f"{split}.npz", y=x @ a.T, x=x)
    data = {"constants": {"A": {"file": "A.npy"}}, "files": {s: f"{s}.npz" for s in ("train", "validation", "test")}}
    path = small_spec(tmp_path, "lista_small", data=None)
    raw = yaml.safe_load(path.read_text())
    raw["data"] = data
    path = write_spec(tmp_path, raw)
    trainer = trained(path, tmp_path / "run", steps=5, batch_size=16)
    assert torch.allclose(trainer.model.A, torch.from_numpy(a))
    code, output = run_cli("eval", path, "--weights", tmp_path / "run" / "weights.pt", "--json",
                           "--classical-iterations", "20")
    assert code == 0, output
    assert json.loads(output)["samples"] == 40


def test_missing_array_in_a_data_file_is_a_located_error(tmp_path: Path) -> None:
    np.savez(tmp_path / "train.npz", x=np.zeros((200, 12)))
    path = small_spec(tmp_path, "lista_small")
    raw = yaml.safe_load(path.read_text())
    raw["data"]["files"] = {"train": "train.npz"}
    path = write_spec(tmp_path, raw)
    code, output = run_cli("train", path, "--out", tmp_path / "run", "--steps", "2", "--quiet")
    assert code == 2
    assert "data.files.train" in output and "no array 'y'" in output
    assert not (tmp_path / "run" / "weights.pt").exists()


# -- objective and losses ---------------------------------------------------------------------

def test_objective_matches_a_direct_computation(tmp_path: Path) -> None:
    spec = load_spec(small_spec(tmp_path, "lista_small"))
    problem = TrainingProblem(spec, lower(spec))
    rng = np.random.default_rng(3)
    a, y, x = rng.standard_normal((8, 12)), rng.standard_normal((5, 8)), rng.standard_normal((5, 12))
    value = problem.objective({"y": torch.from_numpy(y)}, {"x": torch.from_numpy(x)}, {"A": torch.from_numpy(a)})
    expected = 0.5 * ((x @ a.T - y) ** 2).sum(1) + 0.05 * np.abs(x).sum(1)
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-12)


def test_rpca_objective_uses_the_nuclear_norm(tmp_path: Path) -> None:
    spec = load_spec(small_spec(tmp_path, "rpca"))
    problem = TrainingProblem(spec, lower(spec))
    rng = np.random.default_rng(4)
    y, low, sparse = (rng.standard_normal((3, 10, 9)) for _ in range(3))
    value = problem.objective({"Y": torch.from_numpy(y)}, {"L": torch.from_numpy(low), "S": torch.from_numpy(sparse)}, {})
    expected = [0.5 * np.sum((y[i] - low[i] - sparse[i]) ** 2) + 2.0 * np.linalg.svd(low[i], compute_uv=False).sum()
                + 0.1 * np.abs(sparse[i]).sum() for i in range(3)]
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-10)


def test_layer_weights_are_parsed_safely() -> None:
    spec = load_spec(LISTA_SMALL)
    problem = TrainingProblem(spec, lower(spec))
    np.testing.assert_allclose(layer_weights(problem, "log(k+2)", 3), np.log([2, 3, 4]))
    with pytest.raises(SpecError, match="not a non-negative number"):
        layer_weights(problem, "1 - k", 3)
    with pytest.raises(SpecError, match="unknown function '__import__'"):
        layer_weights(problem, "__import__('os')", 3)


# -- schemes ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_trained_lista_small_beats_untrained_ista_by_10_db(tmp_path: Path) -> None:
    """The bundled spec's own training settings, then eval on 1000 held-out samples."""
    code, output = run_cli("train", LISTA_SMALL, "--out", tmp_path / "run", "--quiet")
    assert code == 0, output
    code, output = run_cli("eval", LISTA_SMALL, "--weights", tmp_path / "run" / "weights.pt", "--json",
                           "--classical-iterations", "2000")
    assert code == 0, output
    nmse = json.loads(output)["nmse_db"]
    assert len(nmse["trained"]) == len(nmse["untrained"]) == 8
    assert nmse["trained"][-1] <= nmse["untrained"][-1] - 10


def test_eval_json_schema_and_plot(tmp_path: Path) -> None:
    path = small_spec(tmp_path, "lista_small")
    trained(path, tmp_path / "run", steps=30, lr=0.01)
    plot = tmp_path / "nmse.png"
    code, output = run_cli("eval", path, "--weights", tmp_path / "run" / "weights.pt", "--json", "--plot", plot,
                           "--samples", "200", "--classical-iterations", "300")
    assert code == 0, output
    report = json.loads(output)
    assert set(report) >= {"nmse_db", "classical_iters_to_match"}
    assert set(report["nmse_db"]) == {"trained", "untrained", "classical"}
    assert [len(report["nmse_db"][k]) for k in ("trained", "untrained", "classical")] == [3, 3, 300]
    assert all(isinstance(v, float) for values in report["nmse_db"].values() for v in values)
    match = report["classical_iters_to_match"]
    assert match is None or (isinstance(match, int) and report["nmse_db"]["classical"][match - 1]
                             <= report["nmse_db"]["trained"][-1])
    # the untrained network is the classical algorithm
    np.testing.assert_allclose(report["nmse_db"]["untrained"], report["nmse_db"]["classical"][:3], atol=1e-9)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, table = run_cli("eval", path, "--weights", tmp_path / "run" / "weights.pt", "--samples", "50",
                          "--classical-iterations", "10")
    assert code == 0 and "trained" in table and "untrained" in table


def test_unsupervised_training_lowers_the_objective(tmp_path: Path) -> None:
    path = small_spec(tmp_path, "lista_small")
    trainer = trained(path, tmp_path / "run", loss="unsupervised", steps=150, lr=0.005)
    session, batch = trainer.session, trainer.session.source.fixed("test", 300).to(torch.float64, "cpu")
    untrained = session.network()
    with torch.no_grad():
        after = session.problem.objective(batch.inputs, trainer.model(**batch.inputs), session.constants).mean()
        before = session.problem.objective(batch.inputs, untrained(**batch.inputs), session.constants).mean()
    assert float(after) < 0.9 * float(before)


def test_deep_supervision_trains(tmp_path: Path) -> None:
    path = small_spec(tmp_path, "lista_small")
    trainer = trained(path, tmp_path / "run", loss="deep_supervision", layer_weights="log(k+2)", steps=60, lr=0.01,
                      validate_every=20)
    assert trainer.loss.weights == pytest.approx(list(np.log([2, 3, 4])))
    history = json.loads((tmp_path / "run" / "history.json").read_text())["history"]
    assert history[-1]["val_nmse_db"] < history[0]["val_nmse_db"]


def test_layerwise_stages_never_get_worse(tmp_path: Path) -> None:
    path = small_spec(tmp_path, "lista_small")
    trainer = trained(path, tmp_path / "run", scheme="layerwise", stage_steps=60, lr=0.005, validate_every=1000)
    stages = [s["val_nmse_db"] for s in json.loads((tmp_path / "run" / "history.json").read_text())["stages"]]
    assert len(stages) == 3
    assert all(later <= earlier for earlier, later in itertools.pairwise(stages)), stages
    phases = [(p.depth, p.mode) for p in trainer.phases]
    assert phases == [(1, "all"), (2, "new"), (2, "all"), (3, "new"), (3, "all")]


def test_new_layer_phase_trains_only_that_layer(tmp_path: Path) -> None:
    path = small_spec(tmp_path, "lista_small")
    spec = load_spec(path)
    trainer = Trainer(spec, apply_overrides(spec.train, {"dtype": "float64", "scheme": "layerwise",
                                                         "stage_steps": 5}), tmp_path / "run", quiet=True)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.phases = [Phase(2, "new", 5)]
    trainer.run()
    after = dict(trainer.model.named_parameters())
    assert set(trainer.per_layer) == {"W_x", "W_y", "threshold_raw"}
    for name in trainer.per_layer:
        assert torch.equal(after[name][0], before[name][0])  # layer 1 ran but is frozen
        assert not torch.equal(after[name][1], before[name][1])  # layer 2 learned
        assert torch.equal(after[name][2], before[name][2])  # layer 3 never ran


@pytest.mark.parametrize("name", LEARNABLE)
def test_every_learnable_bundled_spec_trains(tmp_path: Path, name: str) -> None:
    path = small_spec(tmp_path, name)
    trainer = trained(path, tmp_path / "run", steps=3, stage_steps=2, batch_size=4, validation_samples=8)
    assert (tmp_path / "run" / "params.npz").exists()
    kernel = dict(np.load(tmp_path / "run" / "params.npz"))
    assert set(kernel) == set(trainer.model.kernel_params())


# -- checkpoints and scale-out ----------------------------------------------------------------

def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path: Path) -> None:
    path = small_spec(tmp_path, "lista_small")
    flags = ["--steps", "30", "--checkpoint-every", "7", "--validate-every", "10", "--dtype", "float64", "--quiet"]
    assert run_cli("train", path, "--out", tmp_path / "whole", *flags)[0] == 0
    code, output = run_cli("train", path, "--out", tmp_path / "parts", *flags, "--stop-after", "12")
    assert code == 0 and "--resume" in output
    assert not (tmp_path / "parts" / "weights.pt").exists()
    assert run_cli("train", path, "--out", tmp_path / "parts", *flags, "--resume")[0] == 0
    whole, parts = load_state(tmp_path / "whole" / "weights.pt"), load_state(tmp_path / "parts" / "weights.pt")
    assert all(torch.equal(whole[k], parts[k]) for k in whole)
    history = [json.loads((tmp_path / d / "history.json").read_text())["history"] for d in ("whole", "parts")]
    assert history[0] == history[1]
    assert not [p for p in (tmp_path / "parts").iterdir() if p.name.startswith(".")]  # no temporary files left


def test_resume_with_other_settings_is_refused(tmp_path: Path) -> None:
    path = small_spec(tmp_path, "lista_small")
    assert run_cli("train", path, "--out", tmp_path / "run", "--steps", "10", "--stop-after", "5", "--quiet")[0] == 0
    code, output = run_cli("train", path, "--out", tmp_path / "run", "--steps", "20", "--resume", "--quiet")
    assert code == 2 and "other training settings" in output


@pytest.mark.slow
def test_two_process_ddp_equals_single_process_training(tmp_path: Path) -> None:
    path = small_spec(tmp_path, "lista_small")
    flags = ["--steps", "12", "--batch-size", "32", "--dtype", "float64", "--validate-every", "6", "--quiet"]
    torchrun = Path(sys.executable).with_name("torchrun")
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "unfoldgen", "train",
                             str(path), "--out", str(tmp_path / "ddp"), *flags],
                            capture_output=True, text=True, timeout=300, env=environment, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert run_cli("train", path, "--out", tmp_path / "single", *flags)[0] == 0
    ddp, single = load_state(tmp_path / "ddp" / "weights.pt"), load_state(tmp_path / "single" / "weights.pt")
    assert all(torch.allclose(ddp[k], single[k], rtol=0, atol=1e-12) for k in single)
    assert not all(torch.equal(ddp[k], load_state_untrained(path)[k]) for k in single)
    assert json.loads((tmp_path / "ddp" / "history.json").read_text())["processes"] == 2


def load_state_untrained(path: Path) -> dict[str, torch.Tensor]:
    spec = load_spec(path)
    session = Session(spec, TrainSpec(dtype="float64"), torch.device("cpu"))
    return session.network().state_dict()


# -- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "fragment"), [
    ({"truth": {"x": {"law": "sparse"}}, "inputs": {"y": {"model": "A @ x"}}}, "constant 'A' has no source"),
    ({"constants": {"A": {"law": "cauchy"}}}, "'cauchy' is not a known law"),
    ({"constants": {"A": {"law": "gaussian"}}, "truth": {"x": {"law": "sparse", "density": 2}}},
     "density must be a number in [0.0, 1.0]"),
    ({"constants": {"A": {"law": "gaussian"}}, "truth": {"x": {"law": "sparse"}},
      "inputs": {"y": {"model": "__import__('os')"}}}, "unknown function '__import__'"),
    ({"constants": {"A": {"law": "gaussian"}}, "truth": {"x": {"law": "sparse"}},
      "inputs": {"y": {"model": "x"}}}, "the model has shape [n] but the input 'y' is [m]"),
])
def test_bad_data_sections_are_located_errors(tmp_path: Path, data: dict, fragment: str) -> None:
    raw = yaml.safe_load(LISTA_SMALL.read_text())
    raw["data"] = data
    path = write_spec(tmp_path, raw)
    code, output = run_cli("train", path, "--out", tmp_path / "run", "--steps", "1", "--quiet")
    assert code == 2, output
    assert fragment in output and "data" in output and "Traceback" not in output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("flags", "fragment"), [
    (["--lr", "-1"], "lr must be a positive number"),
    (["--loss", "hinge"], "'hinge' is not a choice for loss"),
    (["--lr-groups", "{W_z: 0.1}"], "lr_groups names 'W_z'"),
    (["--epochs", "3"], "epochs need a fixed training set"),
])
def test_bad_training_flags_exit_2(tmp_path: Path, flags: list[str], fragment: str) -> None:
    code, output = run_cli("train", LISTA_SMALL, "--out", tmp_path / "run", "--quiet", *flags)
    assert code == 2, output
    assert fragment in output


def test_eval_refuses_weights_of_another_network(tmp_path: Path) -> None:
    path = small_spec(tmp_path, "lista_small")
    trained(path, tmp_path / "run", steps=2)
    other = small_spec(tmp_path, "lista_cp")
    code, output = run_cli("eval", other, "--weights", tmp_path / "run" / "weights.pt")
    assert code == 2 and "do not fit the network" in output
    code, output = run_cli("eval", path, "--weights", tmp_path / "missing.pt")
    assert code == 2 and "no weights file" in output


def test_fixed_training_set_with_epochs(tmp_path: Path) -> None:
    path = small_spec(tmp_path, "lista_small")
    trainer = trained(path, tmp_path / "run", train_samples=64, epochs=3, batch_size=16)
    assert trainer.phases[0].steps == 12
    shutil.rmtree(tmp_path / "run")


def test_params_npz_drives_the_numba_kernel_like_the_trained_module(tmp_path: Path) -> None:
    """What training writes for deployment reproduces the trained network in the kernel."""
    path = small_spec(tmp_path, "lista_small")
    trainer = trained(path, tmp_path / "run", steps=20, lr=0.01)
    built = build(path, tmp_path / "out")
    kernel = load_module(built.directory / "kernel.py")
    params = dict(np.load(tmp_path / "run" / "params.npz"))
    batch = trainer.session.source.fixed("test", 16)
    expected = trainer.model(y=batch.inputs["y"])["x"].detach().numpy()
    np.testing.assert_allclose(kernel.solve(params, y=batch.inputs["y"].numpy())["x"], expected, atol=1e-10)
    untrained = trainer.session.network()
    assert not np.allclose(untrained(y=batch.inputs["y"])["x"].detach().numpy(), expected, atol=1e-6)


def test_training_killed_with_sigkill_resumes_to_the_same_weights(tmp_path: Path) -> None:
    """Real kills (no clean-up code runs) at arbitrary moments, possibly inside a checkpoint
    write, three times in a row: each time the checkpoint on disk loads and has moved on, and
    the last ``--resume`` ends where an uninterrupted run ends, bit for bit."""
    path = small_spec(tmp_path, "lista_small")
    flags = ["--steps", "2000", "--checkpoint-every", "20", "--validate-every", "500", "--batch-size", "16",
             "--dtype", "float64", "--quiet"]
    killed = tmp_path / "killed"
    step = 0
    for attempt, delay in enumerate((0.3, 0.05, 0.5)):
        command = [sys.executable, "-m", "unfoldgen", "train", str(path), "--out", str(killed), *flags]
        child = subprocess.Popen(command + (["--resume"] if attempt else []),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while child.poll() is None and checkpoint_step(killed) <= step:
                time.sleep(0.005)
            time.sleep(delay)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=60)
        assert child.returncode == -signal.SIGKILL, "the run ended before it was killed: raise --steps"
        assert step < checkpoint_step(killed) < 2000 and not (killed / "weights.pt").exists()
        step = checkpoint_step(killed)
    assert run_cli("train", path, "--out", killed, *flags, "--resume")[0] == 0
    assert run_cli("train", path, "--out", tmp_path / "whole", *flags)[0] == 0
    whole, resumed = load_state(tmp_path / "whole" / "weights.pt"), load_state(killed / "weights.pt")
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert not [p for p in killed.iterdir() if p.name.startswith(".")]  # abandoned temporaries removed


def checkpoint_step(folder: Path) -> int:
    """The step of the checkpoint in ``folder`` (0 if none): it must always load."""
    path = folder / "checkpoint.pt"
    return int(torch.load(path, weights_only=True)["state"]["step"]) if path.exists() else 0


def test_training_prints_progress_lines_when_its_output_is_not_a_terminal(tmp_path: Path) -> None:
    """A log file gets one line per validation, not a bar's last state."""
    path = small_spec(tmp_path, "lista_small")
    unfoldgen = Path(sys.executable).parent / "unfoldgen"
    flags = ["--steps", "6", "--validate-every", "2", "--validation-samples", "16", "--batch-size", "8"]
    done = subprocess.run([str(unfoldgen), "train", str(path), "--out", str(tmp_path / "run"), *flags],
                          capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["2/6", "4/6", "6/6"], done.stdout
    assert all("loss" in line and "val NMSE" in line for line in lines)
    assert "training" not in done.stderr


def test_the_demo_headline_holds_within_its_stated_margin() -> None:
    """ISTA's plateau 0.03 dB above the trained network used to flip the headline to 'never'."""
    from unfoldgen.training.demo import MATCH_TOLERANCE_DB, headline

    classical = [-10.0 - 8.65 * (1 - 0.99**k) for k in range(1, 10001)]  # plateaus at -18.65 dB
    for trained in (-18.68, -18.62):
        text = headline({"trained": [-12.0, trained], "untrained": [-5.0, -8.0], "classical": classical})
        assert f"within {MATCH_TOLERANCE_DB} dB" in text and "iterations**" in text, text
    text = headline({"trained": [-30.0], "untrained": [-5.0], "classical": classical})
    assert text.startswith("ISTA does not come within")
