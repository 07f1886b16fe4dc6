"""Lightning training: CLI runs, checkpoint resume, DDP synchronisation, logging, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from mlcm_torch import MLCM
from mlcm_torch.cli import cli
from mlcm_torch.data import SyntheticDataModule
from mlcm_torch.training import MLCMClassifier, StepCheckpoint

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "lightning_configs").glob("*.yaml"))
SMALL = dict(in_features=32, hidden=48, num_layers=2, num_classes=4, j_d=0.5, lambda_in=2.0,
             lambda_left=1.0, lambda_right=0.5, lambda_out=2.0, lr=0.05, robustness=0.5,
             max_sweeps=15, seed=3)


TRAINING = ("readout_optimizer", "readout_momentum", "histogram_every_n_steps", "check_finite")


def classifier(**kw):
    """MLCMClassifier(MLCM(network options), training options) from one set of keywords."""
    train = {k: kw.pop(k) for k in TRAINING if k in kw}
    return MLCMClassifier(MLCM(**kw), **train)


def synthetic(**kw):
    args = dict(num_classes=4, in_features=32, flip_prob=0.2, train_size=192, val_size=64,
                test_size=64, batch_size=16)
    return SyntheticDataModule(**{**args, **kw})


def trainer(tmp_path, **kw):
    args = dict(accelerator="cpu", devices=1, default_root_dir=tmp_path, enable_progress_bar=False,
                enable_model_summary=False, logger=False, num_sanity_val_steps=0)
    return L.Trainer(**{**args, **kw})


def network_state(model):
    return {k: v.clone() for k, v in model.network.state_dict().items() if torch.is_tensor(v)}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_parses(config, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(["fit", "--config", str(config), "--print_config"])
    assert exit_.value.code == 0
    assert "class_path: mlcm_torch" in capsys.readouterr().out


def test_cli_fast_dev_run_on_synthetic_data(tmp_path):
    run = cli([
        "fit", "--model=mlcm_torch.training.MLCMClassifier", "--model.network=mlcm_torch.MLCM",
        *[f"--model.network.{k}={v}" for k, v in SMALL.items()],
        "--data=mlcm_torch.data.SyntheticDataModule", "--data.init_args.num_classes=4",
        "--data.init_args.in_features=32", "--trainer.fast_dev_run=2",
        f"--trainer.default_root_dir={tmp_path}", "--trainer.accelerator=cpu",
    ])
    assert run.trainer.global_step == 2
    assert torch.isfinite(run.model.network.J).all()


def test_cli_trains_and_tests_on_an_mnist_subset(shared_data_dir, tmp_path):
    config = ROOT / "lightning_configs" / "mnist.yaml"
    common = [f"--data.init_args.data_dir={shared_data_dir}", "--data.init_args.limit_train=320",
              "--data.init_args.val_size=100", "--data.init_args.limit_test=200",
              "--model.init_args.network.init_args.hidden=200", "--trainer.accelerator=cpu",
              f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false",
              "--trainer.callbacks=null", "--trainer.enable_progress_bar=false"]
    run = cli(["fit", "--config", str(config), "--trainer.max_epochs=1", *common])
    assert run.trainer.global_step == 20
    (result,) = run.trainer.test(run.model, run.datamodule)
    assert result["test/acc"] > 0.3  # 10 classes, 320 samples: well above chance (0.1)


def test_config_typo_is_rejected_with_the_key(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(["fit", "--model=mlcm_torch.training.MLCMClassifier", "--model.network=mlcm_torch.MLCM", "--model.network.lamda_in=3"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "error: unknown option --model.network.lamda_in (value 3): mlcm_torch.MLCM has no parameter 'lamda_in'; " \
           "did you mean 'lambda_in'" in err
    assert "Traceback" not in err and "usage:" not in err and len(err.splitlines()) <= 25


def test_wrong_type_is_rejected(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(["fit", "--model=mlcm_torch.training.MLCMClassifier", "--model.network=mlcm_torch.MLCM", "--model.network.hidden=many"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "error: invalid value for --model.network.hidden: 'many'; expected int" in err
    assert len(err.splitlines()) <= 25


def test_width_mismatch_fails_at_setup_with_both_numbers(tmp_path):
    model = classifier(**{**SMALL, "in_features": 30})
    with pytest.raises(ValueError, match="width 32 .* in_features=30"):
        trainer(tmp_path, max_epochs=1).fit(model, synthetic())


@pytest.mark.parametrize("readout", ["cross_entropy", "perceptron"])
def test_resume_from_checkpoint_continues_exactly(tmp_path, readout):
    kw = {**SMALL, "readout": readout, "input_coupling": "dense", "lr_in": 0.02,
          "protocol": "steering", "schedule": "layer_sequential_async" if readout == "perceptron" else "layer_sequential_sync"}
    if readout == "perceptron":
        kw["readout_margin"] = 1.0
    L.seed_everything(0)
    straight = classifier(**kw)
    trainer(tmp_path / "a", max_epochs=2).fit(straight, synthetic())

    L.seed_everything(0)
    first = classifier(**kw)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer(tmp_path / "b", max_epochs=1, callbacks=[checkpoint]).fit(first, synthetic())
    L.seed_everything(123)  # a different global RNG must not matter
    resumed = classifier(**{**kw, "seed": 99})
    run = trainer(tmp_path / "c", max_epochs=2)
    run.fit(resumed, synthetic(), ckpt_path=checkpoint.last_model_path)
    assert run.global_step == 24
    a, b = network_state(straight), network_state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)

    reloaded = MLCMClassifier.load_from_checkpoint(checkpoint.last_model_path)
    assert reloaded.hparams.network["init_args"]["readout"] == readout
    first_state, reloaded_state = network_state(first), network_state(reloaded)
    assert all(torch.equal(first_state[k], reloaded_state[k]) for k in first_state)


def test_tensorboard_logs_scalars_and_histograms(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = classifier(**SMALL, input_coupling="dense", lr_in=0.02, histogram_every_n_steps=4, check_finite=True)
    logger = TensorBoardLogger(tmp_path, name="tb")
    trainer(tmp_path, max_epochs=1, logger=logger, log_every_n_steps=2).fit(model, synthetic())
    events = EventAccumulator(logger.log_dir, size_guidance={"histograms": 0}).Reload()
    scalars, histograms = set(events.Tags()["scalars"]), set(events.Tags()["histograms"])
    for tag in ("train/loss_step", "train/acc_step", "train/sweeps", "train/not_converged",
                "train/unstable_fraction/layer_1", "train/activity/layer_2",
                "couplings/J_norm/layer_1", "train/loss_epoch", "train/acc_epoch", "val/acc", "val/sweeps", "val/not_converged"):
        assert tag in scalars, tag
    assert {"couplings/J/layer_1", "couplings/J/layer_2", "fields/layer_2", "couplings/W/coupling_1",
            "couplings/readout"} <= histograms  # J, W_in (MLCM.couplings[1]), readout, fields


def test_check_finite_stops_a_corrupted_run(tmp_path):
    model = classifier(**SMALL, check_finite=True)
    model.network.layers[0].J[0, 1] = float("inf")
    with pytest.raises(FloatingPointError, match="non-finite values in layers.0.J"):
        trainer(tmp_path, max_steps=1).fit(model, synthetic())


def test_non_convergence_is_reported(tmp_path):
    model = classifier(**{**SMALL, "max_sweeps": 1})
    with pytest.warns(UserWarning, match="without reaching a fixed point"):
        trainer(tmp_path, max_epochs=1).fit(model, synthetic())


def test_baselines_learn_through_the_same_cli(tmp_path):
    for model in ("PerceptronBaseline", "MLPBaseline"):
        run = cli([
            "fit", f"--model=mlcm_torch.training.{model}", "--model.init_args.in_features=32",
            "--model.init_args.num_classes=4", "--data=mlcm_torch.data.SyntheticDataModule",
            "--data.init_args.num_classes=4", "--data.init_args.in_features=32",
            "--trainer.max_epochs=2", "--trainer.accelerator=cpu", "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar=false",
        ])
        assert run.trainer.callback_metrics["val/acc"] > 0.9, model


@pytest.mark.slow
@pytest.mark.parametrize("readout", ["cross_entropy", "perceptron"])
def test_ddp_two_processes_keep_couplings_identical(tmp_path, readout):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(ROOT / "tests" / "ddp_worker.py"), str(tmp_path), readout],
                   check=True, env=env, cwd=tmp_path, timeout=240, capture_output=True)
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert int(r0["global_step"]) == 8
    for key in r0:
        assert torch.equal(r0[key], r1[key]), key
    initial = classifier(**{**SMALL, "input_coupling": "dense", "lr_in": 0.02}).network
    assert not torch.equal(r0["layers.0.J"], initial.layers[0].J)  # training moved the couplings


def test_module_entry_point_lists_the_subcommands():
    out = subprocess.run([sys.executable, "-m", "mlcm_torch", "--help"], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    for command in ("fit", "validate", "test", "predict"):
        assert command in out
    assert "Multi-Layer Chain Models" in out and "lightning_configs/" in out and "Examples:" in out


@pytest.mark.parametrize("micro", [None, 8])
def test_epoch_statistics_count_every_training_sample(tmp_path, micro):
    """The epoch's accuracy and its count of relaxations stopped at max_sweeps (the warning) are
    those of the samples trained on, summed on the device per micro-batch: a replay of the same
    steps outside Lightning gives the same numbers."""
    import copy
    import warnings

    model = MLCMClassifier(MLCM(**{**SMALL, "max_sweeps": 2, "readout": "perceptron"}), micro_batch_size=micro)
    replay = copy.deepcopy(model.network)
    data = synthetic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer(tmp_path, max_epochs=1, limit_val_batches=0).fit(model, datamodule=data)
    missed, correct, seen, sums = 0, 0.0, 0, torch.zeros(model._sums.shape[1], dtype=torch.float64)
    for x, y in data.train_dataloader():
        for xs, ys in zip(x.split(micro or 16), y.split(micro or 16)):
            relaxation = replay.relax(xs, ys)
            features = replay.layer_states(relaxation.states, replay.num_layers - 1)
            logits = replay.readout(features)
            correct += float((logits.argmax(-1) == ys).sum())
            stats = replay.local_update(relaxation, xs, ys)
            missed += int((~relaxation.converged).sum())
            seen += ys.shape[0]
            sums += ys.shape[0] * torch.tensor([
                float(torch.nn.functional.cross_entropy(logits, ys)), float((logits.argmax(-1) == ys).float().mean()),
                float(relaxation.sweeps.float().mean()), float((~relaxation.converged).float().mean()),
                *relaxation.activity("pm1", replay.sizes).tolist(), *map(float, stats["unstable_fraction"]),
                float(stats["readout_unstable_fraction"]), 1.0], dtype=torch.float64)
    assert missed > 0
    assert any(f"{missed} of {seen} training samples" in str(w.message) for w in caught)
    assert model.train_epoch_accuracy == pytest.approx(correct / seen)
    # every statistic summed over the epoch: loss, accuracy, sweeps, not converged, activity and
    # unstable fraction per layer, the readout's unstable fraction, the sample count
    torch.testing.assert_close(model._sums[1].double(), sums, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("checkpoint, saved", [(ModelCheckpoint, [4, 8, 12]), (StepCheckpoint, [4, 8, 12, 17, 21, 25])])
def test_step_checkpoints_keep_saving_when_micro_batches_step_past_the_multiples(tmp_path, checkpoint, saved):
    """Loader batches of 32 (100 samples: the last has 4) in micro-batches of 8: global_step ends its
    Lightning steps at 4, 8, 12, 13, then 17, 21, 25, 26. Lightning's ModelCheckpoint saves only where
    global_step % 4 == 0, so never after the first epoch; StepCheckpoint saves on every step that
    reaches or passes a multiple of 4."""
    net = MLCM(32, 48, 1, 4, j_d=0.5, lambda_in=2.0, lambda_out=2.0, lr=0.05, robustness=0.5, max_sweeps=5, seed=3)
    data = SyntheticDataModule(num_classes=4, in_features=32, train_size=100, val_size=0, batch_size=32)
    callback = checkpoint(dirpath=tmp_path, every_n_train_steps=4, save_top_k=-1, filename="{step}")
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, logger=False, callbacks=[callback], enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(MLCMClassifier(net, micro_batch_size=8), data)
    assert sorted(int(path.stem.split("=")[1]) for path in tmp_path.glob("step=*.ckpt")) == saved
    for path in tmp_path.glob("step=*.ckpt"):  # the callback's state under its own key, so a resume restores it
        assert callback.state_key in torch.load(path, weights_only=False)["callbacks"], path.name


def test_a_float64_network_trains_in_micro_batches(tmp_path):
    """The step's statistics mix dtypes (float64 logits and loss, float32 unstable fractions)."""
    net = MLCM(**{**SMALL, "readout": "perceptron"}).double()
    model = MLCMClassifier(net, micro_batch_size=8)
    trainer(tmp_path, max_epochs=1, limit_val_batches=0, limit_train_batches=3).fit(model, datamodule=synthetic())
    assert model._sums[1, -1] == 3 * 16 and torch.isfinite(model._sums).all()
