"""LightningDataModules serving binary input states as in-memory TensorDatasets.

All datasets are encoded once, as whole tensors, in ``setup``; batches are float32
states ``x`` of width :attr:`BinaryDataModule.in_features` and int64 labels ``y``.

The training loader shuffles with :class:`EpochShuffleSampler`, whose order is a pure
function of ``(shuffle_seed, epoch)``. Lightning calls its ``set_epoch`` at the start
of every training epoch (with the number of epochs already processed, which a
checkpoint restores), so a run resumed from an epoch-end checkpoint sees the same
batches as an uninterrupted one, whatever the global RNG state. The sampler shards
the permutation across processes itself; being a ``DistributedSampler``, Lightning
leaves it in place instead of wrapping it (``use_distributed_sampler`` has no effect
on the training loader). Validation and test loaders are sequential; under a
distributed run Lightning shards them with its own ``DistributedSampler``.

Mid-epoch resume is exact too: the training loader is a :class:`ResumableDataLoader`,
whose ``state_dict`` (the epoch and the number of batches it has handed out in it) Lightning
stores in every checkpoint and gives back on resume; the restored epoch then continues
with the next batch of the same order instead of starting the epoch's loader again (which
Lightning does with a plain ``DataLoader``: it would repeat the first batches of the epoch
and never reach its last ones).
"""

from __future__ import annotations

import itertools
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sized
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
import torch.distributed as dist
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
from torchvision.datasets import MNIST, FashionMNIST

from mlcm_torch.data.encodings import RandomProjection, binarize, check_state_encoding, check_threshold, to_states

if TYPE_CHECKING:
    from lightning.pytorch import Trainer

DATA_DIR_ENV = "MLCM_DATA_DIR"
"""Environment variable naming the data folder when ``data_dir`` is not given."""

DEFAULT_DATA_DIR = "./data"
"""Data folder used when neither ``data_dir`` nor ``MLCM_DATA_DIR`` is set."""

INPUT_ENCODINGS = ("binary", "projected")
"""Accepted values of the image data modules' ``encoding`` argument."""


def resolve_data_dir(data_dir: str | None) -> Path:
    """Return ``data_dir``, else ``$MLCM_DATA_DIR`` when set and non-empty, else ``./data``."""
    if data_dir is not None:
        return Path(data_dir)
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def _check_at_least(name: str, value: int, minimum: int) -> None:
    """Raise ``ValueError`` naming the argument unless ``value >= minimum``."""
    if value < minimum:
        raise ValueError(f"{name}={value!r} is invalid; expected an integer >= {minimum}")


class EpochShuffleSampler(DistributedSampler):
    """Shuffling sampler whose order depends only on ``(seed, epoch)`` and the replica.

    Each epoch draws ``torch.randperm(len(dataset))`` from a private generator seeded
    with ``seed + epoch`` (the ``DistributedSampler`` convention), pads it by
    wrapping around to a multiple of ``num_replicas`` and keeps every
    ``num_replicas``-th index starting at ``rank``: the replicas get disjoint shards of
    equal length that together cover the dataset. Unlike a plain
    ``DistributedSampler`` it needs no process group: the defaults describe a single
    process.

    Args:
        dataset: the sized dataset to sample from.
        seed: shuffling seed.
        num_replicas: number of processes sharing the epoch.
        rank: index of this process among them.
    """

    def __init__(self, dataset: Sized, seed: int = 0, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self._resume: tuple[int, int] | None = None

    def resume(self, epoch: int, start: int) -> None:
        """Make the next pass over ``epoch`` begin at position ``start`` of this replica's shard
        (the samples before it were used before an interruption). Once only: it is forgotten when
        that pass begins, or when an epoch other than ``epoch`` is iterated first. ``len`` stays
        the full shard length."""
        if start < 0:
            raise ValueError(f"start={start!r} is invalid; expected an integer >= 0")
        self._resume = (int(epoch), int(start))

    def __iter__(self) -> Iterator[int]:
        indices = super().__iter__()
        resume, self._resume = self._resume, None
        if resume is not None and resume[0] == self.epoch:
            return itertools.islice(indices, resume[1], None)
        return indices


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` over an :class:`EpochShuffleSampler` that Lightning can resume mid-epoch.

    It counts the batches it hands out in the current epoch; :meth:`state_dict` returns that
    count with the sampler's epoch. Lightning saves the state of every training loader that has
    ``state_dict``/``load_state_dict`` in its checkpoints and, when it resumes a checkpoint taken
    before the end of an epoch, gives it back through :meth:`load_state_dict` before iterating:
    the sampler then skips the samples of the batches already trained on, so the resumed run sees
    the remaining batches of that epoch in the original order (Lightning already continues its
    own batch count from the checkpoint). The iterator is created lazily, on the first batch,
    hence after Lightning's ``set_epoch``, worker processes included.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, EpochShuffleSampler):
            raise ValueError(f"ResumableDataLoader needs an EpochShuffleSampler, got {type(self.sampler).__name__}")
        self._epoch, self._batches = self.sampler.epoch, 0

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        return self._counting()

    def _counting(self) -> Iterator[Any]:
        epoch, resume = self.sampler.epoch, self.sampler._resume
        start = resume[1] // self.batch_size if resume is not None and resume[0] == epoch else 0
        iterator = super().__iter__()
        self._epoch, self._batches = epoch, start
        for batch in iterator:
            self._batches += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """``{"epoch": e, "batches": k}``: k batches of epoch e were handed out."""
        return {"epoch": int(self._epoch), "batches": int(self._batches)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue epoch ``state["epoch"]`` after its first ``state["batches"]`` batches."""
        self.sampler.resume(state["epoch"], state["batches"] * self.batch_size)


def replica_layout(trainer: Trainer | None) -> tuple[int, int]:
    """Return ``(num_replicas, rank)`` of the current run.

    Taken from the trainer's strategy when it is distributed (what Lightning itself
    uses to shard data), else from an initialised ``torch.distributed`` process group,
    else ``(1, 0)``.
    """
    kwargs = trainer.distributed_sampler_kwargs if trainer is not None else None
    if kwargs:
        return int(kwargs["num_replicas"]), int(kwargs["rank"])
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class BinaryDataModule(LightningDataModule, ABC):
    """Base of the data modules: loaders over in-memory splits of binary states.

    Subclasses fill the splits in ``setup`` with :meth:`_store`; a split stored as
    ``None`` is deliberately empty and its loader is an empty list, for which
    Lightning runs no batches (it warns that the loader list has length zero).

    Args:
        batch_size: training batch size.
        eval_batch_size: batch size of the validation, test and predict loaders.
        num_workers: DataLoader worker processes (0 loads in the main process).
        state_encoding: ``"pm1"`` for states in {-1, +1}, ``"01"`` for {0, 1}.
        shuffle_seed: seed of the training order (see :class:`EpochShuffleSampler`).
    """

    def __init__(
        self,
        batch_size: int = 16,
        eval_batch_size: int = 1024,
        num_workers: int = 0,
        state_encoding: str = "pm1",
        shuffle_seed: int = 0,
    ) -> None:
        super().__init__()
        _check_at_least("batch_size", batch_size, 1)
        _check_at_least("eval_batch_size", eval_batch_size, 1)
        _check_at_least("num_workers", num_workers, 0)
        check_state_encoding(state_encoding)
        self.save_hyperparameters()
        self._splits: dict[str, TensorDataset | None] = {}

    @property
    @abstractmethod
    def in_features(self) -> int:
        """Width of the encoded inputs."""

    @property
    @abstractmethod
    def num_classes(self) -> int:
        """Number of label classes."""

    def _store(self, split: str, states: Tensor | None, labels: Tensor | None = None) -> None:
        """Keep a split as a TensorDataset of float32 states and int64 labels (or float32 target
        vectors), or as empty."""
        if states is not None:
            labels = labels.to(torch.float32) if labels.is_floating_point() else labels.to(torch.int64)
        self._splits[split] = None if states is None else TensorDataset(states, labels)

    def _has(self, split: str) -> bool:
        """Whether ``setup`` already prepared ``split`` (possibly as deliberately empty)."""
        return split in self._splits

    def dataset(self, split: str) -> TensorDataset | None:
        """The ``"train"``, ``"val"`` or ``"test"`` TensorDataset (``None`` if deliberately empty).

        Raises:
            RuntimeError: when ``setup`` has not prepared that split yet.
        """
        if split not in self._splits:
            raise RuntimeError(f"the {split!r} split is not set up; call setup() for its stage first")
        return self._splits[split]

    def _loader_options(self) -> dict[str, int | bool]:
        """DataLoader options shared by all loaders."""
        workers = self.hparams.num_workers
        return {"num_workers": workers, "persistent_workers": workers > 0}

    def train_dataloader(self) -> ResumableDataLoader:
        """Training batches in the order of an :class:`EpochShuffleSampler` sharded over replicas, resumable
        mid-epoch (:class:`ResumableDataLoader`)."""
        dataset = self.dataset("train")
        num_replicas, rank = replica_layout(self.trainer)
        sampler = EpochShuffleSampler(dataset, seed=self.hparams.shuffle_seed, num_replicas=num_replicas, rank=rank)
        return ResumableDataLoader(dataset, batch_size=self.hparams.batch_size, sampler=sampler,
                                   **self._loader_options())

    def _eval_loader(self, split: str) -> DataLoader | list:
        """Sequential loader over ``split``; an empty list when the split is deliberately empty."""
        dataset = self.dataset(split)
        if dataset is None:
            return []
        return DataLoader(dataset, batch_size=self.hparams.eval_batch_size, shuffle=False, **self._loader_options())

    def val_dataloader(self) -> DataLoader | list:
        """Validation batches, or an empty list (no validation) when ``val_size`` is 0."""
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader | list:
        """Test batches."""
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader | list:
        """Prediction batches: the test set."""
        return self._eval_loader("test")


def _expected_files(dataset_class: type[MNIST]) -> list[str]:
    """Names of the original ``.gz`` archives torchvision expects for ``dataset_class``."""
    return [name for name, _md5 in dataset_class.resources]


def _unavailable_message(dataset_class: type[MNIST], folder: Path, download: bool, error: Exception) -> str:
    """Explain why a torchvision dataset could not be loaded from ``folder`` and what to do."""
    expected = _expected_files(dataset_class)
    missing = [name for name in expected if not (folder / name).exists() and not (folder / name[:-3]).exists()]
    lines = [
        f"{dataset_class.__name__} is not available in {folder}.",
        f"Expected the four original files there: {', '.join(expected)}.",
    ]
    if missing:
        lines.append(f"Missing: {', '.join(missing)}.")
    if download:
        lines.append(f"Downloading failed (no network?); torchvision reported: {error}")
    elif missing:
        lines.append(
            "download=False: copy the files there, or set download=True (it fetches only files that are "
            "missing or fail their md5 check, and unpacks them)."
        )
    else:
        lines.append(
            "The archives are there but not unpacked: run prepare_data() with download=True, which verifies "
            "and unpacks them without network access."
        )
    return "\n".join(lines)


def load_torchvision_images(
    dataset_class: type[MNIST], root: Path, train: bool, download: bool
) -> tuple[Tensor, Tensor]:
    """Load a whole MNIST-format torchvision split as ``(uint8 images, int64 labels)``.

    Raises:
        FileNotFoundError: when the files are absent and cannot be downloaded; the
            message names the folder and the four files expected.
    """
    folder = root / dataset_class.__name__ / "raw"
    created = [path for path in (folder, folder.parent, *folder.parent.parents) if not path.exists()]
    try:
        dataset = dataset_class(str(root), train=train, download=download)
    except RuntimeError as error:
        _remove_empty(created)
        raise FileNotFoundError(_unavailable_message(dataset_class, folder, download, error)) from error
    return dataset.data, dataset.targets.to(torch.int64)


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders (deepest first) that a failed download created and left empty, so that a
    wrong ``data_dir`` leaves nothing behind."""
    for path in folders:
        try:
            path.rmdir()
        except OSError:  # not empty, or not there
            break


class _ImageDataModule(BinaryDataModule):
    """Shared implementation of the 28x28 grey-scale torchvision data modules.

    The validation split is ``val_size`` images held out from the official training
    set by a permutation seeded with ``split_seed``; the test split is the official
    test set.

    Args:
        data_dir: folder holding ``<dataset>/raw/``; ``None`` uses the environment
            variable ``MLCM_DATA_DIR`` when set, else ``./data``.
        download: let torchvision fetch missing files in ``prepare_data``. With the
            original ``.gz`` files already in ``<data_dir>/<dataset>/raw/`` it only
            verifies and unpacks them, without network access.
        batch_size: training batch size.
        eval_batch_size: batch size of the validation, test and predict loaders.
        num_workers: DataLoader worker processes (0 loads in the main process).
        encoding: ``"binary"`` thresholds the pixels (width 784); ``"projected"``
            takes the sign of a seeded random Gaussian projection (width
            ``projection_dim``), see :class:`~mlcm_torch.data.encodings.RandomProjection`.
        threshold: pixel threshold in [0, 1] of the ``"binary"`` encoding; a pixel
            scaled to [0, 1] is active when strictly above it.
        projection_dim: output width D of the ``"projected"`` encoding (100 gives
            entangled MNIST).
        projection_seed: seed of the projection matrix of the ``"projected"`` encoding.
        state_encoding: ``"pm1"`` for states in {-1, +1}, ``"01"`` for {0, 1}.
        val_size: number of training images held out for validation; 0 disables
            validation (the val loader is empty).
        split_seed: seed of the train/validation split.
        shuffle_seed: seed of the training order (see :class:`EpochShuffleSampler`).
        limit_train: keep only this many training images (after the validation split);
            ``None`` keeps all.
        limit_test: keep only the first this many test images; ``None`` keeps all.
    """

    dataset_class: ClassVar[type[MNIST]]
    image_pixels: ClassVar[int] = 28 * 28
    train_set_size: ClassVar[int] = 60_000
    test_set_size: ClassVar[int] = 10_000

    def __init__(
        self,
        data_dir: str | None = None,
        download: bool = True,
        batch_size: int = 16,
        eval_batch_size: int = 1024,
        num_workers: int = 0,
        encoding: str = "binary",
        threshold: float = 0.5,
        projection_dim: int = 784,
        projection_seed: int = 0,
        state_encoding: str = "pm1",
        val_size: int = 5000,
        split_seed: int = 0,
        shuffle_seed: int = 0,
        limit_train: int | None = None,
        limit_test: int | None = None,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, state_encoding, shuffle_seed)
        self._check_arguments(encoding, threshold, projection_dim, val_size, limit_train, limit_test)
        self._data_dir = resolve_data_dir(data_dir)
        self._projection = (
            RandomProjection(self.image_pixels, projection_dim, projection_seed) if encoding == "projected" else None
        )

    def _check_arguments(
        self,
        encoding: str,
        threshold: float,
        projection_dim: int,
        val_size: int,
        limit_train: int | None,
        limit_test: int | None,
    ) -> None:
        """Raise ``ValueError`` naming the first invalid argument."""
        if encoding not in INPUT_ENCODINGS:
            raise ValueError(f"encoding={encoding!r} is not supported; expected one of {INPUT_ENCODINGS}")
        check_threshold(threshold)
        _check_at_least("projection_dim", projection_dim, 1)
        if not 0 <= val_size < self.train_set_size:
            raise ValueError(
                f"val_size={val_size!r} is invalid; expected 0 <= val_size < {self.train_set_size} "
                f"(the size of the {self.dataset_class.__name__} training set)"
            )
        if limit_train is not None and not 1 <= limit_train <= self.train_set_size - val_size:
            raise ValueError(
                f"limit_train={limit_train!r} is invalid; expected None or 1..{self.train_set_size - val_size} "
                f"(training images left after val_size={val_size})"
            )
        if limit_test is not None and not 1 <= limit_test <= self.test_set_size:
            raise ValueError(f"limit_test={limit_test!r} is invalid; expected None or 1..{self.test_set_size}")

    @property
    def data_dir(self) -> Path:
        """The resolved data folder."""
        return self._data_dir

    @property
    def in_features(self) -> int:
        """784 for the ``"binary"`` encoding, ``projection_dim`` for ``"projected"``."""
        return self.image_pixels if self._projection is None else self._projection.out_features

    @property
    def num_classes(self) -> int:
        """10."""
        return 10

    def encode(self, images: Tensor) -> Tensor:
        """Encode uint8 images into float32 states with this module's encoding."""
        state_encoding = self.hparams.state_encoding
        if self._projection is None:
            return binarize(images, self.hparams.threshold, state_encoding)
        return self._projection(images, state_encoding)

    def _load(self, train: bool, download: bool) -> tuple[Tensor, Tensor]:
        """Load the official training or test set."""
        return load_torchvision_images(self.dataset_class, self._data_dir, train, download)

    def prepare_data(self) -> None:
        """Make sure both official sets are on disk (downloading or unpacking if allowed)."""
        for train in (True, False):
            self._load(train, self.hparams.download)

    def setup(self, stage: str | None = None) -> None:
        """Load and encode the splits ``stage`` needs (all of them when ``stage`` is None)."""
        if stage in (None, "fit", "validate") and not self._has("train"):
            self._setup_train_and_val()
        if stage in (None, "test", "predict") and not self._has("test"):
            self._setup_test()

    def _setup_train_and_val(self) -> None:
        """Split the official training set into validation and (limited) training splits."""
        images, labels = self._load(train=True, download=False)
        generator = torch.Generator().manual_seed(self.hparams.split_seed)
        order = torch.randperm(len(images), generator=generator)
        val_size = self.hparams.val_size
        val_index = order[:val_size]
        train_index = order[val_size:][: self.hparams.limit_train]
        self._store("train", self.encode(images[train_index]), labels[train_index])
        if val_size:
            self._store("val", self.encode(images[val_index]), labels[val_index])
        else:
            self._store("val", None)

    def _setup_test(self) -> None:
        """Encode the official test set (its first ``limit_test`` images)."""
        images, labels = self._load(train=False, download=False)
        limit = self.hparams.limit_test
        self._store("test", self.encode(images[:limit]), labels[:limit])


class MNISTDataModule(_ImageDataModule):
    """MNIST handwritten digits as binary states; the arguments are those of the shared base class."""

    dataset_class = MNIST


class FashionMNISTDataModule(_ImageDataModule):
    """Fashion-MNIST clothing images as binary states; the arguments are those of the shared base class."""

    dataset_class = FashionMNIST


class SyntheticDataModule(BinaryDataModule):
    """Random binary data: noisy prototypes (classification) or random hetero-associations.

    ``task="prototypes"``: ``num_classes`` prototypes of width ``in_features`` are drawn
    uniformly from {-1, +1}; each sample takes a uniformly random class and flips every bit of
    its prototype independently with probability ``flip_prob``. The prototypes and each split
    are drawn from their own generators derived from ``sample_seed``, so a split does not
    change when the size of another one does.

    ``task="hetero"``: hetero-association, P = ``train_size`` random inputs, each with a random
    ±1 target vector of width ``num_classes`` (labels are float (P, C) tensors); the
    validation and test splits are the training pairs themselves (the task is to store them:
    the load is α = P / N). ``flip_prob``, ``val_size`` and ``test_size`` are not used.

    Args:
        num_classes: number of classes (prototypes), at least 2; the target width C for
            ``hetero``.
        in_features: width D of the states.
        flip_prob: probability in [0, 0.5] of flipping each bit.
        train_size: number of training samples.
        val_size: number of validation samples; 0 disables validation.
        test_size: number of test samples.
        sample_seed: seed of the prototypes and samples (named apart from the model's ``seed``,
            since Lightning merges model and data hyperparameters when logging).
        batch_size: training batch size.
        eval_batch_size: batch size of the validation, test and predict loaders.
        num_workers: DataLoader worker processes (0 loads in the main process).
        state_encoding: ``"pm1"`` for states in {-1, +1}, ``"01"`` for {0, 1}.
        shuffle_seed: seed of the training order (see :class:`EpochShuffleSampler`).
        task: ``prototypes`` (classification) or ``hetero`` (random ±1 target vectors).
    """

    _SPLIT_STREAMS: ClassVar[dict[str, int]] = {"train": 1, "val": 2, "test": 3}

    def __init__(
        self,
        num_classes: int = 10,
        in_features: int = 100,
        flip_prob: float = 0.1,
        train_size: int = 2048,
        val_size: int = 512,
        test_size: int = 512,
        sample_seed: int = 0,
        batch_size: int = 16,
        eval_batch_size: int = 1024,
        num_workers: int = 0,
        state_encoding: str = "pm1",
        shuffle_seed: int = 0,
        task: Literal["prototypes", "hetero"] = "prototypes",
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, state_encoding, shuffle_seed)
        if task not in ("prototypes", "hetero"):
            raise ValueError(f"task={task!r} is not supported; expected one of ['prototypes', 'hetero']")
        _check_at_least("num_classes", num_classes, 2)
        _check_at_least("in_features", in_features, 1)
        if not 0.0 <= flip_prob <= 0.5:
            raise ValueError(f"flip_prob={flip_prob!r} is outside [0, 0.5]")
        _check_at_least("train_size", train_size, 1)
        _check_at_least("val_size", val_size, 0)
        _check_at_least("test_size", test_size, 1)
        self._prototype_active = torch.rand(num_classes, in_features, generator=self._generator(0)) < 0.5

    @property
    def in_features(self) -> int:
        """Width D of the states."""
        return self.hparams.in_features

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return self.hparams.num_classes

    @property
    def prototypes(self) -> Tensor:
        """The ``(num_classes, in_features)`` prototypes in this module's state encoding."""
        return to_states(self._prototype_active, self.hparams.state_encoding)

    def _generator(self, stream: int) -> torch.Generator:
        """A CPU generator for one stream (0 prototypes, then one per split) of ``sample_seed``."""
        return torch.Generator().manual_seed(4 * self.hparams.sample_seed + stream)

    def _sample(self, split: str, size: int) -> tuple[Tensor, Tensor]:
        """Draw ``size`` labelled noisy prototypes for ``split``."""
        generator = self._generator(self._SPLIT_STREAMS[split])
        labels = torch.randint(self.num_classes, (size,), generator=generator)
        flips = torch.rand(size, self.in_features, generator=generator) < self.hparams.flip_prob
        return to_states(self._prototype_active[labels] ^ flips, self.hparams.state_encoding), labels

    def _hetero_pairs(self) -> tuple[Tensor, Tensor]:
        """P random inputs and their random ±1 target vectors."""
        generator = self._generator(self._SPLIT_STREAMS["train"])
        size = self.hparams.train_size
        inputs = torch.rand(size, self.in_features, generator=generator) < 0.5
        targets = torch.rand(size, self.num_classes, generator=generator) < 0.5
        return to_states(inputs, self.hparams.state_encoding), to_states(targets, "pm1")

    def setup(self, stage: str | None = None) -> None:
        """Draw all three splits (cheap, whatever the stage)."""
        if self._has("train"):
            return
        if self.hparams.task == "hetero":
            pairs = self._hetero_pairs()
            for split in ("train", "val", "test"):
                self._store(split, *pairs)
            return
        for split in ("train", "val", "test"):
            size = self.hparams[f"{split}_size"]
            if size:
                self._store(split, *self._sample(split, size))
            else:
                self._store(split, None)
