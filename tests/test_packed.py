"""The physics' compiled loops against the tensor loops they replace: bit-packed fields and
asynchronous sweeps of binary networks, and the per-neuron loop of float asynchronous blocks."""

import pytest
import torch

from mlcm_torch.functional import kernel, packed
from mlcm_torch.functional.dynamics import relax
from mlcm_torch.functional.fields import coupling_sum
from mlcm_torch.physics import (
    asynchronous_sweep,
    hopfield_network,
    network_from_couplings,
    random_network,
    random_states,
    run_dynamics,
    update_neuron,
)

needs_kernel = pytest.mark.skipif(kernel.library() is None,
                                  reason="no C compiler: binary fields run unpacked only")


def _unpacked(monkeypatch):
    monkeypatch.setattr(packed.kernel, "library", lambda: None)


def _signs(n, networks, seed):
    net = random_network(n, 0.0, n_networks=networks, kind="binary", storage="int8",
                         generator=torch.Generator().manual_seed(seed))
    return net.couplings


def _reference_sum(J, s, i):
    """Σ_(j≠i) B_ij s_j, one neuron of one 2-D network, in Python integers."""
    return sum(int(J[i, j]) * int(s[j]) for j in range(J.shape[-1]) if j != i)


@needs_kernel
@pytest.mark.parametrize("n", [1, 2, 63, 64, 65, 130])
def test_sign_sum_is_the_exact_integer_sum(n):
    J = _signs(n, 1, n)[0]
    s = random_states(1, 5, n, generator=torch.Generator().manual_seed(1))[0]
    h = packed.sign_sum(J, s)
    assert h is not None and h.dtype == torch.float32 and h.shape == (5, n)
    for b in range(5):
        assert h[b].tolist() == [float(_reference_sum(J, s[b], i)) for i in range(n)]


@needs_kernel
@pytest.mark.parametrize("neurons", [slice(None), slice(3, 40), slice(5, None, 7), torch.tensor([70, 0, 69, 3, 3])])
def test_packed_and_unpacked_coupling_sums_agree(neurons, monkeypatch):
    J = _signs(71, 3, 0)
    s = random_states(3, 6, 71, generator=torch.Generator().manual_seed(2))
    spec = network_from_couplings(J, 0.4, unit=71 ** 0.5).graph.layers[0]
    fast = coupling_sum(spec, s, neurons)
    assert packed.sign_sum(J, s, neurons) is not None
    with monkeypatch.context() as m:
        _unpacked(m)
        assert packed.sign_sum(J, s, neurons) is None
        slow = coupling_sum(spec, s, neurons)
    assert torch.equal(fast, slow)
    shared = coupling_sum(spec._replace(J=J[1]), s.reshape(18, 71), neurons)
    assert torch.equal(shared[6:12], slow[1])


@needs_kernel
def test_packed_path_declines_what_it_cannot_sum_exactly():
    J = _signs(20, 2, 3)
    s = random_states(2, 4, 20, generator=torch.Generator().manual_seed(4))
    zero = s.clone()
    zero[1, 2, 5] = 0.0
    assert packed.sign_sum(J, zero) is None  # a state that is not ±1
    assert packed.sign_sum(J, s.double()) is None  # not float32
    assert packed.sign_sum(J, s[:1]) is None  # networks and states do not match
    assert packed.sign_sum(J, s, torch.tensor([20])) is None  # index out of range
    two = J.clone()
    two[0, 1, 2] = 2
    assert packed.sign_sum(two, s) is None  # an entry other than ±1
    diagonal = J.clone()
    diagonal[1, 7, 7] = 1
    assert packed.sign_sum(diagonal, s) is None  # a non-zero diagonal
    before = s.clone()
    assert not packed.sign_async(two, s, torch.arange(20), torch.zeros(()), False)
    assert torch.equal(s, before)


@needs_kernel
def test_in_place_changes_of_the_couplings_are_seen():
    J = _signs(30, 1, 5)[0]
    s = random_states(1, 3, 30, generator=torch.Generator().manual_seed(6))[0]
    first = packed.sign_sum(J, s)
    J[4, 9] = -J[4, 9]
    second = packed.sign_sum(J, s)
    assert torch.equal(second[:, 4] - first[:, 4], 2 * J[4, 9].float() * s[:, 9])
    assert torch.equal(second[:, :4], first[:, :4]) and torch.equal(second[:, 5:], first[:, 5:])
    with torch.inference_mode():
        frozen = J.clone()
        assert torch.equal(packed.sign_sum(frozen, s), second)


def _both(monkeypatch, run):
    fast = run()
    with monkeypatch.context() as m:
        _unpacked(m)
        slow = run()
    return fast, slow


@needs_kernel
@pytest.mark.parametrize("dynamics", ["sync", "async"])
@pytest.mark.parametrize("j_d", [0.0, 0.3, 0.7, "per-network"])
def test_run_dynamics_packed_equals_unpacked(dynamics, j_d, monkeypatch):
    """N = 100 (unit 10): J_D = 0.3 and 0.7 put the thresholds on integers, so exact ties occur."""
    j_d = torch.tensor([0.0, 0.3, 0.45]) if j_d == "per-network" else j_d
    net = random_network(100, j_d, n_networks=3, kind="binary", storage="int8",
                         generator=torch.Generator().manual_seed(7))
    s0 = random_states(3, 4, 100, generator=torch.Generator().manual_seed(8))
    fast, slow = _both(monkeypatch, lambda: run_dynamics(net, s0, dynamics=dynamics, max_steps=15,
                                                         generator=torch.Generator().manual_seed(9)))
    for a, b in zip(fast, slow):
        assert torch.equal(a, b)
    assert not torch.equal(fast.states, s0)


@needs_kernel
@pytest.mark.parametrize("schedule", ["layer_sequential_sync", "layer_sequential_async"])
def test_engine_keep_ties_on_binary_couplings_packed_equals_unpacked(schedule, monkeypatch):
    """The engine's ``keep`` rule (sign(0) keeps s_i) on int8 signs, at an integer threshold."""
    net = random_network(100, 0.3, n_networks=2, kind="binary", storage="int8",
                         generator=torch.Generator().manual_seed(16))
    graph = net.graph
    graph = graph._replace(layers=(graph.layers[0]._replace(tie="keep"),))
    s0 = random_states(2, 4, 100, generator=torch.Generator().manual_seed(17))
    fast, slow = _both(monkeypatch, lambda: relax(graph, s0.clone(), net.phase, 15, schedule,
                                                  torch.Generator().manual_seed(18), block=32))
    for a, b in zip(fast, slow):
        assert torch.equal(a, b)


@needs_kernel
def test_async_sweep_and_single_updates_packed_equal_unpacked(monkeypatch):
    net = random_network(90, 0.3, n_networks=2, kind="binary", storage="int8",
                         generator=torch.Generator().manual_seed(10))
    s0 = random_states(2, 5, 90, generator=torch.Generator().manual_seed(11))
    active = torch.rand(2, 5, generator=torch.Generator().manual_seed(12)) < 0.6
    order = torch.randperm(90, generator=torch.Generator().manual_seed(13))

    def sweeps():
        s = s0.clone()
        flips = asynchronous_sweep(net, s, order, active)
        singles = [update_neuron(net, s, i, active if i % 2 else None) for i in range(0, 90, 4)]
        return s, flips, torch.stack(singles)

    for a, b in zip(*_both(monkeypatch, sweeps)):
        assert torch.equal(a, b)


def test_float_and_hopfield_networks_do_not_take_the_packed_path():
    patterns = random_states(1, 3, 40, generator=torch.Generator().manual_seed(14))
    hopfield = hopfield_network(patterns)
    s = random_states(1, 2, 40, generator=torch.Generator().manual_seed(15))
    assert packed.sign_sum(hopfield.couplings, s) is None
    assert packed.packed_couplings(hopfield.couplings) is None


@needs_kernel
@pytest.mark.parametrize("kind,storage", [("gaussian", "float32"), ("gaussian", "float64"), ("binary", "float32")])
@pytest.mark.parametrize("j_d", [0.3, "per-network"])
def test_float_async_blocks_in_the_kernel_equal_the_tensor_loop(kind, storage, j_d, monkeypatch):
    """The dense backend's block loop (the event backend has its own test). Binary float32 couplings
    ±1/√N with N = 100 and J_D = 0.3 give exact ties too."""
    j_d = torch.tensor([0.1, 0.3, 0.6]) if j_d == "per-network" else j_d
    net = random_network(100, j_d, n_networks=3, kind=kind, storage=storage,
                         generator=torch.Generator().manual_seed(19))
    s0 = random_states(3, 4, 100, generator=torch.Generator().manual_seed(20), dtype=net.state_dtype)
    calls = []
    real = kernel.library()
    monkeypatch.setattr(kernel, "library", lambda: calls.append(1) or real)
    fast, slow = _both(monkeypatch, lambda: run_dynamics(net, s0, dynamics="async", max_steps=12, backend="dense",
                                                         generator=torch.Generator().manual_seed(21)))
    assert calls
    for a, b in zip(fast, slow):
        assert torch.equal(a, b)
    assert not torch.equal(fast.states, s0)


@needs_kernel
def test_hopfield_keep_ties_async_in_the_kernel_equals_the_tensor_loop(monkeypatch):
    patterns = random_states(2, 5, 60, generator=torch.Generator().manual_seed(22))
    net = hopfield_network(patterns)
    cues = patterns.clone()
    cues[..., :15] = -cues[..., :15]
    fast, slow = _both(monkeypatch, lambda: run_dynamics(net, cues, dynamics="async", max_steps=20,
                                                         generator=torch.Generator().manual_seed(23)))
    for a, b in zip(fast, slow):
        assert torch.equal(a, b)
