"""python -m mlcm_torch.physics <experiment> ...: see mlcm_torch.physics.cli."""

from mlcm_torch.physics.cli import main

main()
