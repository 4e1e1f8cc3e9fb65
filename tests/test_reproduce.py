"""The reproduction studies at smoke scale: their JSON contract, that training helps, and the page.

The full runs (``make reproduce``) are not tests; these run the same code on tiny problems.
"""

import json

import pytest

from unfoldgen.reproduce.__main__ import main
from unfoldgen.reproduce.rpca import PARADIGMS
from unfoldgen.reproduce.sparse import CLASSICAL, NETWORKS, SMOKE

SPARSE_NAMES = ["ISTA", "FISTA", "ISTA-learned-step", "LISTA", "LISTA-CP", "LISTA-CPSS", "ALISTA", "ISTA-correction"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce")
    out, runs = root / "results", root / "runs"
    assert main(["all", "--smoke", "--quiet", "--out", str(out), "--runs", str(runs)]) == 0
    return out, runs


def read(results, name):
    return json.loads((results[0] / f"{name}.json").read_text())


def test_the_network_names_are_the_contract():
    assert list(NETWORKS) == SPARSE_NAMES


@pytest.mark.parametrize("name", ["lista_noiseless", "lista_snr40"])
def test_sparse_json_schema(results, name):
    result = read(results, name)
    assert list(result["nmse_db"]) == SPARSE_NAMES
    assert all(len(curve) == SMOKE.layers for curve in result["nmse_db"].values())
    assert all(isinstance(v, float) for curve in result["nmse_db"].values() for v in curve)
    assert set(result["classical_iters_to_match"]) == set(SPARSE_NAMES)
    assert all(v is None or (isinstance(v, int) and 1 <= v <= SMOKE.classical_iterations)
               for v in result["classical_iters_to_match"].values())
    assert result["classical_iters_to_match"]["ISTA"] == SMOKE.layers  # ISTA matches itself
    assert result["setting"]["snr_db"] == (None if name == "lista_noiseless" else 40.0)
    assert result["wall_s"] > 0 and result["command"].startswith("python -m unfoldgen.reproduce all")


@pytest.mark.parametrize("name", ["lista_noiseless", "lista_snr40"])
def test_learned_sparse_networks_beat_their_untrained_versions(results, name):
    result = read(results, name)
    for network in SPARSE_NAMES:
        final, untrained = result["nmse_db"][network][-1], result["untrained_nmse_db"][network][-1]
        if network in CLASSICAL:
            assert final == untrained and result["params"][network] == 0
        else:
            assert final < untrained - 0.3, network
            assert result["params"][network] > 0


def test_mismatch_json(results):
    result = read(results, "lista_mismatch")
    assert set(result["conditions"]) >= {"density 0.05", "density 0.2", "SNR 30 dB", "SNR 20 dB"}
    assert list(result["nmse_db"]) == SPARSE_NAMES
    for curves in result["nmse_db"].values():
        assert set(curves) == set(result["conditions"])
    # the nominal condition is the 40 dB study's test set: the same numbers
    nominal = read(results, "lista_snr40")["nmse_db"]
    assert all(result["nmse_db"][n]["nominal"] == nominal[n] for n in SPARSE_NAMES)
    # more noise never helps ISTA
    ista = result["nmse_db"]["ISTA"]
    assert ista["SNR 20 dB"][-1] >= ista["nominal"][-1]


def test_rpca_json_and_learning(results):
    result = read(results, "rpca")
    assert set(result["rel_err"]) == set(PARADIGMS)
    assert {record["paradigm"] for record in result["networks"].values()} == {0, 1, 2, 3, 4}
    for name, record in result["networks"].items():
        assert len(record["rel_err"]) == result["setting"]["layers"]
        assert record["inference_ms"] > 0 and record["robust_rel_err"]
        if record["paradigm"] == 0:
            assert record["rel_err"] == record["untrained_rel_err"] and record["params"] == 0
        else:
            assert record["rel_err"][-1] < record["untrained_rel_err"][-1], name
            assert record["params"] > 0 and record["train_s"] >= 0
    assert set(result["classical_rel_err"]) == {"BPG", "ScaledGD"}


def test_report_is_written_from_the_json(results):
    out, _ = results
    page = (out.parent / "results.md").read_text()
    for name in ("lista_noiseless", "lista_snr40", "rpca"):
        assert (out / f"{name}.png").stat().st_size > 1000
    noiseless = read(results, "lista_noiseless")
    assert f"| ALISTA | {noiseless['params']['ALISTA']} |" in page
    assert f"{noiseless['nmse_db']['ALISTA'][-1]:.2f}" in page
    rpca = read(results, "rpca")
    assert f"{rpca['networks']['BPG-learned-prox']['rel_err'][-1]:.4f}" in page
    assert "**met**" in page or "**missed**" in page


def test_a_second_run_reuses_finished_training(results, capsys):
    out, runs = results
    assert main(["sparse", "--smoke", "--out", str(out), "--runs", str(runs)]) == 0
    printed = capsys.readouterr().out
    assert "reusing" in printed and "training ..." not in printed


def test_sparse_logistic_json(results):
    """Study 4: the classical network and the learned one, accuracy and objective per layer, and
    the classical iterations that reach the learned network's objective."""
    from unfoldgen.reproduce.logistic import SMOKE as LOGISTIC

    result = read(results, "sparse_logistic")
    assert list(result["networks"]) == ["PG", "PG-learned-step"]
    for record in result["networks"].values():
        assert len(record["accuracy"]) == len(record["objective"]) == LOGISTIC.layers
        assert all(0.0 <= a <= 1.0 for a in record["accuracy"])
    classical = result["classical"]
    assert len(classical["iterations"]) == len(classical["objective"]) == len(classical["accuracy"])
    # the untrained network is the classical algorithm: its layers are the first iterations
    assert result["networks"]["PG"]["objective"] == classical["objective"][:LOGISTIC.layers]
    match = result["classical_iters_to_match"]
    assert match is None or 1 <= match <= LOGISTIC.classical_iterations
    page = (results[0].parent / f"{results[0].name}.md").read_text()
    assert "## Sparse logistic regression" in page
