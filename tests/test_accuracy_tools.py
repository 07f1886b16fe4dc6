"""Issue 13's tools: learning-rate schedules (readout and local rule), the per-run accuracy
recorder ``benchmarks/train_accuracy.py``, the summariser ``benchmarks/accuracy_summary.py``
and the MLP baseline configs."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint

from mlcm_torch import MLCM
from mlcm_torch.data import SyntheticDataModule
from mlcm_torch.training import MLCMClassifier, MLPBaseline
from mlcm_torch.training.schedules import lr_factor

ROOT = Path(__file__).resolve().parents[1]
NET = dict(in_features=32, hidden=48, num_layers=1, num_classes=4, j_d=0.5, lambda_in=2.0, lambda_out=2.0,
           lr=0.05, robustness=0.5, max_sweeps=10, seed=3, input_coupling="dense", lr_in=0.02, weight_decay=0.01)


def load_script(name: str):
    """A script of benchmarks/ as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def data(**kw):
    args = dict(num_classes=4, in_features=32, flip_prob=0.2, train_size=64, val_size=32, test_size=32, batch_size=16)
    return SyntheticDataModule(**{**args, **kw})


def trainer(tmp_path, **kw):
    args = dict(accelerator="cpu", devices=1, default_root_dir=tmp_path, enable_progress_bar=False,
                enable_model_summary=False, logger=False, num_sanity_val_steps=0, enable_checkpointing=False)
    return L.Trainer(**{**args, **kw})


def model(readout="perceptron", **training):
    extra = {"readout_margin": 1.0} if readout == "perceptron" else {}
    return MLCMClassifier(MLCM(**NET, readout=readout, **extra), **training)


def couplings(module):
    return {k: v.clone() for k, v in module.network.state_dict().items() if torch.is_tensor(v)}


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------------- schedules
def test_schedule_factors_follow_their_formulas():
    assert [lr_factor("constant", e) for e in range(3)] == [1.0, 1.0, 1.0]
    cosine = [lr_factor("cosine", e, epochs=4, min_factor=0.2) for e in range(6)]
    expected = [0.2 + 0.8 * (1 + math.cos(math.pi * min(e, 4) / 4)) / 2 for e in range(6)]
    assert cosine == pytest.approx(expected, abs=1e-15)
    assert cosine[0] == 1.0 and cosine[4] == cosine[5] == pytest.approx(0.2)
    assert [lr_factor("step", e, step_size=2, gamma=0.5) for e in range(5)] == [1.0, 1.0, 0.5, 0.5, 0.25]


@pytest.mark.parametrize("options, message", [
    ({"readout_scheduler": "linear"}, "readout_scheduler='linear' is not supported; expected one of "
                                      "['constant', 'cosine', 'step']"),
    ({"local_scheduler": "exp"}, "local_scheduler='exp' is not supported"),
    ({"local_scheduler": "step"}, "local_scheduler='step' needs scheduler_step_size"),
    ({"scheduler_min_factor": 1.5}, "scheduler_min_factor=1.5 must lie in [0, 1]"),
    ({"scheduler_gamma": 0.0}, "scheduler_gamma=0.0 must lie in (0, 1]"),
    ({"scheduler_epochs": 0}, "scheduler_epochs=0 must be >= 1"),
    ({"scheduler_step_size": 0}, "scheduler_step_size=0 must be >= 1"),
])
def test_bad_schedule_options_are_rejected_by_name(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        model(**options)


def test_update_scale_one_is_bit_identical_and_other_scales_change_it():
    torch.manual_seed(0)
    x = torch.randint(0, 2, (8, 32)).float() * 2 - 1
    y = torch.randint(0, 4, (8,))
    nets = [MLCM(**NET, readout="perceptron", readout_margin=1.0) for _ in range(4)]
    relaxation = nets[0].relax(x, y)
    nets[0].local_update(relaxation, x, y)
    nets[1].local_update(relaxation, x, y, lr_scale=1.0, readout_lr_scale=1.0)
    nets[2].local_update(relaxation, x, y, lr_scale=0.5)
    nets[3].local_update(relaxation, x, y, readout_lr_scale=0.5)
    state = [{k: v for k, v in n.state_dict().items() if torch.is_tensor(v)} for n in nets]
    assert all(torch.equal(state[0][k], state[1][k]) for k in state[0])
    assert not torch.equal(state[0]["layers.0.J"], state[2]["layers.0.J"])
    assert torch.equal(state[0]["readout.weight"], state[2]["readout.weight"])
    assert torch.equal(state[0]["layers.0.J"], state[3]["layers.0.J"])
    assert not torch.equal(state[0]["readout.weight"], state[3]["readout.weight"])


@pytest.mark.parametrize("readout", ["perceptron", "cross_entropy"])
def test_default_and_explicit_constant_schedules_train_identically(tmp_path, readout):
    runs = {}
    for name, options in {"default": {}, "constant": {"readout_scheduler": "constant", "local_scheduler": "constant"},
                          "step": {"readout_scheduler": "step", "local_scheduler": "step", "scheduler_step_size": 1,
                                   "scheduler_gamma": 0.5}}.items():
        L.seed_everything(0)
        runs[name] = module = model(readout, **options)
        trainer(tmp_path / name, max_epochs=2).fit(module, data())
    assert not isinstance(runs["constant"].configure_optimizers(), dict)  # no scheduler, as before
    assert same(couplings(runs["default"]), couplings(runs["constant"]))
    assert not same(couplings(runs["default"]), couplings(runs["step"]))  # epoch 2 at half the rates


def test_cosine_scales_each_epoch_by_its_factor(tmp_path):
    """The local update's factor and the readout optimizer's lr, per epoch, for a cosine schedule
    over the trainer's 3 epochs: 1, 0.75, 0.25."""
    module = model("cross_entropy", readout_scheduler="cosine", local_scheduler="cosine")
    seen = []
    update = module.network.local_update

    def spy(*args, **kwargs):
        optimizer_lr = module.optimizers().param_groups[0]["lr"]
        seen.append((module.current_epoch, kwargs["lr_scale"], kwargs["readout_lr_scale"], optimizer_lr))
        return update(*args, **kwargs)

    module.network.local_update = spy
    trainer(tmp_path, max_epochs=3).fit(module, data())
    factors = [1.0, 0.75, 0.25]
    readout_lr = module.network.readout_options.lr
    for epoch, local, readout, optimizer_lr in seen:
        assert local == readout == pytest.approx(factors[epoch], abs=1e-12)
        assert optimizer_lr == pytest.approx(readout_lr * factors[epoch], abs=1e-12)
    assert sorted({epoch for epoch, *_ in seen}) == [0, 1, 2]


@pytest.mark.parametrize("readout", ["perceptron", "cross_entropy"])
def test_scheduled_run_resumes_exactly(tmp_path, readout):
    options = dict(readout_scheduler="cosine", local_scheduler="step", scheduler_step_size=1, scheduler_gamma=0.5)
    L.seed_everything(0)
    straight = model(readout, **options)
    trainer(tmp_path / "a", max_epochs=3).fit(straight, data())

    L.seed_everything(0)
    first = model(readout, **options)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer(tmp_path / "b", max_epochs=1, enable_checkpointing=True, callbacks=[checkpoint]).fit(first, data())
    L.seed_everything(7)
    resumed = model(readout, **options)
    run = trainer(tmp_path / "c", max_epochs=3)
    run.fit(resumed, data(), ckpt_path=checkpoint.last_model_path)
    assert same(couplings(straight), couplings(resumed))
    assert run.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * 0.25)  # cosine over 3 epochs, epoch 2


def test_cosine_needs_a_length_without_max_epochs(tmp_path):
    module = model(local_scheduler="cosine")
    with pytest.raises(ValueError, match="local_scheduler='cosine' needs scheduler_epochs"):
        trainer(tmp_path, max_epochs=-1, max_steps=2).fit(module, data())


# ---------------------------------------------------------------------------------------------- recorder
TINY = """\
seed_everything: 0
trainer:
  accelerator: cpu
  enable_model_summary: false
model:
  class_path: mlcm_torch.training.MLCMClassifier
  init_args:
    network:
      class_path: mlcm_torch.MLCM
      init_args: {in_features: 32, hidden: 48, num_layers: 1, num_classes: 4, j_d: 0.5,
                  lambda_in: 3.0, lambda_out: 2.0, lr: 0.05, max_sweeps: 5}
data:
  class_path: mlcm_torch.data.SyntheticDataModule
  init_args: {num_classes: 4, in_features: 32, flip_prob: 0.2, train_size: 128, test_size: 64}
"""


def record_run(tmp_path, name, *extra):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    out = tmp_path / f"{name}.json"
    record = load_script("train_accuracy").main(
        ["--config", str(config), "--epochs", "1", "--out", str(out), *extra, "--",
         f"--trainer.default_root_dir={tmp_path}"])
    assert json.loads(out.read_text()) == json.loads(json.dumps(record))
    return record


def test_recorder_repeats_a_run_from_its_config_overrides_and_seed(tmp_path):
    a = record_run(tmp_path, "a", "--val-size", "48", "--seed", "5")
    b = record_run(tmp_path, "b", "--val-size", "48", "--seed", "5")
    for record in (a, b):
        assert record["finished"] and record["seed"] == 5 and record["shuffle_seed"] == 5
        assert record["resolved_config"]["data"]["init_args"]["shuffle_seed"] == 5
        assert record["val_size"] == 48 and record["overrides"] == [f"--trainer.default_root_dir={tmp_path}"]
        assert record["machine"]["threads"] >= 1 and "cpu" in record["machine"] and "gpu" in record["machine"]
        assert record["torch"] == torch.__version__ and "git_commit" in record
    assert a["config_sha256"] == b["config_sha256"]
    first = [{k: v for k, v in r["epochs"][0].items() if k != "seconds"} for r in (a, b)]
    assert first[0] == first[1]
    assert all(0.0 <= first[0][k] <= 1.0 for k in ("train_acc", "val_acc", "test_acc"))
    c = record_run(tmp_path, "c", "--val-size", "0", "--seed", "6")
    assert c["epochs"][0]["val_acc"] is None and c["seed"] == 6 and c["config_sha256"] != a["config_sha256"]


def test_recorder_default_holds_out_5000_for_validation():
    assert load_script("train_accuracy").parse_args(["--config", "c.yaml", "--out", "o.json"]).val_size == 5000


@pytest.mark.parametrize("kind", ["mlcm", "mlp"])
def test_recorded_train_accuracy_is_the_logged_epoch_accuracy(tmp_path, kind):
    script = load_script("train_accuracy")
    record = {"epochs": [], "max_epochs": 2}
    module = model("cross_entropy") if kind == "mlcm" else MLPBaseline(in_features=32, hidden=16, num_classes=4)
    run = trainer(tmp_path, max_epochs=2, callbacks=[script.AccuracyRecorder(tmp_path / "r.json", record)])
    run.fit(module, data())
    assert record["finished"] and [e["epoch"] for e in record["epochs"]] == [1, 2]
    assert record["epochs"][-1]["train_acc"] == pytest.approx(float(run.callback_metrics["train/acc_epoch"]),
                                                              abs=1e-6)
    assert record["epochs"][-1]["val_acc"] == pytest.approx(float(run.callback_metrics["val/acc"]), abs=1e-6)


# ---------------------------------------------------------------------------------------------- summary
def resolved(model_class, data_class="MNISTDataModule", projection_dim=784, hidden=1600, network="MLCM"):
    if model_class == "MLPBaseline":
        model_section = {"class_path": "mlcm_torch.training.MLPBaseline", "init_args": {"hidden": hidden}}
    elif network == "MLCM":
        model_section = {"class_path": "mlcm_torch.training.MLCMClassifier",
                         "init_args": {"network": {"class_path": "mlcm_torch.MLCM", "init_args": {"hidden": hidden}}}}
    else:
        layers = [{"class_path": "mlcm_torch.RecurrentLayer", "init_args": {"size": s}} for s in (3000, hidden)]
        model_section = {"class_path": "mlcm_torch.training.MLCMClassifier",
                         "init_args": {"network": {"class_path": "mlcm_torch.Network", "init_args": {"layers": layers}}}}
    return {"seed_everything": 0, "model": model_section,
            "data": {"class_path": f"mlcm_torch.data.{data_class}",
                     "init_args": {"encoding": "projected", "projection_dim": projection_dim}}}


def write_run(folder, name, config_path, config, seed, test_acc, overrides=(), epochs=2, finished=True, val_size=5000):
    record = {"config": config_path, "resolved_config": config, "overrides": list(overrides), "seed": seed,
              "val_size": val_size, "max_epochs": epochs, "finished": finished,
              "epochs": [{"epoch": e + 1, "train_acc": 0.9, "val_acc": test_acc - 0.01, "test_acc": test_acc - 0.1 * (e < epochs - 1)}
                         for e in range(epochs)]}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(record))
    return path


def test_summary_groups_seeds_and_places_the_mlp_beside(tmp_path, capsys):
    runs = tmp_path / "accuracy"
    runs.mkdir()
    mnist, mlp = resolved("MLCMClassifier"), resolved("MLPBaseline")
    for seed, acc in enumerate((0.95, 0.96, 0.97)):
        # named like Fashion-MNIST: the dataset comes from the resolved config, not the name
        write_run(runs, f"fmnist_{seed}", "lightning_configs/mnist.yaml", mnist, seed, acc)
    write_run(runs, "seed_override", "lightning_configs/mnist.yaml", mnist, 3, 0.98,
              overrides=["--seed_everything=3", "--data.init_args.shuffle_seed=3"])
    write_run(runs, "repeat_of_seed_0", "lightning_configs/mnist.yaml", mnist, 0, 0.5)
    write_run(runs, "variant", "lightning_configs/mnist.yaml", mnist, 0, 0.90, overrides=["--model.init_args.lr=9"])
    write_run(runs, "five_epochs", "lightning_configs/mnist.yaml", mnist, 0, 0.93, epochs=5)
    for seed, acc in enumerate((0.98, 0.99)):
        write_run(runs, f"mlp_{seed}", "lightning_configs/mlp_baseline.yaml", mlp, seed, acc)
    write_run(runs, "mlp_lr", "lightning_configs/mlp_baseline.yaml", mlp, 0, 0.5, overrides=["--model.init_args.lr=1"])
    write_run(runs, "mlp_h800", "lightning_configs/mlp_baseline.yaml", resolved("MLPBaseline", hidden=800), 0, 0.7)
    write_run(runs, "entangled", "lightning_configs/chain.yaml",
              resolved("MLCMClassifier", projection_dim=100, network="Network"), 0, 0.88)
    write_run(runs, "fashion", "lightning_configs/fmnist.yaml", resolved("MLCMClassifier", "FashionMNISTDataModule"),
              0, 0.85)
    write_run(runs, "unfinished", "lightning_configs/mnist.yaml", mnist, 9, 0.1, finished=False)
    write_run(runs, "synthetic", "x.yaml", resolved("MLCMClassifier", "SyntheticDataModule"), 0, 0.1)
    out = tmp_path / "summary.json"
    rows = load_script("accuracy_summary").main(["--runs", str(runs / "*.json"), "--out", str(out)])
    assert json.loads(out.read_text()) == rows
    notes = capsys.readouterr().err
    assert "unfinished" in notes and "synthetic" in notes and "repeat_of_seed_0" in notes

    def find(**match):
        found = [r for r in rows if all(r[k] == v for k, v in match.items())]
        assert len(found) == 1, (match, rows)
        return found[0]

    base = find(dataset="mnist", model="MLCMClassifier", overrides=[], epochs=2)
    assert base["config"] == "lightning_configs/mnist.yaml" and base["hidden"] == 1600
    assert base["seeds"] == [0, 1, 2, 3]
    assert base["final_test_acc_mean"] == pytest.approx(0.965)
    assert base["final_test_acc_std"] == pytest.approx(0.0129099, abs=1e-6)
    assert base["final_val_acc_mean"] == pytest.approx(0.955)
    assert base["mlp_test_acc_mean"] == pytest.approx(0.985)  # the MLP without overrides, same hidden
    assert [Path(p).name for p in base["runs"]] == ["fmnist_0.json", "fmnist_1.json", "fmnist_2.json",
                                                    "seed_override.json"]
    assert find(overrides=["--model.init_args.lr=9"])["mlp_test_acc_mean"] == pytest.approx(0.985)
    assert find(dataset="mnist", model="MLCMClassifier", epochs=5)["mlp_test_acc_mean"] is None  # MLP ran 2 epochs
    entangled = find(dataset="entangled_mnist")
    assert entangled["hidden"] == 1600 and entangled["mlp_test_acc_mean"] is None
    assert entangled["final_test_acc_std"] is None
    assert find(dataset="fashion_mnist")["final_test_acc_mean"] == pytest.approx(0.85)
    assert find(model="MLPBaseline", overrides=[], hidden=1600)["seeds"] == [0, 1]
    assert [r["model"] for r in rows][-3:] == ["MLPBaseline"] * 3  # MLP rows after the others
    assert {r["dataset"] for r in rows} == {"mnist", "entangled_mnist", "fashion_mnist"}
    table = load_script("accuracy_summary").markdown(rows).splitlines()
    assert len(table) == 2 + len(rows)
    assert "| mnist | `mnist.yaml` | 1600 | 2 | 0, 1, 2, 3 | 0.9550 | 0.9650 ± 0.0129 | 0.9850 |" in table


# ---------------------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("mlcm, mlp", [("mnist", "mlp_baseline"), ("fmnist", "fmnist_mlp"),
                                       ("entangled_mnist", "entangled_mnist_mlp")])
def test_mlp_baselines_share_data_and_hidden_size_with_their_mlcm_config(mlcm, mlp):
    summary = load_script("accuracy_summary")
    a, b = (yaml.safe_load((ROOT / "lightning_configs" / f"{name}.yaml").read_text()) for name in (mlcm, mlp))
    assert summary.model_of(b) == "MLPBaseline"
    assert summary.dataset_of(a) == summary.dataset_of(b) is not None
    data_a, data_b = (dict(config["data"]["init_args"]) for config in (a, b))
    loader_a, loader_b = data_a.pop("batch_size"), data_b.pop("batch_size")
    assert a["data"]["class_path"] == b["data"]["class_path"] and data_a == data_b
    # the same batch: the MLCM's micro-batches (its loader's batch otherwise) and the MLP's loader
    assert (a["model"]["init_args"].get("micro_batch_size") or loader_a) == loader_b
    assert summary.hidden_of(a) == summary.hidden_of(b) == 1600
    assert a["model"]["init_args"]["network"]["init_args"]["in_features"] == b["model"]["init_args"]["in_features"]
