"""Tests of mlcm_torch.data: encodings, data modules, the epoch sampler, errors."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from types import SimpleNamespace
from urllib.error import URLError

import lightning as L
import pytest
import torch
import torchvision.datasets.mnist
from torch.utils.data import DistributedSampler

from mlcm_torch.data import (
    EpochShuffleSampler,
    FashionMNISTDataModule,
    MNISTDataModule,
    RandomProjection,
    ResumableDataLoader,
    SyntheticDataModule,
    binarize,
)
from mlcm_torch.data.datamodules import DATA_DIR_ENV

from conftest import ARCHIVES, data_candidates, has_raw, require, skip_message

EXPECTED_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
IMAGE_MODULES = [MNISTDataModule, FashionMNISTDataModule]


def random_images(n: int = 32, seed: int = 0) -> torch.Tensor:
    """Random uint8 images of shape (n, 28, 28)."""
    return torch.randint(0, 256, (n, 28, 28), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def small_image_module(cls: type, data_dir: Path, **kwargs) -> MNISTDataModule:
    """An image data module on a small subset, prepared and set up for all stages."""
    options = {"val_size": 200, "limit_train": 300, "limit_test": 100} | kwargs
    module = cls(data_dir=str(data_dir), **options)
    module.prepare_data()
    module.setup()
    return module


# ----------------------------------------------------------------------------- encodings


@pytest.mark.parametrize("threshold", [0.0, 0.5, 0.9])
def test_binarize_thresholds_scaled_pixels(threshold: float) -> None:
    images = random_images()
    states = binarize(images, threshold)
    assert states.shape == (32, 784) and states.dtype == torch.float32
    expected = (images.reshape(32, -1).float() / 255 > threshold).float() * 2 - 1
    assert torch.equal(states, expected)


def test_binarize_state_encodings_agree() -> None:
    images = random_images()
    pm1 = binarize(images, 0.3, "pm1")
    zero_one = binarize(images, 0.3, "01")
    assert set(pm1.unique().tolist()) == {-1.0, 1.0}
    assert set(zero_one.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(pm1, 2 * zero_one - 1)


def test_binarize_float_pixels_equal_to_threshold_are_inactive() -> None:
    images = torch.tensor([[[0.25, 0.5], [0.75, 1.0]]])
    assert binarize(images, 0.5).tolist() == [[-1.0, -1.0, 1.0, 1.0]]


def test_projection_is_the_sign_of_a_scaled_gaussian_projection() -> None:
    projection = RandomProjection(784, 100, seed=3)
    assert projection.weight.shape == (100, 784)
    assert abs(projection.weight.std().item() * 28 - 1) < 0.02
    images = random_images()
    states = projection(images)
    assert states.shape == (32, 100) and states.dtype == torch.float32
    field = images.reshape(32, -1).float() / 255 @ projection.weight.T
    assert torch.equal(states, torch.where(field > 0, 1.0, -1.0))
    assert torch.equal(projection(images, "01"), (states + 1) / 2)


def test_projection_depends_only_on_its_seed() -> None:
    images = random_images()
    torch.manual_seed(123)
    first = RandomProjection(784, 100, seed=7)
    torch.manual_seed(456)
    second = RandomProjection(784, 100, seed=7)
    assert torch.equal(first.weight, second.weight)
    assert torch.equal(first(images), second(images))
    other = RandomProjection(784, 100, seed=8)
    assert not torch.equal(first(images), other(images))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: binarize(random_images(), 1.5), "threshold=1.5"),
        (lambda: binarize(random_images(), -0.1), "threshold=-0.1"),
        (lambda: binarize(random_images(), 0.5, "bipolar"), "state_encoding='bipolar'"),
        (lambda: binarize(torch.full((2, 4), 2.0)), "expected [0, 1]"),
        (lambda: binarize(torch.zeros(4, dtype=torch.uint8)), "sample dimension"),
        (lambda: RandomProjection(784, 0), "out_features=0"),
        (lambda: RandomProjection(0, 10), "in_features=0"),
        (lambda: RandomProjection(784, 10)(torch.zeros(2, 10, 10, dtype=torch.uint8)), "expects 784"),
    ],
)
def test_encodings_reject_bad_arguments(call, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


# ----------------------------------------------------------------------------- synthetic data


def test_synthetic_shapes_and_loaders() -> None:
    module = SyntheticDataModule(num_classes=4, in_features=30, train_size=100, val_size=20, test_size=10, batch_size=8)
    assert (module.in_features, module.num_classes) == (30, 4)
    module.setup("fit")
    x, y = next(iter(module.train_dataloader()))
    assert x.shape == (8, 30) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert set(x.unique().tolist()) <= {-1.0, 1.0}
    assert [len(batch[0]) for batch in module.val_dataloader()] == [20]
    assert len(module.test_dataloader().dataset) == 10
    assert len(module.predict_dataloader().dataset) == 10


def test_synthetic_flip_probability_and_class_balance() -> None:
    module = SyntheticDataModule(num_classes=5, in_features=100, flip_prob=0.2, train_size=2000, sample_seed=1)
    module.setup()
    x, y = module.dataset("train").tensors
    flipped = (x != module.prototypes[y]).float().mean().item()
    assert abs(flipped - 0.2) < 0.01
    counts = torch.bincount(y, minlength=5)
    assert counts.min() > 0.8 * 2000 / 5
    assert set(module.prototypes.unique().tolist()) == {-1.0, 1.0}


def test_synthetic_is_seeded_and_splits_are_independent_streams() -> None:
    def splits(**kwargs) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        module = SyntheticDataModule(in_features=50, **kwargs)
        module.setup()
        return {name: module.dataset(name).tensors for name in ("train", "val", "test")}

    torch.manual_seed(0)
    first = splits(sample_seed=5)
    torch.manual_seed(1)
    again = splits(sample_seed=5)
    for name in first:
        assert all(torch.equal(a, b) for a, b in zip(first[name], again[name]))
    other = splits(sample_seed=6)
    assert not torch.equal(first["train"][0], other["train"][0])
    resized = splits(sample_seed=5, train_size=100)
    assert torch.equal(resized["test"][0], first["test"][0])
    assert len(resized["train"][0]) == 100


def test_synthetic_zero_one_encoding_and_no_validation() -> None:
    module = SyntheticDataModule(state_encoding="01", val_size=0)
    module.setup()
    assert set(module.dataset("train").tensors[0].unique().tolist()) == {0.0, 1.0}
    assert module.val_dataloader() == []


def test_loaders_need_setup() -> None:
    with pytest.raises(RuntimeError, match="setup"):
        SyntheticDataModule().train_dataloader()


# ----------------------------------------------------------------------------- sampler


def epoch_order(sampler: EpochShuffleSampler, epoch: int) -> list[int]:
    """The indices ``sampler`` yields in ``epoch``."""
    sampler.set_epoch(epoch)
    return list(sampler)


def test_sampler_order_is_a_function_of_seed_and_epoch() -> None:
    data = range(100)
    torch.manual_seed(0)
    first = epoch_order(EpochShuffleSampler(data, seed=3), 2)
    torch.manual_seed(1)
    assert epoch_order(EpochShuffleSampler(data, seed=3), 2) == first
    assert sorted(first) == list(range(100)) and first != list(range(100))
    assert epoch_order(EpochShuffleSampler(data, seed=3), 1) != first
    assert epoch_order(EpochShuffleSampler(data, seed=4), 2) != first


def test_sampler_shards_disjointly_over_replicas() -> None:
    shards = [epoch_order(EpochShuffleSampler(range(10), seed=0, num_replicas=3, rank=r), 1) for r in range(3)]
    assert [len(shard) for shard in shards] == [4, 4, 4]
    single = epoch_order(EpochShuffleSampler(range(10), seed=0), 1)
    padded = single + single[:2]
    assert [padded[r::3] for r in range(3)] == shards


def test_train_loader_uses_the_trainer_replica_layout() -> None:
    module = SyntheticDataModule(train_size=10)
    module.setup()
    module.trainer = SimpleNamespace(distributed_sampler_kwargs={"num_replicas": 2, "rank": 1})
    sampler = module.train_dataloader().sampler
    # A DistributedSampler is left as it is by Lightning's distributed sampler injection.
    assert isinstance(sampler, EpochShuffleSampler) and isinstance(sampler, DistributedSampler)
    assert (sampler.num_replicas, sampler.rank, len(sampler)) == (2, 1, 5)


class RecordingModel(L.LightningModule):
    """A linear classifier that records the inputs of every training batch."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(12, 3)
        self.seen: list[tuple[int, torch.Tensor]] = []

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        self.seen.append((self.current_epoch, x.clone()))
        return torch.nn.functional.cross_entropy(self.linear(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(max_epochs: int, ckpt_path: Path | None = None, save_to: Path | None = None,
        callbacks: list | None = None) -> RecordingModel:
    """Fit a RecordingModel on a tiny synthetic set; optionally resume or save a checkpoint."""
    module = SyntheticDataModule(num_classes=3, in_features=12, train_size=24, val_size=0, batch_size=6)
    model = RecordingModel()
    trainer = L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=bool(callbacks),
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=module, ckpt_path=ckpt_path)
    if save_to is not None:
        trainer.save_checkpoint(save_to)
    return model


@pytest.mark.filterwarnings("ignore")
def test_lightning_sets_the_epoch_and_resumes_with_the_same_batches(tmp_path: Path) -> None:
    uninterrupted = fit(max_epochs=3)
    epochs = [[x for epoch, x in uninterrupted.seen if epoch == e] for e in range(3)]
    assert not torch.equal(torch.cat(epochs[1]), torch.cat(epochs[2]))
    fit(max_epochs=1, save_to=tmp_path / "epoch1.ckpt")
    torch.manual_seed(999)
    resumed = fit(max_epochs=3, ckpt_path=tmp_path / "epoch1.ckpt")
    assert [epoch for epoch, _ in resumed.seen] == [1] * 4 + [2] * 4
    assert torch.equal(torch.cat([x for _, x in resumed.seen]), torch.cat(epochs[1] + epochs[2]))


class InterruptAt(L.Callback):
    """Raises KeyboardInterrupt (as Ctrl-C does) after the given global step."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise KeyboardInterrupt


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("saved_at", [2, 4, 6])  # mid-epoch 0, end of epoch 0 (before its end hooks), mid-epoch 1
def test_lightning_resumes_mid_epoch_with_the_remaining_batches(tmp_path: Path, saved_at: int) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    uninterrupted = fit(max_epochs=3)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=saved_at, save_top_k=0, save_last=True)
    with pytest.raises(SystemExit):  # Lightning's answer to Ctrl-C
        fit(max_epochs=3, callbacks=[InterruptAt(saved_at + 1), checkpoint])
    assert torch.load(tmp_path / "last.ckpt", weights_only=False)["global_step"] == saved_at
    torch.manual_seed(999)
    resumed = fit(max_epochs=3, ckpt_path=tmp_path / "last.ckpt")
    # 12 batches in all (3 epochs of 4): the resumed run trains exactly the ones not done, in order.
    assert len(resumed.seen) == 12 - saved_at
    assert [e for e, _ in resumed.seen] == [e for e, _ in uninterrupted.seen[saved_at:]]
    assert torch.equal(torch.cat([x for _, x in resumed.seen]), torch.cat([x for _, x in uninterrupted.seen[saved_at:]]))


def test_resumable_loader_state_skips_the_batches_handed_out() -> None:
    module = SyntheticDataModule(num_classes=3, in_features=12, train_size=30, val_size=0, batch_size=4)
    module.setup()
    loader = module.train_dataloader()
    assert isinstance(loader, ResumableDataLoader) and len(loader) == 8
    loader.sampler.set_epoch(2)
    full = [y for _, y in loader]
    iterator = iter(loader)
    for _ in range(3):
        next(iterator)
    state = loader.state_dict()
    assert state == {"epoch": 2, "batches": 3}
    fresh = module.train_dataloader()
    fresh.load_state_dict(state)
    assert len(fresh) == 8  # Lightning counts the epoch's batches from the loader's length
    fresh.sampler.set_epoch(2)
    rest = [y for _, y in fresh]
    assert len(rest) == 5 and all(torch.equal(a, b) for a, b in zip(rest, full[3:]))
    assert fresh.state_dict() == {"epoch": 2, "batches": 8}
    assert len([y for _, y in fresh]) == 8  # once only: the next pass is whole
    other = module.train_dataloader()
    other.load_state_dict(state)
    other.sampler.set_epoch(3)  # another epoch than the saved one: no skipping
    assert len(list(other)) == 8


# ----------------------------------------------------------------------------- MNIST and Fashion-MNIST


@pytest.mark.parametrize("cls", IMAGE_MODULES)
def test_image_module_splits_and_shapes(cls: type, shared_data_dir: Path) -> None:
    require(shared_data_dir, cls.dataset_class.__name__)
    module = small_image_module(cls, shared_data_dir)
    assert (module.in_features, module.num_classes) == (784, 10)
    sizes = {name: len(module.dataset(name)) for name in ("train", "val", "test")}
    assert sizes == {"train": 300, "val": 200, "test": 100}
    for name in sizes:
        x, y = module.dataset(name).tensors
        assert x.shape[1] == 784 and x.dtype == torch.float32
        assert set(x.unique().tolist()) == {-1.0, 1.0}
        assert y.dtype == torch.int64 and 0 <= y.min() and y.max() <= 9
    x, y = next(iter(module.train_dataloader()))
    assert x.shape == (16, 784) and y.shape == (16,)


def test_mnist_default_validation_split_is_seeded(shared_data_dir: Path) -> None:
    first = MNISTDataModule(data_dir=str(shared_data_dir), limit_train=10)
    first.prepare_data()
    first.setup("validate")
    assert len(first.dataset("val")) == 5000
    again = MNISTDataModule(data_dir=str(shared_data_dir), limit_train=10)
    again.setup("fit")
    assert torch.equal(first.dataset("val").tensors[1], again.dataset("val").tensors[1])
    other = MNISTDataModule(data_dir=str(shared_data_dir), limit_train=10, split_seed=1)
    other.setup("fit")
    assert not torch.equal(first.dataset("val").tensors[1], other.dataset("val").tensors[1])


def test_mnist_projected_encoding(shared_data_dir: Path) -> None:
    kwargs = {"encoding": "projected", "projection_dim": 100, "projection_seed": 2}
    module = small_image_module(MNISTDataModule, shared_data_dir, **kwargs)
    assert module.in_features == 100
    for name in ("train", "val", "test"):
        assert module.dataset(name).tensors[0].shape[1] == 100
    images = torchvision.datasets.MNIST(str(shared_data_dir), train=False).data[:100]
    assert torch.equal(module.dataset("test").tensors[0], RandomProjection(784, 100, seed=2)(images))
    zero_one = small_image_module(MNISTDataModule, shared_data_dir, state_encoding="01", **kwargs)
    assert torch.equal(zero_one.dataset("train").tensors[0], (module.dataset("train").tensors[0] + 1) / 2)


def test_mnist_without_validation(shared_data_dir: Path) -> None:
    module = small_image_module(MNISTDataModule, shared_data_dir, val_size=0)
    assert module.val_dataloader() == []


def test_data_dir_comes_from_the_environment(shared_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert MNISTDataModule().data_dir == Path("data")
    monkeypatch.setenv(DATA_DIR_ENV, str(shared_data_dir))
    module = MNISTDataModule(limit_train=10, limit_test=10)
    assert module.data_dir == shared_data_dir
    module.prepare_data()
    module.setup("test")
    assert len(module.dataset("test")) == 10
    assert MNISTDataModule(data_dir="elsewhere").data_dir == Path("elsewhere")


# ----------------------------------------------------------------------------- missing data


def assert_names_folder_and_files(error: pytest.ExceptionInfo, folder: Path) -> None:
    """The error message names the raw folder and the four expected files."""
    message = str(error.value)
    assert str(folder) in message
    for name in EXPECTED_FILES:
        assert name in message


@pytest.mark.parametrize("cls", IMAGE_MODULES)
def test_missing_data_without_download(cls: type, tmp_path: Path) -> None:
    module = cls(data_dir=str(tmp_path), download=False)
    with pytest.raises(FileNotFoundError) as error:
        module.prepare_data()
    assert_names_folder_and_files(error, tmp_path / cls.dataset_class.__name__ / "raw")
    assert "download=False" in str(error.value)


def test_missing_data_when_download_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs) -> None:
        raise URLError("no network")

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", offline)
    with pytest.raises(FileNotFoundError) as error:
        MNISTDataModule(data_dir=str(tmp_path), download=True).prepare_data()
    assert_names_folder_and_files(error, tmp_path / "MNIST" / "raw")
    assert "no network" in str(error.value)


def test_a_wrong_data_dir_creates_no_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs) -> None:
        raise URLError("no network")

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", offline)
    wrong = tmp_path / "dta" / "mnist"
    with pytest.raises(FileNotFoundError, match="not available in"):
        MNISTDataModule(data_dir=str(wrong), download=True).prepare_data()
    assert list(tmp_path.iterdir()) == []  # neither dta/, dta/mnist/ nor dta/mnist/MNIST/raw/ was left
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(FileNotFoundError):
        MNISTDataModule(data_dir=str(existing), download=True).prepare_data()
    assert existing.is_dir() and list(existing.iterdir()) == []  # the user's folder stays, empty


def test_tests_find_the_data_in_the_environment_then_data_then_shared(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ARCHIVES:
        (raw / f"{name}.gz").write_bytes(b"")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    labels = [label for label, _ in data_candidates()]
    assert labels == ["$MLCM_DATA_DIR", "./data", "../shared/data"]
    assert data_candidates()[0][1] == tmp_path and has_raw(tmp_path, "MNIST")
    assert not has_raw(tmp_path, "FashionMNIST")
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    assert not has_raw(tmp_path, "MNIST")
    message = skip_message("MNIST")
    assert str(tmp_path) in message and "./data" in message and "../shared/data" in message
    assert "MLCM_DATA_DIR=" in message and "train-images-idx3-ubyte.gz" in message


def test_packed_archives_need_prepare_data(shared_data_dir: Path, tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in EXPECTED_FILES:
        shutil.copy(shared_data_dir / "MNIST" / "raw" / name, raw / name)
    module = MNISTDataModule(data_dir=str(tmp_path), limit_test=10)
    with pytest.raises(FileNotFoundError, match="not unpacked"):
        module.setup("test")
    module.prepare_data()
    module.setup("test")
    assert len(module.dataset("test")) == 10


# ----------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("cls", "name", "value"),
    [
        (MNISTDataModule, "encoding", "gray"),
        (MNISTDataModule, "threshold", 1.5),
        (MNISTDataModule, "threshold", -0.5),
        (MNISTDataModule, "projection_dim", 0),
        (MNISTDataModule, "state_encoding", "bipolar"),
        (MNISTDataModule, "val_size", -1),
        (FashionMNISTDataModule, "val_size", 60000),
        (MNISTDataModule, "limit_train", 0),
        (MNISTDataModule, "limit_train", 55001),
        (MNISTDataModule, "limit_test", 10001),
        (MNISTDataModule, "batch_size", 0),
        (MNISTDataModule, "eval_batch_size", 0),
        (MNISTDataModule, "num_workers", -1),
        (SyntheticDataModule, "flip_prob", 0.6),
        (SyntheticDataModule, "flip_prob", -0.1),
        (SyntheticDataModule, "num_classes", 1),
        (SyntheticDataModule, "in_features", 0),
        (SyntheticDataModule, "train_size", 0),
        (SyntheticDataModule, "val_size", -1),
        (SyntheticDataModule, "test_size", 0),
        (SyntheticDataModule, "state_encoding", "pm"),
    ],
)
def test_bad_arguments_are_named(cls: type, name: str, value: object) -> None:
    with pytest.raises(ValueError, match=re.escape(f"{name}={value!r}")):
        cls(**{name: value})
