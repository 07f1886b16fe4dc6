"""Data for mlcm_torch: binary encodings of images and LightningDataModules serving them."""

from mlcm_torch.data.datamodules import (
    BinaryDataModule,
    EpochShuffleSampler,
    FashionMNISTDataModule,
    MNISTDataModule,
    ResumableDataLoader,
    SyntheticDataModule,
)
from mlcm_torch.data.encodings import RandomProjection, binarize

__all__ = [
    "BinaryDataModule",
    "EpochShuffleSampler",
    "FashionMNISTDataModule",
    "MNISTDataModule",
    "RandomProjection",
    "ResumableDataLoader",
    "SyntheticDataModule",
    "binarize",
]
