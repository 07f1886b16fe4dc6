"""``python -m mlcm_torch``: the same CLI as the ``mlcm`` and ``lightning`` commands."""

from mlcm_torch.cli import main

main()
