"""The MLCM core against slow reference loops: fields, fixed points, learning rule."""

from __future__ import annotations

import itertools

import pytest
import torch
from reference import reference_fields, reference_readout_update, reference_update

from mlcm_torch import MLCM
from mlcm_torch.functional import SCHEDULES, activate

D, N, C = 6, 8, 3


def make(encoding="pm1", layers=3, **kw):
    kw.setdefault("seed", 0)
    kw.setdefault("lambda_out", 2.0)
    kw.setdefault("lambda_in", 1.5)
    kw.setdefault("lambda_left", [0.7 + 0.1 * i for i in range(layers - 1)])
    kw.setdefault("lambda_right", [0.4 + 0.1 * i for i in range(layers - 1)])
    return MLCM(D, N, layers, C, state_encoding=encoding, **kw)


def batch(encoding="pm1", b=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 2, (b, D), generator=g).float()
    y = torch.randint(0, C, (b,), generator=g)
    return (2 * x - 1 if encoding == "pm1" else x), y


def random_states(model, b, seed=2):
    g = torch.Generator().manual_seed(seed)
    s = torch.randint(0, 2, (b, model.num_layers, model.hidden), generator=g).float()
    return 2 * s - 1 if model.state_encoding == "pm1" else s


@pytest.mark.parametrize("encoding", ["pm1", "01"])
@pytest.mark.parametrize("coupling", ["identity", "dense"])
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("labelled", [False, True])
def test_fields_match_reference_loop(encoding, coupling, layers, labelled):
    kw = {"sparsity_threshold": 0.3} if encoding == "01" else {}
    model = make(encoding, layers, input_coupling=coupling, j_d=0.25, **kw)
    x, y = batch(encoding)
    y = y if labelled else None
    states = random_states(model, x.shape[0])
    expected = reference_fields(model, states, x, y)
    torch.testing.assert_close(model.fields(states, x, y).double(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("encoding", ["pm1", "01"])
@pytest.mark.parametrize("labelled", [False, True])
def test_converged_states_are_fixed_points(schedule, encoding, labelled):
    model = make(encoding, 3, schedule=schedule, j_d=0.6, max_sweeps=60)
    x, y = batch(encoding, b=12)
    y = y if labelled else None
    r = model.relax(x, y)
    assert r.converged.any(), "nothing converged: the test would check nothing"
    h = model.fields(r.states, x, y)
    stable = (activate(h, encoding) == r.states).flatten(1).all(1)
    assert torch.equal(stable[r.converged], torch.ones_like(stable[r.converged]))
    assert ((r.sweeps >= 1) & (r.sweeps <= model.max_sweeps)).all()
    values = torch.tensor([-1.0, 1.0] if encoding == "pm1" else [0.0, 1.0])
    assert torch.isin(r.states, values).all()


def test_steering_protocol_ends_at_free_fixed_point():
    model = make(layers=2, protocol="steering", max_sweeps=5, free_sweeps=30, j_d=0.6)
    x, y = batch(b=10)
    r = model.relax(x, y)
    assert r.converged.any()
    free = model.fields(r.states, x, None)
    stable = (activate(free, "pm1") == r.states).flatten(1).all(1)
    assert stable[r.converged].all()
    clamped = make(layers=2, protocol="thesis", max_sweeps=5, j_d=0.6).relax(x, y)
    assert (r.sweeps >= clamped.sweeps).all() and (r.sweeps <= 35).all()


def test_warmup_sweeps_run_label_free_before_the_label_phase():
    """The warm-up is one label-free sweep (the inference relaxation with a budget of 1), then
    the label phase and the free phase start from its state."""
    from mlcm_torch.functional import prepare_phase, relax

    x, y = batch(b=10)
    warm = make(layers=2, protocol="steering", max_sweeps=5, warmup_sweeps=1, j_d=0.6)
    manual = make(layers=2, protocol="steering", max_sweeps=5, j_d=0.6)
    graph = manual.graph()
    free_phase, clamped_phase = prepare_phase(graph, x, None, False), prepare_phase(graph, x, y, True)
    start = relax(graph, manual.initial_states(x), free_phase, 1)
    clamped = relax(graph, start.states, clamped_phase, 5)
    free = relax(graph, clamped.states, free_phase, 5)
    r = warm.relax(x, y)
    assert torch.equal(r.states.flatten(1), free.states)
    assert torch.equal(r.sweeps, 1 + clamped.sweeps + free.sweeps)
    phases = warm.relax_phases(x, y)
    assert list(phases) == ["warmup", "clamped", "free"]
    assert torch.equal(phases["clamped"].states, clamped.states)


def test_zero_one_without_sparsity_equals_pm1():
    """Thesis eq. 7.1 with γ = 0 is the ±1 dynamics on s = 2z − 1 (label field halved), from
    the same initial pattern ("zeros" differ: z = 0 is s = −1)."""
    pm = make("pm1", 3, j_d=0.4, lambda_out=2.0, init_state="input")
    zo = make("01", 3, j_d=0.4, lambda_out=1.0, init_state="input")
    x, y = batch("pm1", b=16)
    for labels in (None, y):
        r_pm, r_zo = pm.relax(x, labels), zo.relax((x + 1) / 2, labels)
        assert torch.equal(r_pm.states, 2 * r_zo.states - 1)
        assert torch.equal(r_pm.sweeps, r_zo.sweeps)
    pm.local_update(r_pm, x, y)
    zo.local_update(r_zo, (x + 1) / 2, y)
    torch.testing.assert_close(pm.J, zo.J)


def test_inference_sweeps_bound_the_label_free_relaxation():
    model = make(max_sweeps=1, inference_sweeps=40, j_d=0.6)
    x, y = batch(b=8)
    assert (model.relax(x, y).sweeps == 1).all()
    free = model.relax(x)
    assert free.sweeps.max() > 1 and free.converged.all()


def test_max_sweeps_reached_is_not_a_fixed_point():
    model = make(max_sweeps=1)
    x, y = batch(b=8)
    r = model.relax(x, y)  # the first sweep from zeros always changes every neuron
    assert not r.converged.any()
    assert (r.sweeps == 1).all()
    assert r.not_converged_fraction() == 1.0


def test_sparsity_threshold_lowers_activity():
    x, _ = batch("01", b=16)
    dense = make("01", 2, j_d=0.5).relax(x)
    sparse = make("01", 2, j_d=0.5, sparsity_threshold=1.5).relax(x)
    assert (sparse.activity("01") <= dense.activity("01")).all()
    assert sparse.activity("01").sum() < dense.activity("01").sum()


@pytest.mark.parametrize("encoding", ["pm1", "01"])
def test_k_winners_take_all(encoding):
    model = make(encoding, 2, k_winners=3, max_sweeps=40)
    x, y = batch(encoding, b=8)
    r = model.relax(x, y)
    assert ((r.states > 0).sum(-1) == 3).all()
    torch.testing.assert_close(r.activity(encoding), torch.full((2,), 3 / N))


@pytest.mark.parametrize(
    "coupling,scaling,layers",
    [("identity", "thesis", 3), ("dense", "thesis", 2), ("dense", "paper", 1), ("identity", "paper", 2)],
)
@pytest.mark.parametrize("encoding", ["pm1", "01"])
def test_local_update_matches_reference_loop(coupling, scaling, layers, encoding):
    lr_in = 0.05 if coupling == "dense" else 0.0
    model = make(encoding, layers, input_coupling=coupling, lr=0.1, lr_in=lr_in,
                 weight_decay=0.3, robustness=0.8, lr_scaling=scaling)
    x, y = batch(encoding, b=7)
    r = model.relax(x, y)
    J_new, W_new, unstable = reference_update(model, r.states, x, y)
    stats = model.local_update(r, x, y)
    torch.testing.assert_close(model.J.double(), J_new, atol=1e-6, rtol=1e-6)
    assert (model.J.diagonal(dim1=1, dim2=2) == 0).all()
    if W_new is not None:
        torch.testing.assert_close(model.W_in.double(), W_new, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(stats["unstable_fraction"], unstable.float().mean(dim=(0, 2)))
    assert unstable.any() and not unstable.all()


@pytest.mark.parametrize("scaling,targets", [("thesis", (1.0, -1.0)), ("paper", (2.5, -0.79))])
def test_perceptron_readout_matches_reference_loop(scaling, targets):
    model = make(readout="perceptron", readout_lr=0.2, readout_margin=0.5,
                 weight_decay=0.1, lr_scaling=scaling, readout_targets=targets)
    x, y = batch(b=9)
    r = model.relax(x, y)
    expected = reference_readout_update(model, r.states[:, -1], y)
    model.local_update(r, x, y)
    torch.testing.assert_close(model.readout.weight.detach().double(), expected)


def test_reduce_hook_sees_every_delta():
    model = make(input_coupling="dense", lr_in=0.1, readout="perceptron", readout_margin=1.0)
    x, y = batch()
    seen = []
    model.local_update(model.relax(x, y), x, y, reduce=lambda t: seen.append(t.shape) or t * 0)
    assert seen == [(N, N)] * 3 + [(N, D), (C, N)]  # J of each layer, W_in, the readout


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_seeded_construction_and_dynamics_are_deterministic(schedule):
    a, b = make(schedule=schedule, seed=7), make(schedule=schedule, seed=7)
    x, y = batch()
    ra, rb = a.relax(x, y), b.relax(x, y)
    assert all(torch.equal(p, q) for p, q in zip(ra, rb))
    assert not torch.equal(make(seed=8).J, a.J)


def test_async_order_state_survives_state_dict_round_trip():
    a = make(schedule="layer_independent_async")
    x, y = batch()
    a.relax(x, y)  # advance the order generator
    b = make(schedule="layer_independent_async", seed=123)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.J, b.J) and torch.equal(a.W_back, b.W_back)
    assert all(torch.equal(p, q) for p, q in zip(a.relax(x, y), b.relax(x, y)))


def test_forward_features_and_feature_module():
    from torch import nn

    from mlcm_torch import MLCMFeatures

    model = make()
    x, _ = batch()
    head = nn.Sequential(MLCMFeatures(model), nn.Linear(N, 10))
    with torch.inference_mode():
        out = head(x)
        feats = model.features(x)
        torch.testing.assert_close(model(x), model.readout(feats))
    assert out.shape == (5, 10)
    assert torch.equal(feats, model.relax(x).states[:, -1])


def bad_calls():
    x, y = batch()
    return {
        "wrong width": (lambda m: m.relax(x[:, :-1]), "shape"),
        "nan": (lambda m: m.relax(torch.where(x > 0, float("nan"), x)), "NaN"),
        "not binary": (lambda m: m.relax(x * 0.5), "outside"),
        "zero-one input to pm1": (lambda m: m.relax((x + 1) / 2), "outside"),
        "label too large": (lambda m: m.relax(x, y + C), "labels outside"),
        "negative label": (lambda m: m.relax(x, y - C), "labels outside"),
        "float labels": (lambda m: m.relax(x, y.float()), "dtype"),
        "label length": (lambda m: m.relax(x, y[:-1]), "shape"),
        "bad update labels": (lambda m: m.local_update(m.relax(x, y), x, y + C), "labels outside"),
        "bad update input": (lambda m: m.local_update(m.relax(x, y), x * 2, y), "outside"),
    }


@pytest.mark.parametrize("case", list(bad_calls()))
def test_bad_input_is_rejected_and_changes_nothing(case):
    call, message = bad_calls()[case]
    model = make(readout="perceptron", input_coupling="dense", lr_in=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items() if torch.is_tensor(v)}
    with pytest.raises(ValueError, match=message):
        call(model)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"lambda_left": [1.0]}, "lambda_left has 1 entries; expected 2"),
        ({"lambda_right": [1.0, 2.0, 3.0]}, "lambda_right has 3 entries; expected 2"),
        ({"max_sweeps": 0}, "max_sweeps=0 must be >= 1"),
        ({"schedule": "random"}, "schedule='random' is not supported"),
        ({"state_encoding": "binary"}, "state_encoding='binary'"),
        ({"k_winners": N + 1}, "k_winners"),
        ({"k_winners": 2, "schedule": "layer_sequential_async"}, "synchronous"),
        ({"sparsity_threshold": 0.5}, "state_encoding='01'"),
        ({"lr_in": 0.1}, "input_coupling='dense'"),
        ({"free_sweeps": 3}, "protocol='steering'"),
        ({"warmup_sweeps": 1}, "protocol='steering'"),
        ({"inference_sweeps": 0}, "inference_sweeps=0 must be >= 1"),
        ({"readout_margin": 1.0}, "readout='perceptron'"),
        ({"readout": "perceptron", "readout_targets": (1.0, 1.0)}, "readout_targets"),
    ],
)
def test_bad_construction_arguments(kwargs, message):
    base = {"lambda_left": [1.0, 1.0], "lambda_right": [1.0, 1.0]}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        MLCM(D, N, 3, C, **{**base, **kwargs})


def test_identity_input_needs_enough_neurons():
    with pytest.raises(ValueError, match="in_features=9 > hidden=8"):
        MLCM(9, 8, 1, 2)
    MLCM(9, 8, 1, 2, input_coupling="dense")


def test_couplings_are_buffers_without_autograd():
    model = make(input_coupling="dense")
    buffers = dict(model.named_buffers())
    assert {"layers.0.J", "layers.2.J", "couplings.0.W", "couplings.1.W"} <= set(buffers)
    assert buffers["couplings.0.W"] is model.W_back and buffers["couplings.1.W"] is model.W_in
    assert [n for n, _ in model.named_parameters()] == ["readout.weight"]
    assert model.J.shape == (3, N, N) and model.W_back.shape == (N, C)
    assert (model.J.diagonal(dim1=1, dim2=2) == 0).all()
    x, y = batch()
    r = model.relax(x, y)
    assert not r.states.requires_grad


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("schedule,encoding", list(itertools.product(SCHEDULES[:2], ["pm1", "01"])))
def test_cuda_matches_cpu(schedule, encoding):
    cpu = make(encoding, schedule=schedule, j_d=0.6, max_sweeps=40)
    gpu = make(encoding, schedule=schedule, j_d=0.6, max_sweeps=40).to("cuda")
    x, y = batch(encoding, b=16)
    rc, rg = cpu.relax(x, y), gpu.relax(x.cuda(), y.cuda())
    agree = (rc.states == rg.states.cpu()).flatten(1).all(1)
    assert agree.float().mean() >= 0.9
    cpu.local_update(rc, x, y)
    gpu.local_update(rg, x.cuda(), y.cuda())
    assert gpu.J.device.type == "cuda"


def test_activity_of_equal_layers_is_the_mean_of_each_layer():
    from mlcm_torch.functional.dynamics import Relaxation

    g = torch.Generator().manual_seed(0)
    states = torch.where(torch.rand(5, 3 * 7, generator=g) < 0.3, 1.0, -1.0)
    relaxation = Relaxation(states, torch.ones(5, dtype=torch.long), torch.ones(5, dtype=torch.bool))
    expected = torch.stack([(part > 0).float().mean() for part in states.split(7, dim=1)])
    assert torch.allclose(relaxation.activity("pm1", (7, 7, 7)), expected)
    assert torch.allclose(relaxation.activity("pm1", (7, 14)),
                          torch.stack([(states[:, :7] > 0).float().mean(), (states[:, 7:] > 0).float().mean()]))
