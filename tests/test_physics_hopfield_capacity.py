"""Hopfield energy monotonicity and retrieval; perceptron separability and Cover's capacity 2."""

import math

import numpy as np
import pytest
import torch

from mlcm_torch.physics.capacity import cover_probability, is_separable, separability_curve
from mlcm_torch.physics.dynamics import update_neuron
from mlcm_torch.physics.hopfield import energy, glauber_dynamics, hebbian_couplings, hopfield_network, retrieval
from mlcm_torch.physics.networks import random_states


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_hebbian_couplings_match_loop():
    xi = random_states(1, 3, 6, generator=torch.Generator().manual_seed(0))[0]
    j = hebbian_couplings(xi)[0]
    for a in range(6):
        for b in range(6):
            expected = 0.0 if a == b else sum(float(xi[m, a] * xi[m, b]) for m in range(3)) / 6
            assert float(j[a, b]) == pytest.approx(expected)


@pytest.mark.parametrize("load", [0.05, 0.3])
def test_energy_never_increases_under_async_zero_temperature(load):
    n = 60
    patterns = random_states(2, max(1, round(load * n)), n, generator=torch.Generator().manual_seed(1))
    net = hopfield_network(patterns)
    s = random_states(2, 10, n, generator=torch.Generator().manual_seed(2))
    e = energy(net, s)
    order = torch.Generator().manual_seed(3)
    decreased = False
    for _ in range(5):
        for i in torch.randperm(n, generator=order).tolist():
            update_neuron(net, s, i)
            e_new = energy(net, s)
            assert bool((e_new <= e + 1e-9).all())
            decreased |= bool((e_new < e - 1e-9).any())
            e = e_new
    assert decreased


def test_energy_matches_definition():
    patterns = random_states(1, 2, 5, generator=torch.Generator().manual_seed(4))
    net = hopfield_network(patterns)
    s = random_states(1, 1, 5, generator=torch.Generator().manual_seed(5))
    j = net.couplings[0].tolist()
    v = s[0, 0].tolist()
    expected = -0.5 * sum(j[a][b] * v[a] * v[b] for a in range(5) for b in range(5) if a != b)
    assert float(energy(net, s)[0, 0]) == pytest.approx(expected)


def test_retrieval_low_load_perfect_high_load_fails():
    r = retrieval(200, [0.02, 0.4], n_networks=2, n_cues=4, beta=50.0, sweeps=5, seed=0)
    zt = r["zero_temperature"]
    assert zt["overlap_mean"][0] == pytest.approx(1.0)
    assert zt["overlap_mean"][1] < 0.9
    assert zt["alpha_c"] is not None and 0.02 < zt["alpha_c"] < 0.4
    assert r["glauber"]["overlap_mean"][0] > 0.95


def test_glauber_at_infinite_temperature_is_random():
    patterns = random_states(1, 2, 400, generator=torch.Generator().manual_seed(6))
    net = hopfield_network(patterns)
    final = glauber_dynamics(net, patterns, 0.0, 2, generator=torch.Generator().manual_seed(7))
    overlap = float((final * patterns).mean())
    assert abs(overlap) < 4 / math.sqrt(800)
    with pytest.raises(ValueError, match="beta"):
        glauber_dynamics(net, patterns, -1.0, 1)
    with pytest.raises(ValueError, match="sweeps"):
        glauber_dynamics(net, patterns, 1.0, -1)
    with pytest.raises(ValueError, match="only -1 and \\+1"):
        hebbian_couplings(torch.zeros(2, 3))


def test_is_separable_known_cases():
    x = np.array([[1.0, 1.0, -1.0], [1.0, -1.0, 1.0]])
    assert is_separable(x, np.array([1.0, -1.0]))
    assert not is_separable(np.vstack([x, -x[:1]]), np.array([1.0, -1.0, 1.0]))
    assert not is_separable(np.vstack([x, x[:1]]), np.array([1.0, -1.0, -1.0]))
    with pytest.raises(ValueError, match="labels must be -1 or \\+1"):
        is_separable(x, np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="patterns must be"):
        is_separable(x[0], np.array([1.0]))


def test_cover_probability_half_at_two_n():
    assert cover_probability(80, 40) == pytest.approx(0.5)
    assert cover_probability(40, 40) == 1.0


def test_raw_capacity_within_error_of_two():
    alphas = list(np.round(np.arange(1.5, 2.51, 0.1), 3))
    r = separability_curve(40, alphas, instances=30, seed=0)
    fit = r["fit"]
    assert abs(fit["alpha_c"] - 2.0) < 3 * fit["alpha_c_err"] + 0.02
    assert fit["alpha_c_err"] < 0.1


def test_relaxed_patterns_are_fixed_points_of_a_stable_network():
    r = separability_curve(30, [1.0, 1.5, 2.0, 2.5], instances=3, relax=True, j_d=1.5, seed=2)
    assert r["fraction_converged"] == [1.0] * 4
    with pytest.raises(ValueError, match="instances must be >= 2"):
        separability_curve(30, [1.0], instances=1)
