"""The fast paths against the plain ones: event-driven relaxation against the dense sweep, the
one-GEMM update against the formed delta, micro-batches against small loader batches.

"Same" for the event backend means: the decisions of the dense path evaluated in float64.
So both backends are compared on float64 networks (where the dense path is that float64
path), and a float32 event network is compared with the same couplings in float64.
"""

from __future__ import annotations

import copy
import itertools

import lightning as L
import pytest
import torch

from mlcm_torch import MLCM, Dense, Dynamics, InputCoupling, LabelCoupling, Network, OneToOne, RecurrentLayer
from mlcm_torch.data import SyntheticDataModule
from mlcm_torch.functional import prepare_phase, relax
from mlcm_torch.training import MLCMClassifier

D, N, C = 24, 40, 4
SYNC = ["layer_sequential_sync", "layer_independent_sync"]
ASYNC = ["layer_sequential_async", "layer_independent_async"]


def chain(encoding="pm1", schedule="layer_sequential_sync", backend="dense", layers=3, **kw):
    kw.setdefault("j_d", 0.4)
    net = MLCM(D, N, layers, C, seed=5, state_encoding=encoding, schedule=schedule, lambda_in=1.5,
               lambda_left=0.8, lambda_right=0.5, lambda_out=1.0, max_sweeps=40, input_coupling="dense",
               lr=0.1, lr_in=0.05, robustness=0.5, weight_decay=0.1, **kw)
    return _with_backend(net, backend)


def _with_backend(net: Network, backend: str) -> Network:
    net.dynamics = Dynamics(**{**net.dynamics.__dict__, "backend": backend})
    return net


def mixed(backend="dense", tie="plus", n=N):
    """Two layers, a learnable dense forward coupling, a clamped one-to-one
    backward coupling, and the input into both."""
    layers = [RecurrentLayer(n, j_d=0.3, lr=0.1, robustness=0.3, tie=tie),
              RecurrentLayer(n, j_d=0.3, lr=0.1, robustness=0.3, tie=tie)]
    couplings = [InputCoupling(0, 1.5, lr=0.05), InputCoupling(1, 1.0), Dense(1, 0, 1.2, lr=0.05),
                 OneToOne(0, 1, 0.7, phases="clamped"), LabelCoupling(-1, 1.0)]
    init = "input" if tie != "plus" else "zeros"
    return Network(D, C, layers, couplings, seed=2, dynamics=Dynamics(max_sweeps=40, init_state=init,
                                                                      backend=backend))


def batch(encoding="pm1", b=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 2, (b, D), generator=g).float()
    return (2 * x - 1 if encoding == "pm1" else x), torch.randint(0, C, (b,), generator=g)


def assert_same_state(a: Network, b: Network) -> None:
    """Every tensor of the two networks' state dicts is identical."""
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        if torch.is_tensor(x):
            assert torch.equal(x, y), name


def both_relaxations(net: Network, x, y, feedback):
    """(dense float64, event float32) relaxations of the same couplings from the same start
    (asynchronous orders from equally seeded generators)."""
    net64 = copy.deepcopy(net).double()
    graph, graph64 = net.graph(), net64.graph()
    start = net.initial_states(x)
    schedule = net.dynamics.schedule
    dense = relax(graph64, start.double(), prepare_phase(graph64, x.double(), y, feedback), 40, schedule,
                  torch.Generator().manual_seed(7))
    event = relax(graph, start, prepare_phase(graph, x, y, feedback), 40, schedule,
                  torch.Generator().manual_seed(7), backend="event")
    return dense, event


@pytest.mark.parametrize("encoding,schedule", list(itertools.product(["pm1", "01"], SYNC + ASYNC)))
@pytest.mark.parametrize("labelled", [False, True])
def test_event_decisions_equal_dense_float64(encoding, schedule, labelled):
    net = chain(encoding, schedule, sparsity_threshold=0.1 if encoding == "01" else 0.0)
    x, y = batch(encoding, b=32 if schedule in SYNC else 8)
    dense, event = both_relaxations(net, x, y if labelled else None, labelled)
    assert dense.converged.any()
    assert torch.equal(dense.states.float(), event.states)
    assert torch.equal(dense.sweeps, event.sweeps) and torch.equal(dense.converged, event.converged)


@pytest.mark.parametrize("tie", ["plus", "flip", "keep"])
def test_event_on_a_composed_network_and_every_tie_rule(tie):
    net = mixed(tie=tie)
    x, y = batch()
    for labelled in (False, True):
        dense, event = both_relaxations(net, x, y if labelled else None, labelled)
        assert torch.equal(dense.states.float(), event.states), (tie, labelled)
        assert torch.equal(dense.sweeps, event.sweeps)


def test_event_rechecks_fields_near_zero():
    """h_0 = J_01 + J_02 − 1 = 1 − 1e-8 − 1 < 0 exactly, but float32 rounds 1 − 1e-8 to 1 and
    the dense sweep sees h_0 = 0, so sign(0) = +1. The event backend re-checks it: −1."""
    layer = RecurrentLayer(3)
    net = Network(3, 2, [layer], [InputCoupling(0, 1.0, kind="identity")], seed=0)
    layer.J.copy_(torch.tensor([[0.0, 1.0, -1e-8], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    x = torch.tensor([[-1.0, 1.0, 1.0]])
    states = torch.ones(1, 3)
    graph = net.graph()
    phase = prepare_phase(graph, x, None, False)
    dense32 = relax(graph, states, phase, 1)
    event = relax(graph, states, phase, 1, backend="event")
    net64 = copy.deepcopy(net).double()
    dense64 = relax(net64.graph(), states.double(), prepare_phase(net64.graph(), x.double(), None, False), 1)
    assert dense32.states[0, 0] == 1.0  # the float32 rounding the re-check exists for
    assert event.states[0, 0] == -1.0 and torch.equal(event.states, dense64.states.float())


@pytest.mark.parametrize("make", [lambda b: chain(backend=b), lambda b: mixed(backend=b, n=16),
                                  lambda b: chain(backend=b, protocol="steering")],
                         ids=["chain", "mixed", "steering"])
def test_fifty_training_steps_give_identical_couplings(make):
    """Float64 networks trained 50 steps end with identical couplings on the dense and the event
    backend (steering: three phases, fields carried from phase to phase)."""
    dense, event = make("dense").double(), make("event").double()
    for step in range(50):
        x, y = batch(seed=step, b=8)
        x = x.double()
        for net in (dense, event):
            net.local_update(net.relax(x, y), x, y)
    assert_same_state(dense, event)


def test_auto_backend_picks_event_for_cpu_inference():
    net = chain(backend="auto")
    assert net.sweep_backend(torch.device("cpu")) == "event"
    from mlcm_torch.functional import kernel

    compiled = kernel.library() is not None
    assert net.sweep_backend(torch.device("cpu"), training=True) == ("event" if compiled else "dense")
    assert copy.deepcopy(net).double().sweep_backend(torch.device("cpu"), training=True) == "dense"
    assert chain(backend="auto", schedule="layer_sequential_async").sweep_backend(
        torch.device("cpu"), training=True) == "dense"
    assert net.sweep_backend(torch.device("cuda")) == "dense"
    assert chain(backend="auto", schedule="layer_sequential_async").sweep_backend(torch.device("cpu")) == "event"
    assert chain(backend="auto", k_winners=5).sweep_backend(torch.device("cpu")) == "dense"
    with pytest.raises(ValueError, match="backend='fast' is not supported"):
        Dynamics(backend="fast")
    with pytest.raises(ValueError, match="k-winners-take-all"):
        chain(backend="event", k_winners=5).relax(*batch())


def test_one_gemm_update_equals_the_formed_delta():
    a, b = chain(), chain()
    x, y = batch()
    r = a.relax(x, y)
    a.local_update(r, x, y)
    b.local_update(r, x, y, reduce=lambda t: t)  # forms every delta, then adds it
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        if torch.is_tensor(p):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)


def test_micro_batches_give_the_couplings_of_small_loader_batches():
    def fit(batch_size, micro):
        L.seed_everything(0)
        net = MLCM(32, 48, 2, 4, j_d=0.5, lambda_in=2.0, lambda_left=1.0, lambda_right=0.5, lambda_out=2.0,
                   lr=0.05, robustness=0.5, max_sweeps=15, seed=3, input_coupling="dense", lr_in=0.02)
        model = MLCMClassifier(net, micro_batch_size=micro)
        data = SyntheticDataModule(num_classes=4, in_features=32, train_size=100, val_size=0, batch_size=batch_size)
        trainer = L.Trainer(accelerator="cpu", max_epochs=2, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
        trainer.fit(model, data)
        return trainer.global_step, {k: v.clone() for k, v in net.state_dict().items() if torch.is_tensor(v)}

    steps_small, small = fit(8, None)
    steps_micro, micro = fit(32, 8)
    assert steps_small == steps_micro == 2 * 13
    for key in small:
        assert torch.equal(small[key], micro[key]), key


@pytest.mark.parametrize("rows, cols", [(7, 3), (400, 784), (64, 5000)])
def test_row_l1_bound_holds_and_is_tight(rows, cols):
    """The float32 row L1 the event backend bounds its rounding with is never below the exact
    (float64) sum and exceeds it by its slack only."""
    from mlcm_torch.functional.events import _row_l1

    W = torch.randn(rows, cols, generator=torch.Generator().manual_seed(rows)) * 1e3
    exact = W.double().abs().sum(dim=-1)
    bound = _row_l1(W)
    assert bound.dtype == torch.float64
    assert (bound >= exact).all()
    assert (bound <= exact * (1 + 1e-3)).all()


def test_couplings_are_stored_presynaptic_major_and_stay_so():
    """J and layer-to-layer W are column-major, so the event backend's Jᵀ is a view of the
    buffer (no copy per update); updates, checkpoint loading and .double() keep the layout."""
    from mlcm_torch.functional.events import event_couplings

    def make():
        return Network(20, 3, [RecurrentLayer(24, lr=0.1), RecurrentLayer(16, lr=0.1)],
                       [InputCoupling(strength=2.0), Dense(1, 0, 1.0, lr=0.1), OneToOne(0, 1, 0.5),
                        LabelCoupling(strength=1.0)], seed=0)

    net = make()
    x = torch.randint(0, 2, (8, 20)).float() * 2 - 1
    y = torch.randint(0, 3, (8,))
    net.local_update(net.relax(x, y), x, y)
    restored = make()
    restored.load_state_dict(net.state_dict())
    for model in (net, restored, copy.deepcopy(net).double()):
        graph = model.graph()
        prepared = event_couplings(graph)
        for spec, rows in zip(graph.layers, prepared.rows):
            assert spec.J.transpose(0, 1).is_contiguous()
            assert rows.data_ptr() == spec.J.data_ptr()
        dense = model.couplings[1].W
        assert dense.transpose(0, 1).is_contiguous()
    for a, b in zip(net.state_dict().values(), restored.state_dict().values()):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)


def _no_kernel(monkeypatch):
    from mlcm_torch.functional import events

    monkeypatch.setattr(events.kernel, "library", lambda: None)


needs_kernel = pytest.mark.skipif(
    __import__("mlcm_torch.functional.kernel", fromlist=["library"]).library() is None,
    reason="no C compiler: the event backend runs in PyTorch operations only")


def _kernel_pytorch_dense_agree(net: Network, x, y, schedule: str, monkeypatch) -> list:
    """Relaxes with and without the label on the event backend with the compiled kernel (which
    must run), the same sweeps in PyTorch operations and the dense float64 path; asserts
    identical states, sweeps and convergence; returns the kernel's relaxations."""
    from mlcm_torch.functional import dynamics, events

    graph = net.graph()
    calls = []
    real, real_loop = events._kernel_decide, dynamics.kernel_relax
    monkeypatch.setattr(events, "_kernel_decide", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(dynamics, "kernel_relax", lambda *a, **k: real_loop(*a, **k) and (calls.append(1) or True))
    out = []
    for labelled in (False, True):
        dense, with_kernel = both_relaxations(net, x, y if labelled else None, labelled)
        with monkeypatch.context() as m:
            _no_kernel(m)
            phase = prepare_phase(graph, x, y if labelled else None, labelled)
            plain = relax(graph, net.initial_states(x), phase, 40, schedule, backend="event")
        assert calls, "the kernel was not used"
        for other in (dense, plain):
            assert torch.equal(other.states.float(), with_kernel.states)
            assert torch.equal(other.sweeps, with_kernel.sweeps) and torch.equal(other.converged, with_kernel.converged)
        out.append(with_kernel)
    return out


@needs_kernel
@pytest.mark.parametrize("encoding,schedule", list(itertools.product(["pm1", "01"], SYNC)))
def test_kernel_and_pytorch_event_sweeps_decide_alike(encoding, schedule, monkeypatch):
    """The compiled event kernel against the same sweep in PyTorch operations and the dense
    float64 path: identical states, sweeps and convergence, with and without the label."""
    layers = 3 if schedule == "layer_sequential_sync" else 1  # the kernel runs one independent layer
    net = chain(encoding, schedule, layers=layers, sparsity_threshold=0.1 if encoding == "01" else 0.0)
    x, y = batch(encoding)
    _kernel_pytorch_dense_agree(net, x, y, schedule, monkeypatch)


@needs_kernel
@pytest.mark.parametrize("encoding,layers", list(itertools.product(["pm1", "01"], [1, 2])))
def test_kernel_decisions_on_layers_wider_than_a_chunk(encoding, layers, monkeypatch):
    """Layers of 300 neurons (the kernel decides in chunks of 256 and lists flags eight at a
    time: 300 = 256 + 44, 44 = 5·8 + 4): the kernel, the same sweeps in PyTorch operations and
    the dense float64 path give identical states, sweeps and convergence."""
    net = MLCM(D, 300, layers, C, seed=9, state_encoding=encoding, j_d=0.3, lambda_in=1.5, lambda_left=0.8,
               lambda_right=0.5, lambda_out=1.0, max_sweeps=40, input_coupling="dense",
               sparsity_threshold=0.1 if encoding == "01" else 0.0)
    x, y = batch(encoding, b=24, seed=3)
    relaxations = _kernel_pytorch_dense_agree(net, x, y, "layer_sequential_sync", monkeypatch)
    assert all(int(r.sweeps.max()) > 2 for r in relaxations)


@needs_kernel
@pytest.mark.parametrize("encoding", ["pm1", "01"])
def test_kernel_rechecks_of_zero_and_nonzero_states(encoding, monkeypatch):
    """Every neuron re-checked exactly (the kernel's bound scale made huge), in a batch whose
    samples start from zero states (the re-check then skips J's sum, +0.0 either way) and from
    random states (it must not): the kernel's states equal the dense float64 path's, sweep by
    sweep, with the thesis' identity input narrower than the layer (ties at zero fields)."""
    from mlcm_torch.functional import events

    monkeypatch.setattr(events, "BOUND_SCALE", 1e300)
    net = MLCM(D, N, 2, C, seed=4, state_encoding=encoding, j_d=0.2, lambda_in=1.5, lambda_left=0.8,
               lambda_right=0.5, lambda_out=1.0, max_sweeps=40)
    graph, graph64 = net.graph(), copy.deepcopy(net).double().graph()
    x, y = batch(encoding, b=12, seed=5)
    g = torch.Generator().manual_seed(1)
    start = torch.randint(0, 2, (12, 2 * N), generator=g).float()
    start = 2 * start - 1 if encoding == "pm1" else start
    start[::2] = 0.0
    for labelled in (False, True):
        for sweeps in (1, 2, 40):
            dense = relax(graph64, start.double(), prepare_phase(graph64, x.double(), y, labelled), sweeps)
            event = relax(graph, start.clone(), prepare_phase(graph, x, y, labelled), sweeps, backend="event")
            assert torch.equal(dense.states.float(), event.states)
            assert torch.equal(dense.sweeps, event.sweeps)


@needs_kernel
@pytest.mark.parametrize("encoding,layers", list(itertools.product(["pm1", "01"], [1, 3])))
def test_kernel_loop_equals_the_kernel_one_sweep_at_a_time(encoding, layers, monkeypatch):
    """A chain of one or three layers (one-to-one couplings between them) relaxes in the
    kernel's own loop (``kernel_relax``; the first sweep's dense products by J come back to
    Python mid-sweep); with the loop switched off the same kernel runs one layer per Python
    call. Both give identical states, sweep counts, convergence and carried fields of every
    layer for every phase (budgets of 40 and of 2 sweeps), and identical networks after 50
    training steps."""
    from mlcm_torch.functional import dynamics
    from mlcm_torch.functional.events import Carry, event_couplings

    used = []
    real_loop = dynamics.kernel_relax
    monkeypatch.setattr(dynamics, "kernel_relax", lambda *a, **k: real_loop(*a, **k) and (used.append(1) or True))
    looped = chain(encoding, backend="event", layers=layers, sparsity_threshold=0.1 if encoding == "01" else 0.0)
    stepwise = copy.deepcopy(looped)
    x, y = batch(encoding)
    graph = looped.graph()
    prepared = event_couplings(graph)
    for budget in (40, 2):
        for labelled in (True, False):
            results = []
            for loop in (True, False):
                with monkeypatch.context() as m:
                    if not loop:
                        m.setattr(dynamics, "kernel_relax", lambda *a, **k: False)
                    carry = Carry()
                    phase = prepare_phase(graph, x, y if labelled else None, labelled)
                    out = relax(graph, looped.initial_states(x), phase, budget, "layer_sequential_sync",
                                backend="event", prepared=prepared, carry=carry)
                    results.append((out, carry.state))
            (a, kept_a), (b, kept_b) = results
            assert torch.equal(a.states, b.states) and torch.equal(a.sweeps, b.sweeps)
            assert torch.equal(a.converged, b.converged)
            for layer in range(layers):
                assert torch.equal(kept_a.fields[layer], kept_b.fields[layer])
                assert torch.allclose(kept_a.errors[layer], kept_b.errors[layer], rtol=1e-12, atol=0)
            if budget == 2:
                assert not bool(a.converged.all())
    assert used, "the kernel loop was not used"
    for step in range(50):
        xs, ys = batch(encoding, b=8, seed=step)
        looped.local_update(looped.relax(xs, ys), xs, ys)
        with monkeypatch.context() as m:
            m.setattr(dynamics, "kernel_relax", lambda *a, **k: False)
            stepwise.local_update(stepwise.relax(xs, ys), xs, ys)
    assert_same_state(looped, stepwise)


@needs_kernel
@pytest.mark.parametrize("tie", ["plus", "flip", "keep"])
def test_kernel_on_a_composed_network_every_tie_rule_and_fifty_training_steps(tie, monkeypatch):
    """Float32 networks trained 50 steps with the kernel and without it end with identical
    couplings (their relaxations took identical decisions at every step)."""
    with_kernel, plain = mixed(backend="event", tie=tie, n=24), mixed(backend="event", tie=tie, n=24)
    for step in range(50):
        x, y = batch(seed=step, b=8)
        with_kernel.local_update(with_kernel.relax(x, y), x, y)
        with monkeypatch.context() as m:
            _no_kernel(m)
            plain.local_update(plain.relax(x, y), x, y)
    assert_same_state(with_kernel, plain)


@needs_kernel
def test_kernel_rechecks_fields_near_zero():
    """The float32 rounding case of test_event_rechecks_fields_near_zero, through the kernel."""
    from mlcm_torch.functional import events

    layer = RecurrentLayer(3)
    net = Network(3, 2, [layer], [InputCoupling(0, 1.0, kind="identity")], seed=0)
    layer.J.copy_(torch.tensor([[0.0, 1.0, -1e-8], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    graph = net.graph()
    phase = prepare_phase(graph, torch.tensor([[-1.0, 1.0, 1.0]]), None, False)
    prepared = events.event_couplings(graph)
    carried = events.start(graph, torch.ones(1, 3), phase, prepared)
    fixed = events.constants(graph, phase, prepared)
    entries = events.kernel_layers(graph, carried, fixed, phase, prepared, True)
    assert entries is not None and entries[0] is not None
    events.event_sweep(graph, carried, fixed, phase, prepared, kernel_entries=entries)
    assert carried.states.tolist() == [[-1.0, 1.0, 1.0]]


def test_product_routes_and_the_per_sample_product(monkeypatch):
    """The cost model picks gathered columns for few or shared columns, per-sample (CSR) rows for
    many columns with few per sample, dense for much change; every route gives the product of
    the changed neurons within float32 rounding, and relaxations through forced CSR products
    decide like the dense float64 path."""
    from mlcm_torch.functional import events

    assert events.product_route(16, 8, 16, 1600) == "union"
    assert events.product_route(16, 16, 256, 1600) == "union"  # every sample changed the same 16
    assert events.product_route(16, 700, 960, 1600) == "csr"
    assert events.product_route(16, 1600, 25600, 1600) == "dense"
    assert events.product_route(16, 500, 500, 1600) == "csr"
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(300, 200, generator=g)
    delta = torch.zeros(16, 300)
    for b in range(16):
        delta[b, torch.randperm(300, generator=g)[:20]] = 2.0 * torch.randn(20, generator=g).sign()
    change, terms = events._product(delta, rows, rows.T, events.DENSE_FRACTION)
    assert terms == 20
    torch.testing.assert_close(change, delta @ rows, rtol=0, atol=1e-4)
    monkeypatch.setattr(events, "CSR_ROW_COST", 0.0)
    monkeypatch.setattr(events, "CSR_OVERHEAD_ROWS", -1e9)
    _no_kernel(monkeypatch)
    used = []
    real = events._csr
    monkeypatch.setattr(events, "_csr", lambda d: used.append(1) or real(d))
    net = chain()
    x, y = batch()
    for labelled in (False, True):
        dense, event = both_relaxations(net, x, y if labelled else None, labelled)
        assert torch.equal(dense.states.float(), event.states) and torch.equal(dense.sweeps, event.sweeps)
    assert used


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_phases_carry_fields_and_decide_like_dense(dtype, monkeypatch):
    """Steering (warm-up, clamped, free): the event backend hands its carried fields from phase
    to phase (feedback-receiving layers recomputed when the feedback switches off) and takes
    the decisions of the dense float64 path in every phase; with a fresh start per phase it
    takes the same ones."""
    from mlcm_torch.functional import events

    dense = chain(backend="dense", protocol="steering", warmup_sweeps=1, free_sweeps=12).double()
    event = _with_backend(copy.deepcopy(dense).to(dtype), "event")
    x, y = batch()
    resumed = []
    real = events.resume
    monkeypatch.setattr(events, "resume", lambda *a: resumed.append(1) or real(*a))
    expected = dense.relax_phases(x.double(), y)
    got = event.relax_phases(x.to(dtype), y)
    assert len(resumed) == 2
    with monkeypatch.context() as m:
        m.setattr(events.Carry, "start", lambda self, graph, states, phase, c: events.start(graph, states.clone(), phase, c))
        fresh = event.relax_phases(x.to(dtype), y)
    for name in expected:
        for other in (got, fresh):
            assert torch.equal(expected[name].states, other[name].states.double()), name
            assert torch.equal(expected[name].sweeps, other[name].sweeps), name


def test_kernel_is_optional(monkeypatch, tmp_path):
    """``MLCM_TORCH_KERNEL=0`` and a missing compiler both leave the event backend on PyTorch
    operations (the latter with a warning naming the compiler), and auto trains on dense."""
    from mlcm_torch.functional import kernel

    monkeypatch.setenv("MLCM_TORCH_CACHE", str(tmp_path))
    try:
        kernel.library.cache_clear()
        monkeypatch.setenv("MLCM_TORCH_KERNEL", "0")
        assert kernel.library() is None
        assert chain(backend="auto").sweep_backend(torch.device("cpu"), training=True) == "dense"
        kernel.library.cache_clear()
        monkeypatch.setenv("MLCM_TORCH_KERNEL", "1")
        monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
        with pytest.warns(RuntimeWarning, match="no-such-compiler"):
            assert kernel.library() is None
        net = chain(backend="event")
        x, y = batch()
        dense, event = both_relaxations(net, x, y, True)
        assert torch.equal(dense.states.float(), event.states)
    finally:
        kernel.library.cache_clear()


def test_phases_carry_fields_under_inference_mode():
    """Inference tensors have no version counter: the carried fields are matched by value."""
    net = chain(backend="event", protocol="steering", warmup_sweeps=1, free_sweeps=12)
    x, y = batch()
    expected = net.relax_phases(x, y)
    with torch.inference_mode():
        got = net.relax_phases(x, y)
    for name in expected:
        assert torch.equal(expected[name].states, got[name].states), name


@pytest.mark.parametrize("encoding", ["pm1", "01"])
def test_sparse_couplings_use_their_csr_copy_and_decide_like_dense(encoding, monkeypatch):
    """Inference keeps CSR copies of 97 %-sparse J and runs the dense products on them: the
    decisions stay those of the dense float64 path; training relaxations build no copy."""
    from mlcm_torch.functional import events

    net = chain(encoding, j_sparsity=0.97, sparsity_threshold=0.1 if encoding == "01" else 0.0)
    x, _ = batch(encoding)
    graph = net.graph()
    prepared = events.event_couplings(graph, sparse=True)
    assert all(c is not None and c.layout == torch.sparse_csr for c in prepared.sparse)
    assert events.event_couplings(chain(encoding).graph(), sparse=True).sparse == (None, None, None)
    used = []
    real = events._dense_product
    monkeypatch.setattr(events, "_dense_product", lambda d, r, s: used.append(s is not None) or real(d, r, s))
    net64 = copy.deepcopy(net).double()
    graph64, start = net64.graph(), net.initial_states(x)
    dense = relax(graph64, start.double(), prepare_phase(graph64, x.double(), None, False), 40)
    event = relax(graph, start, prepare_phase(graph, x, None, False), 40, backend="event", prepared=prepared)
    assert any(used) and dense.converged.any()
    assert torch.equal(dense.states.float(), event.states)
    assert torch.equal(dense.sweeps, event.sweeps) and torch.equal(dense.converged, event.converged)
    event_net = _with_backend(net, "event")
    assert event_net._event_couplings(graph, training=True).sparse == (None, None, None)
    assert event_net._event_couplings(graph).sparse[0] is not None
    assert torch.equal(event_net.relax(x).states, net64.relax(x.double()).states.float())


@pytest.mark.parametrize("masked", [False, True])
def test_carried_row_l1_bound_holds_across_updates(masked):
    """The row L1 bound carried across 200 one-GEMM updates (decay, zeroed diagonal, a mask)
    stays above the exact float64 sums of the float32 matrix; without a mask within a small
    factor (the bound counts masked-out entries, so a masked matrix's bound is refreshed sooner)."""
    from mlcm_torch.functional.events import _row_l1, row_l1_after_update
    from mlcm_torch.functional.plasticity import Outer, apply_update

    g = torch.Generator().manual_seed(3)
    W = torch.randn(300, 300, generator=g) / 300**0.5
    mask = (torch.rand(300, 300, generator=g) < 0.3).float() if masked else None
    if mask is not None:
        W *= mask
    bound = _row_l1(W)
    for _ in range(200):
        pre = torch.randint(0, 2, (16, 300), generator=g).float() * 2 - 1
        post = pre * (torch.rand(16, 300, generator=g) < 0.3)
        delta = Outer(post, pre, zero_diagonal=True)
        apply_update(W, delta, 0.01, 0.05, 0.1, mask)
        bound = row_l1_after_update(bound, post, pre, 0.01, 1.0 - 0.05 * 0.1)
        exact = W.double().abs().sum(dim=-1)
        assert (bound >= exact).all()
    if not masked:
        assert (bound <= 60 * exact).all()


def test_training_carries_row_l1_bounds_with_the_decisions_of_fresh_passes(monkeypatch):
    """Float32 event training whose error bounds are carried across local updates takes the
    decisions of the same training with one fresh L1 pass per step (identical couplings after
    40 steps), with fewer passes; a change outside the local update (a checkpoint load) is seen."""
    from mlcm_torch.module import bounds as bounds_module

    carried, fresh = chain(backend="event"), chain(backend="event")
    passes = []
    real = bounds_module._row_l1
    monkeypatch.setattr(bounds_module, "_row_l1", lambda W: passes.append(id(W)) or real(W))
    for step in range(40):
        x, y = batch(seed=step, b=8)
        carried.local_update(carried.relax(x, y), x, y)
        with monkeypatch.context() as m:
            m.setattr(bounds_module.RowL1Bounds, "advance", lambda self, *args: None)
            fresh.local_update(fresh.relax(x, y), x, y)
    mine = [id(t) for t in carried.buffers()]
    assert sum(p in mine for p in passes) < 0.5 * sum(p not in mine for p in passes)
    assert_same_state(carried, fresh)
    store = carried._row_l1_bounds()
    J = carried.layers[0].J
    store(J)
    assert store.kept(J)
    carried.load_state_dict(fresh.state_dict())  # copies in place: a new version
    assert not store.kept(J)
    assert copy.deepcopy(carried)._row_l1_bounds()._entries == {}


def test_local_update_reuses_the_relaxation_input_drive(monkeypatch):
    """After relax(x, y) the local update on the same x takes the relaxation's input drives
    (no second x Wᵀ product) and gives the couplings of a recomputation; on another x it
    recomputes."""
    from mlcm_torch.functional import plasticity

    calls = []
    real = plasticity.source_drive
    monkeypatch.setattr(plasticity, "source_drive", lambda *a: calls.append(1) or real(*a))
    reused, recomputed, other = chain(), chain(), chain()
    x, y = batch(b=8)
    x2, _ = batch(b=8, seed=9)
    reused.local_update(reused.relax(x, y), x, y)
    assert calls == []
    relaxation = recomputed.relax(x, y)
    recomputed.__dict__["_drive_cache"] = None
    recomputed.local_update(relaxation, x, y)
    assert len(calls) == 1
    assert_same_state(reused, recomputed)
    relaxation = other.relax(x, y)
    other.relax(x2, y)
    other.local_update(relaxation, x, y)
    assert len(calls) == 2
    assert_same_state(reused, other)



@needs_kernel
@pytest.mark.parametrize("tie", ["plus", "flip", "keep"])
def test_kernel_rechecks_fields_zero_in_real_arithmetic_as_float64(tie, monkeypatch):
    """Couplings on a grid of ±1/4 make many fields exactly zero, so sweeps re-check many
    (sample, neuron) pairs, through every kind of term (J, the input, a dense and a
    one-to-one coupling, the label): the kernel decides as the PyTorch sweep and the dense float64
    path, ties included (their fields, exactly zero in real arithmetic, are decided by the float64
    rounding of the dense path's order of terms, J_D s_i right after J s)."""
    from mlcm_torch.functional import events

    net = mixed(backend="event", tie=tie, n=24)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for tensor in (*(layer.J for layer in net.layers), *(c.W for c in net.couplings if c.W is not None)):
            tensor.copy_(torch.randint(-1, 2, tensor.shape, generator=g).float() / 4 * (tensor != 0))
    x, y = batch(b=32)
    rechecked = []
    real = events.kernel.library().mlcm_decide

    def counting(*args):
        total = real(*args)
        rechecked.append(args[-1]._obj.value)
        return total

    monkeypatch.setattr(events.kernel.library(), "mlcm_decide", counting)
    graph = net.graph()
    for labelled in (False, True):
        phase = prepare_phase(graph, x, y if labelled else None, labelled)
        start = net.initial_states(x)
        with_kernel = relax(graph, start, phase, 40, backend="event")
        with monkeypatch.context() as m:
            _no_kernel(m)
            plain = relax(graph, start, phase, 40, backend="event")
        net64 = copy.deepcopy(net).double()
        graph64 = net64.graph()
        dense = relax(graph64, start.double(), prepare_phase(graph64, x.double(), y if labelled else None, labelled),
                      40)
        for other in (plain, dense):
            assert torch.equal(other.states.float(), with_kernel.states)
            assert torch.equal(other.sweeps, with_kernel.sweeps) and torch.equal(other.converged, with_kernel.converged)
    assert max(rechecked) > 8


def test_a_trained_network_pickles_and_copies_without_its_caches():
    """After relax and local_update (weak references to the last input, carried bounds) the
    network still pickles (DDP spawn, torch.save of the module) and its copy trains alike."""
    import pickle

    net = chain(backend="event", protocol="steering")
    x, y = batch(b=8)
    net.local_update(net.relax(x, y), x, y)
    clone = pickle.loads(pickle.dumps(net))
    copied = copy.deepcopy(net)
    x2, y2 = batch(b=8, seed=3)
    for model in (net, clone, copied):
        model.local_update(model.relax(x2, y2), x2, y2)
    for other in (clone, copied):
        assert_same_state(net, other)
