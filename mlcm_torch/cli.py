"""Command line: ``mlcm`` / ``lightning`` / ``python -m mlcm_torch`` — LightningCLI with
``fit``, ``validate``, ``test`` and ``predict``, ``class_path`` configs and ``--print_config``.

Any :class:`~mlcm_torch.training.ClassifierModule` (``MLCMClassifier``, the baselines) and
any LightningDataModule can be named by ``class_path``; without one, the model is
``MLCMClassifier`` and the data ``MNISTDataModule``.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from mlcm_torch.training import ClassifierModule


class MLCMCLI(LightningCLI):
    """LightningCLI with the package's default model and data."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.set_defaults(
            {
                "model": {"class_path": "mlcm_torch.training.MLCMClassifier"},
                "data": {"class_path": "mlcm_torch.data.MNISTDataModule"},
            }
        )


def cli(args: list[str] | None = None, run: bool = True) -> LightningCLI:
    """Build (and with ``run``, execute the subcommand of) the CLI on ``args`` (default:
    ``sys.argv[1:]``). With ``run=False`` there is no subcommand: the model, data and
    trainer are instantiated and returned for programmatic use."""
    return MLCMCLI(
        ClassifierModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        run=run,
        save_config_kwargs={"overwrite": True},
    )


def main() -> None:
    """Console entry point of ``mlcm`` and ``lightning``."""
    cli()
