"""The command line as a user meets it: interrupted runs and their resume, predictions on disk, short
errors, help and docs, the model summary, no clutter or noise."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import re
import signal
import subprocess
import sys
import typing
from pathlib import Path

import docstring_parser
import lightning as L
import pytest
import torch
import yaml

from mlcm_torch import MLCM
from mlcm_torch.cli import MAX_LINES, cli, main
from mlcm_torch.training import CouplingSummary, MLCMClassifier, PredictionWriter

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "lightning_configs").glob("*.yaml"))
MNIST = ROOT / "lightning_configs" / "mnist.yaml"
SMALL_NETWORK = dict(in_features=32, hidden=48, num_layers=2, num_classes=4, j_d=0.5, lambda_in=2.0, lambda_left=1.0,
                     lambda_right=0.5, lambda_out=2.0, lr=0.05, robustness=0.5, max_sweeps=15, seed=3,
                     input_coupling="dense", lr_in=0.02, protocol="steering", readout="perceptron",
                     readout_margin=1.0, backend="dense")
SMALL_DATA = dict(num_classes=4, in_features=32, flip_prob=0.2, train_size=128, val_size=32, test_size=64, batch_size=16)


@pytest.fixture(autouse=True)
def command_line(monkeypatch):
    """A command line without pytest's arguments, as a user's (Lightning warns when both are given)."""
    monkeypatch.setattr(sys, "argv", ["mlcm"])


class CtrlCAt(L.Callback):
    """Sends this process SIGINT (what Ctrl-C does) while the batch of ``step`` trains."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, *args) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def small_config(tmp_path: Path, extra_callbacks: list | None = None, every: int = 3, name: str = "small",
                 **data) -> Path:
    """lightning_configs/mnist.yaml with its trainer and callbacks as shipped, but a small MLCM, synthetic data,
    2 epochs of 8 steps, a mid-epoch checkpoint every ``every`` steps and logs under ``tmp_path``."""
    config = yaml.safe_load(MNIST.read_text())
    config["trainer"].update(max_epochs=2, accelerator="cpu", log_every_n_steps=4, enable_progress_bar=False,
                             num_sanity_val_steps=0)
    config["trainer"]["logger"]["init_args"].update(save_dir=str(tmp_path / "logs"), name="small")
    for callback in config["trainer"]["callbacks"]:
        if "every_n_train_steps" in callback.get("init_args", {}):
            callback["init_args"]["every_n_train_steps"] = every
    config["trainer"]["callbacks"] += extra_callbacks or []
    config["model"]["init_args"].update(histogram_every_n_steps=4, check_finite=1)
    config["model"]["init_args"]["network"]["init_args"] = SMALL_NETWORK
    config["data"] = data or {"class_path": "mlcm_torch.data.SyntheticDataModule", "init_args": SMALL_DATA}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def couplings(run) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in run.model.network.state_dict().items() if torch.is_tensor(v)}


def versions(tmp_path: Path) -> list[str]:
    folder = tmp_path / "logs" / "small"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------------------------------------- resume


@pytest.mark.parametrize("config", [c for c in CONFIGS if "MLCMClassifier" in c.read_text()], ids=lambda p: p.name)
def test_every_mlcm_config_checkpoints_mid_epoch_on_interrupt_and_predicts(config):
    callbacks = yaml.safe_load(config.read_text())["trainer"]["callbacks"]
    paths = [c["class_path"] for c in callbacks]
    progress = [c for c in callbacks if c.get("init_args", {}).get("every_n_train_steps")]
    assert progress and all(c["init_args"]["save_last"] is True for c in progress)
    model = yaml.safe_load(config.read_text())["model"]["init_args"]
    if model.get("micro_batch_size"):  # global_step moves by several per step: only a StepCheckpoint keeps saving
        assert all(c["class_path"] == "mlcm_torch.training.StepCheckpoint" for c in progress)
    for needed in ("mlcm_torch.training.InterruptCheckpoint", "mlcm_torch.training.CouplingSummary",
                   "mlcm_torch.training.PredictionWriter"):
        assert needed in paths, needed
    assert model["histogram_every_n_steps"] > 0 and model["check_finite"] > 0


def test_ctrl_c_leaves_checkpoints_that_resume_to_identical_couplings(tmp_path, capfd):
    config = small_config(tmp_path)
    straight = cli(["fit", "--config", str(config)])
    assert straight.trainer.global_step == 16

    interrupted = small_config(tmp_path, extra_callbacks=[{"class_path": "test_cli.CtrlCAt", "init_args": {"step": 4}}],
                               name="interrupted")
    with pytest.raises(SystemExit) as exit_:
        cli(["fit", "--config", str(interrupted)])
    assert exit_.value.code == 1
    assert "Ctrl-C: stopping after the current batch" in capfd.readouterr().err
    folder = tmp_path / "logs" / "small" / "version_1" / "checkpoints"
    on_exception, last = folder / "on_exception.ckpt", folder / "last.ckpt"
    assert torch.load(on_exception, weights_only=False)["global_step"] == 5  # the batch under way finished
    assert torch.load(last, weights_only=False)["global_step"] == 3  # every_n_train_steps, mid-epoch

    expected = couplings(straight)
    for checkpoint in (on_exception, last):
        resumed = cli(["fit", "--config", str(config), "--ckpt_path", str(checkpoint)])
        assert resumed.trainer.global_step == 16
        state = couplings(resumed)
        assert state.keys() == expected.keys()
        for key in expected:
            assert torch.equal(state[key], expected[key]), (checkpoint.name, key)


def test_an_exception_saves_a_checkpoint_but_a_failure_before_training_leaves_nothing(tmp_path, monkeypatch, capsys):
    config = small_config(tmp_path, **{"class_path": "mlcm_torch.data.MNISTDataModule",
                                       "init_args": {"data_dir": str(tmp_path / "no_data"), "download": False}})
    with pytest.raises(FileNotFoundError, match="MNIST is not available"):
        cli(["fit", "--config", str(config)])
    assert versions(tmp_path) == [] and not (tmp_path / "logs").exists()  # no empty version_0
    assert not (tmp_path / "no_data").exists()

    monkeypatch.setattr(sys, "argv", ["mlcm", "fit", "--config", str(config)])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and "Traceback" not in err
    assert "error: FileNotFoundError: MNIST is not available in" in err and len(err.splitlines()) <= MAX_LINES


def test_check_finite_stops_at_its_interval_naming_tensor_and_step(tmp_path):
    model = MLCMClassifier(MLCM(**SMALL_NETWORK), check_finite=3)
    model.network.layers[1].J[0, 1] = float("nan")
    trainer = L.Trainer(accelerator="cpu", max_steps=10, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    from mlcm_torch.data import SyntheticDataModule

    with pytest.raises(FloatingPointError, match=r"non-finite values in layers\.1\.J \(\d+ of 2304 entries\) after "
                                                 r"the update of global step 3 \(checked every 3 steps"):
        trainer.fit(model, SyntheticDataModule(**SMALL_DATA))
    assert trainer.global_step == 2  # steps 1 and 2 were not checked
    assert MLCMClassifier(MLCM(**SMALL_NETWORK), check_finite=True).hparams.check_finite == 1
    assert MLCMClassifier(MLCM(**SMALL_NETWORK)).hparams.check_finite == 100  # on by default


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_check_finite_tells_overflowing_sums_from_non_finite_entries(value):
    """The check sums each tensor first: finite entries whose sum overflows pass, any NaN or ±inf
    entry raises (also where the other entries are huge)."""
    model = MLCMClassifier(MLCM(**SMALL_NETWORK))
    readout = model.network.readout.weight
    with torch.no_grad():
        readout.fill_(3e38)
    assert not torch.isfinite(readout.sum())
    model._check_finite(1)
    with torch.no_grad():
        readout[0, 0] = value
    with pytest.raises(FloatingPointError, match=r"non-finite values in readout\.weight \(1 of"):
        model._check_finite(1)


# ---------------------------------------------------------------------------------------------- predict


def test_predict_writes_classes_logits_targets_and_features(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    config = small_config(tmp_path)
    fitted = cli(["fit", "--config", str(config), "--trainer.max_epochs=1"])
    checkpoint = tmp_path / "logs" / "small" / "version_0" / "checkpoints" / "last.ckpt"
    run = cli(["predict", "--config", str(config), "--ckpt_path", str(checkpoint),
               "--trainer.callbacks+=mlcm_torch.training.PredictionWriter",
               "--trainer.callbacks.features=true", "--trainer.callbacks.filename=with_features.pt"])
    writers = [c for c in run.trainer.callbacks if isinstance(c, PredictionWriter)]
    assert [w.features for w in writers] == [False, True]
    plain = torch.load(writers[0].path)
    assert Path(writers[0].path) == tmp_path / "logs" / "small" / "version_1" / "predictions.pt"
    assert set(plain) == {"prediction", "logits", "target"}
    assert plain["prediction"].shape == (64,) and plain["prediction"].dtype == torch.int64
    assert plain["logits"].shape == (64, 4) and torch.equal(plain["prediction"], plain["logits"].argmax(-1))
    assert torch.equal(plain["target"], fitted.datamodule.dataset("test").tensors[1])
    full = torch.load(writers[1].path)
    assert full["features"].shape == (64, 48) and full["features"].dtype == torch.int8
    assert set(full["features"].unique().tolist()) <= {-1, 1}
    assert torch.equal(full["logits"], plain["logits"])
    assert f"Wrote the predictions to {writers[0].path}: prediction (64,), logits (64, 4), target (64,)" in caplog.text


# ---------------------------------------------------------------------------------------------- errors


BAD_VALUES = [
    ("--model.init_args.network.init_args.lr=-0.01", ["lr=-0.01", "must be >= 0.0", "mlcm_torch.MLCM"]),
    ("--model.init_args.network.init_args.max_sweeps=0", ["max_sweeps=0", "must be >= 1"]),
    ("--model.init_args.network.init_args.schedule=random",
     ["--model.init_args.network.init_args.schedule", "'random'", "allowed: layer_sequential_sync"]),
    ("--model.init_args.network.init_args.hiden=1600",
     ["unknown option --model.init_args.network.init_args.hiden", "1600", "did you mean 'hidden'?"]),
    ("--model.init_args.network.init_args.hidden=many", ["hidden", "'many'", "expected int"]),
    ("--model.init_args.readout_optimizer=adamw", ["'adamw'", "did you mean 'adam'?", "allowed: sgd, adam"]),
    ("--trainer.max_epoch=3", ["unknown option --trainer.max_epoch=3", "did you mean '--trainer.max_epochs'"]),
    ("--data.init_args.val_size=-1", ["mlcm_torch.data.MNISTDataModule", "val_size=-1", "0 <= val_size < 60000"]),
]


@pytest.mark.parametrize("arg,expected", BAD_VALUES, ids=[a.split(".")[-1] for a, _ in BAD_VALUES])
def test_a_bad_value_or_key_prints_a_short_message(arg, expected, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(["fit", "--config", str(MNIST), arg])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "Traceback" not in err and "Given value" not in err and "usage:" not in err
    assert len(err.splitlines()) <= MAX_LINES
    assert err.startswith("error:")
    for text in expected:
        assert text in err, (text, err)


def test_a_typo_in_a_config_file_is_named_with_a_suggestion(tmp_path, capsys):
    config = tmp_path / "typo.yaml"
    config.write_text(MNIST.read_text().replace("        hidden: 1600", "        hiden: 1600"))
    with pytest.raises(SystemExit) as exit_:
        cli(["fit", "--config", str(config)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.splitlines()) <= MAX_LINES
    assert "model.init_args.network.init_args.hiden in the config" in err and "did you mean 'hidden'?" in err


def test_the_console_command_exits_2_with_a_short_message():
    result = subprocess.run([sys.executable, "-m", "mlcm_torch", "fit", "--config", str(MNIST),
                             "--model.init_args.network.init_args.lr=-0.01"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) <= MAX_LINES
    assert "lr=-0.01 must be >= 0.0" in result.stderr and "--model.init_args.network" in result.stderr


def test_a_run_prints_no_deprecation_warning_and_no_tips(tmp_path):
    config = small_config(tmp_path)
    result = subprocess.run([sys.executable, "-m", "mlcm_torch", "fit", "--config", str(config),
                             "--trainer.max_steps=5"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for noise in ("LeafSpec", "💡", "Tip:", "Trainer already configured", "pre-optimization state"):
        assert noise not in output, noise
    assert "Couplings" in output  # the summary is there


# ---------------------------------------------------------------------------------------------- help and docs


def normalized(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_help_describes_the_tool(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    for text in ("Multi-Layer Chain Model", "lightning_configs/", "fit", "validate", "test", "predict",
                 "mlcm fit --config lightning_configs/mnist.yaml"):
        assert text in out, text


@pytest.mark.parametrize("option,class_path", [
    ("--model.help", "mlcm_torch.training.MLCMClassifier"),
    ("--model.init_args.network.help", "mlcm_torch.MLCM"),
    ("--model.init_args.network.help", "mlcm_torch.Network"),
    ("--data.help", "mlcm_torch.data.MNISTDataModule"),
    ("--trainer.callbacks.help", "mlcm_torch.training.PredictionWriter"),
    ("--trainer.callbacks.help", "mlcm_torch.training.InterruptCheckpoint"),
])
def test_help_shows_the_doc_of_every_option(option, class_path, capsys):
    with pytest.raises(SystemExit):
        cli(["fit", option, class_path])
    out = normalized(capsys.readouterr().out)
    module, _, name = class_path.rpartition(".")
    cls = getattr(__import__(module, fromlist=[name]), name)
    owner = next(k for k in cls.__mro__ if "__init__" in k.__dict__)  # jsonargparse reads its docstring
    params = docstring_parser.parse(owner.__doc__).params
    documented = {p.arg_name for p in params}
    signature = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "args", "kwargs")]
    assert set(signature) <= documented, set(signature) - documented  # every argument has a doc line
    hints = typing.get_type_hints(cls.__init__)
    for param in params:
        if param.arg_name not in signature:
            continue
        hint = hints.get(param.arg_name)
        if dataclasses.is_dataclass(hint):  # shown as one option per field, each with its doc
            for field in docstring_parser.parse(hint.__doc__).params:
                assert normalized(field.description)[:40] in out, f"{param.arg_name}.{field.arg_name}"
        else:
            assert normalized(param.description)[:40] in out, param.arg_name


def test_print_config_with_comments_shows_the_docs(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(["fit", "--config", str(MNIST), "--print_config=comments"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "# input strength λ_IN." in out and "lambda_in: 4.0" in out
    assert "# every n optimizer steps, after the update, raise" in normalized(out)


# ---------------------------------------------------------------------------------------------- summary


def test_the_model_summary_counts_the_couplings(tmp_path):
    from lightning.pytorch.utilities.model_summary.model_summary import get_human_readable_count

    model = MLCMClassifier(MLCM(**SMALL_NETWORK))
    trainer = L.Trainer(accelerator="cpu", logger=False, default_root_dir=tmp_path)
    table = CouplingSummary().table(trainer, model)
    net = model.network
    count = sum(t.numel() for t in net.state_dict().values() if torch.is_tensor(t) and t.is_floating_point()) \
        - net.readout.weight.numel()
    assert count == 2 * 48 * 48 + 48 * 32 + 48 * 4  # J of both layers, W_in, W_back
    assert f"{get_human_readable_count(count):<10}Couplings" in table
    assert "| Couplings |" in table.splitlines()[0].replace("  ", " ")
    assert f"{get_human_readable_count(net.readout.weight.numel()):<10}Trainable params" in table
