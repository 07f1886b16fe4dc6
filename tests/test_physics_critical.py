"""J_D* detection on tiny networks with known answers; convergence-time fit; accessibility crossing."""

import itertools

import numpy as np
import pytest
import torch

from mlcm_torch.physics.accessibility import accessibility, crossing
from mlcm_torch.physics.convergence import convergence_times, fit_power_law, lowest_all_converged
from mlcm_torch.physics.critical import critical_self_coupling, critical_vs_size, row_bound
from mlcm_torch.physics.networks import network_from_couplings, random_couplings


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def reference_converges(j, j_d, s, max_steps):
    """Slow synchronous loop: does s reach a state with s_i h_i > 0 for all i within max_steps?"""
    n = len(s)
    for _ in range(max_steps + 1):
        margins = [s[i] * (sum(j[i][k] * s[k] for k in range(n)) + j_d * s[i]) for i in range(n)]
        if all(m > 0 for m in margins):
            return True
        s = [s[i] if margins[i] > 0 else -s[i] for i in range(n)]
    return False


def all_states(n):
    return torch.tensor(list(itertools.product((-1.0, 1.0), repeat=n))).unsqueeze(0)


@pytest.mark.parametrize("dynamics", ["sync", "async"])
def test_rotation_network_has_j_d_star_one(dynamics):
    # J_12 = 1, J_21 = -1: for J_D < 1 one of s_1 h_1, s_2 h_2 equals J_D - 1 <= 0 in every state, so
    # nothing converges; for J_D > 1 every state is a fixed point. J_D* = 1 (J_D = 1 itself is a tie).
    net = network_from_couplings(torch.tensor([[0.0, 1.0], [-1.0, 0.0]]), 0.0)
    est = critical_self_coupling(net, all_states(2), dynamics=dynamics, tol=1e-3, max_steps=20)
    assert 1.0 < float(est.j_d_star[0]) <= 1.0 + 1e-3
    assert float(est.lower[0]) <= 1.0


def test_converging_network_has_j_d_star_zero():
    # Ferromagnet with an odd number of neighbours (no zero fields): asynchronous dynamics lowers the
    # energy at every flip, so every state converges already at J_D = 0 ...
    j = torch.ones(4, 4) - torch.eye(4)
    net = network_from_couplings(j, 0.0)
    assert float(critical_self_coupling(net, all_states(4), dynamics="async", max_steps=10).j_d_star[0]) == 0.0
    # ... while synchronous dynamics swaps (+,+,-,-) and (-,-,+,+) forever until J_D > 1 keeps them.
    est = critical_self_coupling(net, all_states(4), dynamics="sync", max_steps=10, tol=1e-3)
    assert 1.0 < float(est.j_d_star[0]) <= 1.0 + 1e-3


def test_bisection_bracket_against_reference_on_random_tiny_networks():
    j, _ = random_couplings(5, n_networks=4, kind="gaussian", storage="float64",
                            generator=torch.Generator().manual_seed(7))
    net = network_from_couplings(j, 0.0)
    states = all_states(5).repeat(4, 1, 1)
    est = critical_self_coupling(net, states, dynamics="sync", max_steps=30, tol=1e-3)
    for m in range(4):
        jm = j[m].tolist()
        hi, lo = float(est.j_d_star[m]), float(est.lower[m])
        assert hi - lo <= 1e-3 + 1e-12
        assert all(reference_converges(jm, hi, s, 30) for s in states[m].tolist())
        if hi > 0:
            assert not all(reference_converges(jm, lo, s, 30) for s in states[m].tolist())
        assert hi <= float(row_bound(net)[m]) + 1e-3


def test_critical_vs_size_records_per_network_values():
    r = critical_vs_size([20, 40], n_networks=2, n_states=4, max_steps=50, tol=0.05, seed=3)
    rows = r["sizes"]
    assert [row["n"] for row in rows] == [20, 40]
    for row in rows:
        assert len(row["per_network"]) == 2
        assert row["j_d_star"] == max(row["per_network"])


def test_power_law_fit_recovers_exponent():
    j_d = np.linspace(0.55, 1.5, 20)
    times = 3.0 * (j_d - 0.5) ** -1.7
    fit = fit_power_law(j_d, times, min_time=1.0)
    assert fit["gamma"] == pytest.approx(1.7, rel=1e-3)
    assert fit["j_c"] == pytest.approx(0.5, abs=1e-3)
    with pytest.raises(ValueError, match="at least 4 points"):
        fit_power_law([1.0, 2.0], [5.0, 4.0])


def test_lowest_all_converged_and_crossing():
    assert lowest_all_converged([0.1, 0.2, 0.3, 0.4], [True, False, True, True]) == 0.3
    assert lowest_all_converged([0.1, 0.2], [True, False]) is None
    assert crossing([0.0, 1.0, 2.0], [0.0, 0.25, 0.75]) == pytest.approx(1.5)
    assert crossing([0.0, 1.0], [0.0, 0.1]) is None
    with pytest.raises(ValueError, match="1-D"):
        crossing([0.0], [0.0])


def test_convergence_and_accessibility_small_runs():
    grid = [0.2, 0.6, 1.0, 1.4, 1.8, 2.2]
    r = convergence_times([30], grid, n_networks=2, n_states=4, max_steps=60, seed=1)
    for dyn in ("sync", "async"):
        curve = r["sizes"][0][dyn]
        assert curve["fraction"][-1] == 1.0
        assert len(curve["mean_time"]) == len(grid)
    a = accessibility(30, grid, n_networks=2, n_states=4, max_steps=60, seed=1)
    for dyn in ("sync", "async"):
        assert a[dyn]["fraction"][-1] == 1.0
        assert a[dyn]["threshold"] is None or grid[0] <= a[dyn]["threshold"] <= grid[-1]


def test_bad_tolerance():
    net = network_from_couplings(torch.zeros(2, 2), 0.0)
    with pytest.raises(ValueError, match="tol must be a positive number"):
        critical_self_coupling(net, all_states(2), tol=0.0)


def test_row_bound_sums_in_row_chunks(monkeypatch):
    """The chunked row sums equal the whole-matrix ones (chunks of 3 rows forced here)."""
    import mlcm_torch.physics.critical as critical
    from mlcm_torch.physics import random_network

    for storage in ("int8", "float64"):
        net = random_network(10, 0.5, n_networks=3, storage=storage, generator=torch.Generator().manual_seed(4))
        whole = torch.stack([net.couplings[m].abs().sum(-1, dtype=torch.float64).max() for m in range(3)]) / net.unit
        monkeypatch.setattr(critical, "_CHUNK_BYTES", 8 * 10 * 3)
        assert torch.equal(critical.row_bound(net), whole)
        monkeypatch.undo()
