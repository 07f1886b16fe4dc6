"""CLI runs (JSON + PNG with seeds and parameters), reinforcement regimes, CUDA path (skipped without a GPU)."""

import argparse
import json

import pytest
import torch

from mlcm_torch.functional.fields import coupling_sum
from mlcm_torch.physics.cli import build_parser, float_values, main
from mlcm_torch.physics.networks import random_network, random_states
from mlcm_torch.physics.reinforcement import cell_label, phase_diagram


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_float_values_parses_numbers_and_ranges():
    assert float_values("0.5") == [0.5]
    assert float_values("0:1:0.25") == [0.0, 0.25, 0.5, 0.75, 1.0]
    with pytest.raises(argparse.ArgumentTypeError, match="start:stop:step"):
        float_values("a:b")
    with pytest.raises(argparse.ArgumentTypeError, match="step > 0"):
        float_values("1:0:0.1")


@pytest.mark.parametrize(
    "argv",
    [
        ["fixed-points", "--n", "5", "6", "--networks", "3", "--j-d", "0:1:0.5"],
        ["critical", "--n", "20", "--networks", "2", "--states", "3", "--max-steps", "40", "--tol", "0.05"],
        ["hopfield", "--n", "60", "--networks", "1", "--cues", "2", "--alphas", "0.05", "0.3", "--beta", "5"],
    ],
)
def test_cli_writes_json_and_png(tmp_path, argv):
    record = main(argv + ["--out", str(tmp_path), "--seed", "7", "--no-progress"])
    name = argv[0]
    data = json.loads((tmp_path / f"{name}.json").read_text())
    assert data["seed"] == 7 and data["parameters"]["seed"] == 7
    assert data["parameters"]["n"] == build_parser().parse_args(argv).n
    assert data["command"].startswith("python -m mlcm_torch.physics " + name)
    assert data["results"] == json.loads(json.dumps(record["results"]))
    assert (tmp_path / f"{name}.png").stat().st_size > 1000


def test_cli_refuses_cuda_without_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit, match="CUDA is not available"):
        main(["fixed-points", "--n", "4", "--device", "cuda", "--out", str(tmp_path)])


def test_cli_refuses_a_network_that_does_not_fit(tmp_path):
    with pytest.raises(SystemExit, match=r"refusing to allocate 1 network\(s\) of N=2000000 \(int8 couplings\)"):
        main(["critical", "--n", "2000000", "--networks", "1", "--out", str(tmp_path), "--no-progress"])


def test_cli_rejects_unknown_experiment_and_bad_choice():
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["nonsense"])
    with pytest.raises(SystemExit):
        parser.parse_args(["critical", "--dynamics", "parallel"])
    with pytest.raises(SystemExit):
        parser.parse_args(["accessibility", "--backend", "fast"])


@pytest.mark.parametrize("experiment,extra", [
    ("accessibility", ["--j-d", "0.3:1.5:0.3", "--states", "6", "--max-steps", "40"]),
    ("convergence", ["--j-d", "0.6", "1.2", "--states", "6", "--max-steps", "40", "--kind", "gaussian"]),
    ("critical", ["--states", "4", "--max-steps", "40", "--tol", "0.05", "--storage", "float32"]),
])
def test_cli_backend_option_reaches_the_dynamics(tmp_path, experiment, extra, monkeypatch):
    """--backend is recorded and handed to run_dynamics; on these Gaussian / float32 networks
    dense and event give the same results."""
    from mlcm_torch.physics import dynamics

    seen, real = [], dynamics.run_dynamics
    monkeypatch.setattr(dynamics, "run_dynamics", lambda *a, **k: seen.append(k["backend"]) or real(*a, **k))
    for module in ("scan", "critical"):
        monkeypatch.setattr(f"mlcm_torch.physics.{module}.run_dynamics", dynamics.run_dynamics)
    results = {}
    for backend in ("dense", "event"):
        argv = [experiment, "--n", "40", "--networks", "2", *extra, "--backend", backend,
                "--out", str(tmp_path / backend), "--no-progress"]
        record = main(argv)
        assert record["parameters"]["backend"] == backend
        results[backend] = record["results"]
    assert set(seen) == {"dense", "event"}
    assert results["dense"] == results["event"]


def test_cell_labels():
    assert cell_label(0.8, 0.2, 0.0, 0.0) == "chaotic"
    assert cell_label(0.0, 0.1, 0.9, 0.0) == "trivial all+1"
    assert cell_label(0.0, 0.1, 0.0, 0.9) == "trivial all-1"
    assert cell_label(0.0, 0.0, 0.5, 0.5) == "trivial all±1"
    assert cell_label(0.2, 0.7, 0.1, 0.0) == "intermediate"


def test_strong_dense_reinforcement_is_trivial_and_none_is_chaotic():
    r = phase_diagram(60, [1.2, 1.95], [0.01, 20.0], n_networks=2, n_states=6, max_steps=100, seed=0)
    assert r["label"][1][1].startswith("trivial")
    assert r["trivial_plus"][1][1] + r["trivial_minus"][1][1] == pytest.approx(1.0)
    assert r["label"][0][0] == "chaotic"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_int8_fields_on_cuda_match_cpu():
    net = random_network(512, 0.5, n_networks=2, storage="int8", generator=torch.Generator().manual_seed(0))
    s = random_states(2, 8, 512, generator=torch.Generator().manual_seed(1))
    cpu = coupling_sum(net.graph.layers[0], s)
    gpu_net = type(net)(net.couplings.cuda(), net.j_d, net.unit)
    assert torch.equal(coupling_sum(gpu_net.graph.layers[0], s.cuda()).cpu(), cpu)


def test_experiment_functions_reject_bad_lists():
    from mlcm_torch.physics.accessibility import accessibility
    from mlcm_torch.physics.capacity import capacity
    from mlcm_torch.physics.convergence import convergence_times
    from mlcm_torch.physics.critical import critical_vs_size
    from mlcm_torch.physics.fixed_points import fixed_point_entropy
    from mlcm_torch.physics.hopfield import retrieval

    with pytest.raises(ValueError, match="sizes must be a non-empty list"):
        critical_vs_size([])
    with pytest.raises(ValueError, match="sizes must be a non-empty list"):
        fixed_point_entropy([1], [0.5])
    with pytest.raises(ValueError, match="j_d_values must be a non-empty list of finite numbers"):
        convergence_times([20], [0.5, float("nan")])
    with pytest.raises(ValueError, match="j_d_values must be a non-empty list"):
        accessibility(20, [])
    with pytest.raises(ValueError, match="a_values must be a non-empty list"):
        phase_diagram(20, [1.5], [])
    with pytest.raises(ValueError, match="dynamics must be one of"):
        phase_diagram(20, [1.5], [1.0], dynamics="parallel")
    with pytest.raises(ValueError, match="alphas = P/N must be positive"):
        capacity([20], [0.0, 1.0])
    with pytest.raises(ValueError, match="alphas must be a non-empty list"):
        retrieval(50, [])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fixed_point_counts_on_cuda_match_cpu():
    from mlcm_torch.physics.fixed_points import fixed_point_counts
    from mlcm_torch.physics.networks import random_couplings

    j, _ = random_couplings(12, n_networks=3, kind="gaussian", storage="float64",
                            generator=torch.Generator().manual_seed(0))
    assert torch.equal(fixed_point_counts(j.cuda(), [0.0, 0.5, 1.0]), fixed_point_counts(j, [0.0, 0.5, 1.0]))
