"""The readout refit: softmax regression on the label-free fixed points after the last epoch."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint

from mlcm_torch import MLCM
from mlcm_torch.cli import cli
from mlcm_torch.training import MLCMClassifier
from mlcm_torch.training.refit import ReadoutRefit, fit_readout
from tests.test_training import SMALL, synthetic, trainer


def reference_fit(features, targets, classes, options):
    """The plain loop: a bias-free nn.Linear from zero, Adam, the same minibatch order."""
    linear = torch.nn.Linear(features.shape[1], classes, bias=False)
    torch.nn.init.zeros_(linear.weight)
    optimizer = torch.optim.Adam(linear.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    generator = torch.Generator().manual_seed(options.seed)
    for _ in range(options.epochs):
        order = torch.randperm(len(targets), generator=generator)
        for start in range(0, len(order), options.batch_size):
            index = order[start:start + options.batch_size]
            loss = F.cross_entropy(linear(features[index].float()), targets[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return linear.weight.detach()


def test_fit_readout_is_adam_from_zero_on_the_cross_entropy():
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(3, 20, generator=g)
    features = torch.where(torch.rand(200, 20, generator=g) < 0.5, 1, -1).to(torch.int8)
    targets = (features.float() @ teacher.T).argmax(-1)
    options = ReadoutRefit(epochs=30, lr=0.05, batch_size=32, weight_decay=1e-4, seed=5)
    weight = torch.randn(3, 20, generator=g)
    losses = fit_readout(weight, features, targets, F.cross_entropy, options)
    assert torch.allclose(weight, reference_fit(features, targets, 3, options), atol=1e-6)
    assert len(losses) == 30 and losses[-1] < 0.5 * losses[0]
    assert float(((features.float() @ weight.T).argmax(-1) == targets).float().mean()) > 0.95


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(lr=0.0), dict(lr=float("nan")), dict(batch_size=0),
                                 dict(weight_decay=-1.0), dict(seed=-1)])
def test_invalid_refit_options_are_rejected(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=f"readout_refit.{name}"):
        ReadoutRefit(**bad)
    with pytest.raises(ValueError, match=f"readout_refit.{name}"):
        MLCMClassifier(MLCM(**SMALL), readout_refit=bad)


def test_refit_replaces_only_the_readout_after_the_last_epoch(tmp_path):
    """Couplings as without the refit; W_out = the plain refit of the final network on the last
    epoch's training batches; validation, checkpoint and report see the refit readout."""
    network = MLCM(**{**SMALL, "readout": "perceptron", "readout_lr": 0.05, "readout_margin": 1.0})
    options = ReadoutRefit(epochs=5, lr=0.01, batch_size=32)
    plain = MLCMClassifier(copy.deepcopy(network))
    refit = MLCMClassifier(network, readout_refit=options)
    trainer(tmp_path / "plain", max_epochs=2).fit(plain, datamodule=synthetic())
    data = synthetic()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    run = trainer(tmp_path / "refit", max_epochs=2, callbacks=[checkpoint])
    run.fit(refit, datamodule=data)

    state, reference = refit.network.state_dict(), plain.network.state_dict()
    for key in reference:
        if key != "readout.weight" and torch.is_tensor(reference[key]):
            assert torch.equal(state[key], reference[key]), key
    assert torch.equal(refit.readout_refit_report["weight_before"], reference["readout.weight"])
    batches = list(run.train_dataloader)  # the sampler's order is a function of (seed, epoch): the last epoch's
    with torch.no_grad():
        features = torch.cat([plain.network.features(x) for x, _ in batches])
    targets = torch.cat([y for _, y in batches])
    expected = reference_fit(features, targets, SMALL["num_classes"], options)
    assert torch.allclose(refit.network.readout.weight, expected, atol=1e-6)
    assert refit.readout_refit_report["samples"] == 192 and len(refit.readout_refit_report["losses"]) == 5

    with torch.no_grad():
        val = torch.cat([(refit(x).argmax(-1) == y).float() for x, y in data.val_dataloader()]).mean()
    assert float(run.callback_metrics["val/acc"]) == pytest.approx(float(val))
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)
    assert torch.equal(saved["state_dict"]["network.readout.weight"], refit.network.readout.weight)
    restored = MLCMClassifier.load_from_checkpoint(tmp_path / "ckpt" / "last.ckpt")
    assert restored.readout_refit == options


def test_refit_is_a_config_entry():
    built = cli(["--config", "lightning_configs/mnist.yaml", "--model.init_args.readout_refit.epochs=3",
                 "--model.init_args.readout_refit.lr=0.002"], run=False)
    assert built.model.readout_refit == ReadoutRefit(epochs=3, lr=0.002)


def test_refit_follows_limit_train_batches(tmp_path):
    model = MLCMClassifier(MLCM(**{**SMALL, "readout": "perceptron"}), readout_refit=ReadoutRefit(epochs=1))
    trainer(tmp_path, max_epochs=1, limit_train_batches=3, limit_val_batches=0).fit(model, datamodule=synthetic())
    assert model.readout_refit_report["samples"] == 3 * 16

