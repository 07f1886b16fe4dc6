import sys

from mlcm_torch.experiments.cli import main

if __name__ == "__main__":
    sys.exit(main())
