"""CPU time of the bare engine step (relax with the label, local update) and of inference on a
config's real batches, at one thread, for comparing checkouts side by side on a noisy machine.

Process CPU time at one thread does not count the time the virtual machine gives to others,
so it varies less than wall time from run to run; comparisons should still alternate the
checkouts (each run is one process):

    for round in 1 2 3; do for root in OLD .; do
        (cd $root && PYTHONPATH=$root python $OLDPWD/benchmarks/train_step_cpu.py --config lightning_configs/mnist.yaml)
    done; done

The model and data module are built by the CLI from ``--config`` (as ``lightning fit`` would;
MNIST from ``$MLCM_DATA_DIR``); the loader's batches are split into the model's micro-batches
(``micro_batch_size``, else the loader's batch). ``--warmup`` steps, then ``--steps`` timed steps;
inference: the label-free relaxation and readout of ``--infer-batches`` validation batches. Prints
one JSON line, naming the ``mlcm_torch`` it imported.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from itertools import islice
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_throughput import _fit_overrides  # noqa: E402


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--steps", type=int, default=140)
    parser.add_argument("--infer-batches", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import mlcm_torch
    from mlcm_torch.cli import cli

    built = cli(_fit_overrides(args.config, "auto", "cpu"), run=False)
    network, datamodule = built.model.network, built.datamodule
    micro = getattr(built.model.hparams, "micro_batch_size", None)
    datamodule.setup("fit")
    batches = (pair for _ in iter(int, 1) for x, y in datamodule.train_dataloader()
               for pair in zip(x.split(micro or len(x)), y.split(micro or len(y))))
    steps = list(islice(batches, args.warmup + args.steps))
    samples = 0
    for index, (x, y) in enumerate(steps):
        if index == args.warmup:
            start = time.process_time()
        network.local_update(network.relax(x, y), x, y)
        samples += len(y) if index >= args.warmup else 0
    train = time.process_time() - start
    val = list(islice(datamodule.val_dataloader(), args.infer_batches))
    with torch.inference_mode():
        network(val[0][0])
        start, count = time.process_time(), 0
        for x, _ in val:
            network(x)
            count += len(x)
        infer = time.process_time() - start
    print(json.dumps({
        "config": args.config, "mlcm_torch": str(Path(mlcm_torch.__file__).parent), "version": mlcm_torch.__version__,
        "threads": 1, "micro_batch_size": micro, "train_steps": args.steps,
        "train_ms_per_step": round(1e3 * train / args.steps, 3), "train_samples_per_cpu_s": round(samples / train, 1),
        "infer_samples_per_cpu_s": round(count / infer, 1), "machine": cpu_model(),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
