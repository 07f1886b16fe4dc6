"""Networks and zero-temperature dynamics against slow reference loops; memory refusal; bad input."""

import math

import pytest
import torch

from mlcm_torch.physics import (
    asynchronous_sweep,
    check_memory,
    is_fixed_point,
    local_fields,
    network_from_couplings,
    network_memory_bytes,
    random_couplings,
    random_network,
    random_states,
    run_dynamics,
    sparse_reinforcement,
    synchronous_step,
    update_neuron,
)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def field(j, j_d, s, i):
    return sum(j[i][k] * s[k] for k in range(len(s)) if k != i) + j_d * s[i]


def reference_sync_step(j, j_d, s):
    return [s[i] if s[i] * field(j, j_d, s, i) > 0 else -s[i] for i in range(len(s))]


def reference_async_sweep(j, j_d, s, order):
    s = list(s)
    for i in order:
        if s[i] * field(j, j_d, s, i) <= 0:
            s[i] = -s[i]
    return s


def reference_is_fixed(j, j_d, s):
    return all(s[i] * field(j, j_d, s, i) > 0 for i in range(len(s)))


def reference_run(j, j_d, s, max_steps, orders=None):
    """Steps to a fixed point (or -1) with the same conventions as run_dynamics."""
    if reference_is_fixed(j, j_d, s):
        return 0, s
    for t in range(1, max_steps + 1):
        s = reference_sync_step(j, j_d, s) if orders is None else reference_async_sweep(j, j_d, s, orders[t - 1])
        if reference_is_fixed(j, j_d, s):
            return t, s
    return -1, s


def small_gaussian(n, seed, networks=1):
    j, _ = random_couplings(n, n_networks=networks, kind="gaussian", storage="float64",
                            generator=torch.Generator().manual_seed(seed))
    return j


def test_int8_fields_are_exact_integers():
    g = torch.Generator().manual_seed(0)
    net = random_network(301, 0.4, n_networks=2, kind="binary", storage="int8", generator=g)
    assert net.couplings.dtype == torch.int8 and net.unit == pytest.approx(math.sqrt(301))
    s = random_states(2, 5, 301, generator=g)
    exact = torch.matmul(s.to(torch.float64), net.couplings.to(torch.float64).transpose(1, 2))
    h = local_fields(net, s)
    assert torch.allclose(h, exact / math.sqrt(301) + 0.4 * s.to(torch.float64), atol=1e-12)


def test_int8_tie_is_unstable_exactly():
    # N = 4, J = B/2: in the all +1 state neuron 0 has off-diagonal field (-1 - 1 + 1)/2 = -1/2, so
    # J_D = 1/2 gives s_0 h_0 = 0 exactly: not a fixed point; any larger J_D makes it one.
    b = torch.tensor([[0, -1, -1, 1], [1, 0, 1, 1], [1, 1, 0, 1], [1, 1, 1, 0]], dtype=torch.int8)
    net = network_from_couplings(b, 0.5, unit=2.0)
    s = torch.ones(1, 1, 4)
    assert not bool(is_fixed_point(net, s))
    assert bool(is_fixed_point(net.with_self_coupling(0.5001), s))


@pytest.mark.parametrize("j_d", [0.0, 0.3, 0.8])
def test_synchronous_step_matches_reference(j_d):
    j = small_gaussian(9, 1, networks=2)
    net = network_from_couplings(j, j_d)
    s = random_states(2, 6, 9, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    new = synchronous_step(net, s)
    for m in range(2):
        for b in range(6):
            assert new[m, b].tolist() == reference_sync_step(j[m].tolist(), j_d, s[m, b].tolist())


@pytest.mark.parametrize("block", [1, 3, 32])
def test_asynchronous_sweep_matches_reference(block):
    j = small_gaussian(11, 4, networks=2)
    net = network_from_couplings(j, 0.2)
    s = random_states(2, 5, 11, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    order = torch.randperm(11, generator=torch.Generator().manual_seed(6))
    out = s.clone()
    asynchronous_sweep(net, out, order, block=block)
    for m in range(2):
        for b in range(5):
            assert out[m, b].tolist() == reference_async_sweep(j[m].tolist(), 0.2, s[m, b].tolist(), order.tolist())


def test_update_neuron_flips_only_unstable_neuron():
    j = small_gaussian(7, 8)
    net = network_from_couplings(j, 0.1)
    s = random_states(1, 4, 7, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    for i in range(7):
        before = s.clone()
        flipped = update_neuron(net, s, i)
        for b in range(4):
            expected = reference_async_sweep(j[0].tolist(), 0.1, before[0, b].tolist(), [i])
            assert s[0, b].tolist() == expected
            assert bool(flipped[0, b]) == (expected != before[0, b].tolist())


@pytest.mark.parametrize("dynamics", ["sync", "async"])
@pytest.mark.parametrize("storage", ["float64", "int8"])
def test_run_dynamics_matches_reference_loop(dynamics, storage):
    n, j_d, max_steps = 10, 0.35, 40
    net = random_network(n, j_d, n_networks=2, kind="binary", storage=storage,
                         generator=torch.Generator().manual_seed(11))
    phys = (net.couplings.to(torch.float64) / net.unit).tolist()
    s0 = random_states(2, 8, n, generator=torch.Generator().manual_seed(12), dtype=net.state_dtype)
    result = run_dynamics(net, s0, dynamics=dynamics, max_steps=max_steps, generator=torch.Generator().manual_seed(13))
    orders = None
    if dynamics == "async":
        g = torch.Generator().manual_seed(13)
        orders = [torch.randperm(n, generator=g).tolist() for _ in range(max_steps)]
    for m in range(2):
        for b in range(8):
            steps, final = reference_run(phys[m], j_d, s0[m, b].tolist(), max_steps, orders)
            assert int(result.steps[m, b]) == steps
            if steps >= 0:
                assert result.states[m, b].tolist() == final
    assert bool(is_fixed_point(net, result.states)[result.converged].all())


def test_run_dynamics_freezes_converged_and_keeps_order_across_batch():
    net = random_network(40, 2.0, n_networks=1, kind="gaussian", generator=torch.Generator().manual_seed(0))
    s0 = random_states(1, 16, 40, generator=torch.Generator().manual_seed(1))
    result = run_dynamics(net, s0, dynamics="sync", max_steps=50)
    assert bool(result.converged.all())
    assert torch.equal(result.converged, result.steps >= 0)


def test_per_network_self_coupling():
    j = small_gaussian(8, 21, networks=3)
    j_d = torch.tensor([0.0, 0.5, 10.0])
    net = network_from_couplings(j, j_d)
    s = random_states(3, 4, 8, generator=torch.Generator().manual_seed(22), dtype=torch.float64)
    fixed = is_fixed_point(net, s)
    for m in range(3):
        for b in range(4):
            assert bool(fixed[m, b]) == reference_is_fixed(j[m].tolist(), float(j_d[m]), s[m, b].tolist())
    assert bool(fixed[2].all())


def test_sparse_reinforcement_density_and_value():
    a = sparse_reinforcement(200, 1.5, 2.0, n_networks=2, generator=torch.Generator().manual_seed(0))
    assert torch.all(torch.diagonal(a, dim1=-2, dim2=-1) == 0)
    values = a[a != 0]
    assert torch.allclose(values, torch.full_like(values, 2.0 / math.sqrt(200)))
    expected = 200 ** 1.5
    count = float((a != 0).sum()) / 2
    assert abs(count - expected) < 5 * math.sqrt(expected)


def test_memory_estimate_and_refusal():
    big = network_memory_bytes(200_000, 1, "int8", batch=16)
    assert 40e9 <= big < 41e9
    with pytest.raises(MemoryError, match=r"refusing to allocate .* needs about 37\.\d\d GiB but only 1\.00 GiB"):
        random_couplings(200_000, storage="int8", available_memory=1 << 30)
    with pytest.raises(MemoryError, match="GiB"):
        check_memory(10, "cpu", "a test buffer", available=5)
    check_memory(5, "cpu", "a test buffer", available=10)


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="int8 storage holds"):
        random_couplings(10, kind="gaussian", storage="int8")
    with pytest.raises(ValueError, match="kind must be one of"):
        random_couplings(10, kind="uniform")
    with pytest.raises(ValueError, match="n must be a positive integer"):
        random_couplings(0)
    with pytest.raises(ValueError, match="zero diagonal"):
        network_from_couplings(torch.eye(3), 0.5)
    with pytest.raises(ValueError, match="finite"):
        network_from_couplings(torch.zeros(3, 3), float("nan"))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        network_from_couplings(torch.zeros(2, 3, 3), torch.zeros(3))
    net = network_from_couplings(torch.zeros(3, 3), 0.5)
    with pytest.raises(ValueError, match="only -1 and \\+1"):
        is_fixed_point(net, torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match=r"shape \(1, B, 3\)"):
        is_fixed_point(net, torch.ones(1, 2, 4))
    with pytest.raises(ValueError, match="dynamics must be one of"):
        run_dynamics(net, torch.ones(1, 2, 3), dynamics="parallel")
    with pytest.raises(ValueError, match="max_steps"):
        run_dynamics(net, torch.ones(1, 2, 3), max_steps=-1)
    with pytest.raises(ValueError, match=r"backend must be one of \('auto', 'dense', 'event'\), got 'fast'"):
        run_dynamics(net, torch.ones(1, 2, 3), backend="fast")
    with pytest.raises(ValueError, match="neuron index"):
        update_neuron(net, torch.ones(1, 2, 3), 3)
    with pytest.raises(ValueError, match="exponent d"):
        sparse_reinforcement(10, 2.5, 1.0)
    with pytest.raises(ValueError, match="int8"):
        random_network(10, 0.5, storage="int8", reinforcement=(1.5, 1.0))


@pytest.mark.parametrize("storage", ["float32", "int8"])
def test_network_is_an_engine_graph_and_max_steps_zero_is_a_fixed_point_test(storage):
    from mlcm_torch.functional import is_fixed_point as engine_is_fixed_point

    j_d = torch.tensor([0.0, 0.6, 5.0])
    net = random_network(30, j_d, n_networks=3, kind="binary", storage=storage,
                         generator=torch.Generator().manual_seed(0))
    (layer,) = net.graph.layers
    assert layer.J is net.couplings and layer.unit == net.unit and layer.tie == "flip"
    assert torch.equal(layer.j_d.cpu(), net.j_d.to(layer.j_d.dtype))
    assert network_from_couplings(torch.zeros(3, 3), 0.5, keep_ties=True).graph.layers[0].tie == "keep"
    s0 = random_states(3, 8, 30, generator=torch.Generator().manual_seed(1), dtype=net.state_dtype)
    fixed = is_fixed_point(net, s0)
    assert torch.equal(fixed, engine_is_fixed_point(net.graph, s0, net.phase))
    result = run_dynamics(net, s0, max_steps=0)
    assert torch.equal(result.states, s0)
    assert torch.equal(result.converged, fixed)
    assert torch.equal(result.steps, torch.where(fixed, 0, -1))
    assert bool(fixed[2].all())


def _both_backends(net, s0, dynamics, max_steps, seed):
    return [run_dynamics(net, s0, dynamics=dynamics, max_steps=max_steps, backend=backend,
                         generator=torch.Generator().manual_seed(seed)) for backend in ("dense", "event")]


@pytest.mark.parametrize("storage", ["float32", "float64"])
@pytest.mark.parametrize("dynamics", ["sync", "async"])
@pytest.mark.parametrize("keep_ties", [False, True])
def test_event_backend_equals_dense_on_gaussian_networks(storage, dynamics, keep_ties):
    """Same states, steps and convergence from both backends, for scalar and per-network J_D,
    budgets 0, 1, 2 and a full one (Gaussian couplings: no field within rounding of zero)."""
    compared = 0
    for seed, n in ((0, 23), (1, 64), (2, 150)):
        for j_d in (0.0, 0.4, torch.tensor([0.05, 0.6, 1.5])):
            net = random_network(n, j_d, n_networks=3, kind="gaussian", storage=storage,
                                 generator=torch.Generator().manual_seed(seed))
            if keep_ties:
                net = network_from_couplings(net.couplings, net.j_d, keep_ties=True)
            s0 = random_states(3, 8, n, generator=torch.Generator().manual_seed(seed + 1), dtype=net.state_dtype)
            initial = s0.clone()
            for max_steps in (0, 1, 2, 60 if dynamics == "sync" else 20):
                dense, event = _both_backends(net, s0, dynamics, max_steps, seed)
                assert torch.equal(s0, initial)  # the initial states are not written to
                for a, b in zip(dense, event):
                    assert torch.equal(a, b)
                compared += int(event.converged.sum())
    assert compared > 50  # the comparison covers converged samples, not only budgets hit


def _exact_binary_run(signs, j_d, s, max_steps, orders):
    """The reference loop in integer units: h_i = Σ_(j≠i) sign_ij s_j, stable iff s_i h_i + J_D √N > 0."""
    n = len(s)
    threshold = j_d * math.sqrt(n)

    def stable(state, i):
        return state[i] * sum(signs[i][k] * state[k] for k in range(n) if k != i) + threshold > 0

    if all(stable(s, i) for i in range(n)):
        return 0, s
    for t in range(1, max_steps + 1):
        if orders is None:
            s = [s[i] if stable(s, i) else -s[i] for i in range(n)]
        else:
            s = list(s)
            for i in orders[t - 1]:
                if not stable(s, i):
                    s[i] = -s[i]
        if all(stable(s, i) for i in range(n)):
            return t, s
    return -1, s


@pytest.mark.parametrize("dynamics", ["sync", "async"])
def test_event_backend_decides_exact_ties_of_float_binary_couplings(dynamics):
    """Binary ±1/√N couplings in float32 with J_D = 0 and N − 1 even: fields that are exactly
    zero occur (and flip the neuron). The event backend decides them exactly, like int8 storage
    and an integer reference loop; float32 sums may round them to ±1e-8 (the dense path)."""
    n, max_steps = 11, 30
    net = random_network(n, 0.0, n_networks=2, kind="binary", storage="float32",
                         generator=torch.Generator().manual_seed(5))
    signs = torch.sign(net.couplings).to(torch.int8)
    s0 = random_states(2, 16, n, generator=torch.Generator().manual_seed(6))
    event = run_dynamics(net, s0, dynamics=dynamics, max_steps=max_steps, backend="event",
                         generator=torch.Generator().manual_seed(7))
    exact = run_dynamics(network_from_couplings(signs, 0.0), s0, dynamics=dynamics, max_steps=max_steps,
                         generator=torch.Generator().manual_seed(7))
    assert torch.equal(event.states, exact.states) and torch.equal(event.steps, exact.steps)
    orders = None
    if dynamics == "async":
        g = torch.Generator().manual_seed(7)
        orders = [torch.randperm(n, generator=g).tolist() for _ in range(max_steps)]
    ties = 0
    for m in range(2):
        rows = signs[m].tolist()
        for b in range(16):
            steps, final = _exact_binary_run(rows, 0.0, [int(v) for v in s0[m, b].tolist()], max_steps, orders)
            assert int(event.steps[m, b]) == steps
            if steps >= 0:
                assert event.states[m, b].tolist() == final
        ties += int((s0[m] @ signs[m].float().T == 0).sum())
    assert ties > 0  # the initial states hold exact zero fields


@pytest.mark.parametrize("storage", ["float32", "float64"])
@pytest.mark.parametrize("keep_ties", [False, True])
@pytest.mark.parametrize("j_d", ["per-network", 0.7])
def test_async_event_kernel_equals_its_pytorch_operations(storage, keep_ties, j_d, monkeypatch):
    """The compiled asynchronous event sweep against the same sweep in PyTorch operations: equal
    states, steps, and carried float64 fields after every sweep; J_D one number (used in double,
    not rounded to float32) or one per network; two samples start from zero states (no change)."""
    from mlcm_torch.functional import events, kernel

    if kernel.library() is None:
        pytest.skip("no C compiler: the event backend runs in PyTorch operations only")
    j_d = torch.tensor([0.1, 0.5]) if j_d == "per-network" else j_d
    net = random_network(90, 0.0, n_networks=2, kind="gaussian", storage=storage,
                         generator=torch.Generator().manual_seed(3))
    net = network_from_couplings(net.couplings, j_d, keep_ties=keep_ties)
    s0 = random_states(2, 8, 90, generator=torch.Generator().manual_seed(4), dtype=net.state_dtype)
    s0[:, 0] = 0.0
    calls, real = [], events._async_kernel
    monkeypatch.setattr(events, "_async_kernel", lambda *a: real(*a) and (calls.append(1) or True))
    runs = []
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(events.kernel, "library", lambda: None)
        graph, phase = net.graph, net.phase
        carried = events.start_exact(graph, s0.to(torch.float64).clone(), phase)
        prepared, fixed = events.event_couplings(graph), events.exact_constants(graph, phase)
        g, trace = torch.Generator().manual_seed(9), []
        for _ in range(6):
            order = [(0, torch.randperm(90, generator=g))]
            changed = events.async_event_sweep(graph, carried, fixed, phase, prepared, order)
            trace.append((changed.clone(), carried.states.clone(), carried.fields[0].clone()))
        runs.append(trace)
    assert calls, "the kernel was not used"
    assert any(bool(changed.any()) for changed, _, _ in runs[0][1:])
    for (c1, s1, f1), (c2, s2, f2) in zip(*runs):
        assert torch.equal(c1, c2) and torch.equal(s1, s2) and torch.equal(f1, f2)
        assert not bool(c1[:, 0].any()) and bool((s1[:, 0] == 0).all())


def test_kernel_j_d_is_used_in_double():
    """A J_D of one number enters the decision in double, as the tensor loop adds it: with
    J_01 = J_10 = 0.7 (float32) and J_D = 0.7, s = (+1, −1), neuron 0's field is exactly
    float32(0.7) − 0.7 > 0 in double (stays), but 0 if J_D were rounded to float32 (flips)."""
    from mlcm_torch.functional import events

    J = torch.tensor([[0.0, 0.7], [0.7, 0.0]])
    net = network_from_couplings(J, 0.7)
    graph, phase = net.graph, net.phase
    carried = events.start_exact(graph, torch.tensor([[[1.0, -1.0]]], dtype=torch.float64), phase)
    changed = events.async_event_sweep(graph, carried, events.exact_constants(graph, phase), phase,
                                       events.event_couplings(graph), [(0, torch.tensor([0]))])
    assert not bool(changed.any()) and carried.states[0, 0].tolist() == [1.0, -1.0]


@pytest.mark.parametrize("storage", ["float32", "float64"])
def test_event_backend_draws_the_orders_the_dense_path_draws(storage):
    """Asynchronous runs on both backends leave a shared generator in the same state: no order
    is drawn for a sweep that a fixed-point test makes unnecessary."""
    net = random_network(60, 1.5, n_networks=2, kind="gaussian", storage=storage,
                         generator=torch.Generator().manual_seed(0))
    s0 = random_states(2, 8, 60, generator=torch.Generator().manual_seed(1), dtype=net.state_dtype)
    after = []
    for backend in ("dense", "event"):
        g = torch.Generator().manual_seed(2)
        result = run_dynamics(net, s0, dynamics="async", max_steps=30, backend=backend, generator=g)
        assert bool(result.converged.all())
        after.append(torch.randperm(60, generator=g))
    assert torch.equal(*after)


def test_auto_backend_choice():
    """auto: event for float32 couplings on the CPU (with the kernel), dense for int8 (exact
    packed sums), float64 and Hopfield (keep_ties) networks."""
    from mlcm_torch.functional import kernel
    from mlcm_torch.physics.dynamics import _event_pays

    g = torch.Generator().manual_seed(0)
    gaussian = random_network(20, 0.5, kind="gaussian", generator=g)
    assert _event_pays(gaussian) == (kernel.library() is not None)
    assert not _event_pays(random_network(20, 0.5, kind="binary", storage="int8", generator=g))
    assert not _event_pays(random_network(20, 0.5, kind="gaussian", storage="float64", generator=g))
    assert not _event_pays(network_from_couplings(gaussian.couplings, 0.5, keep_ties=True))
