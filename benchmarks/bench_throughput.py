"""Throughput of the MLCM dynamics: samples/s of a training step, a relaxation, inference, and
of the real ``lightning fit`` loop, for each sweep backend.

Builds the network from a config's ``model.init_args.network`` entry and feeds
random ±1 (or {0,1}) inputs of the config's width. A training step is what
``MLCMClassifier.training_step`` computes: relax with the label, local update, readout step;
``relax`` is the relaxation with the label alone; ``infer`` the label-free relaxation and
the readout.
Prints one JSON line per (config, batch size, backend), with medians over ``--repeats``
timings of ``--steps`` steps each. With ``--lightning S1 S2`` it also runs
``python -m mlcm_torch fit --config <config>`` for S1 and for S2 steps (no logger, checkpoints
or validation) and reports the seconds per step (t(S2) − t(S1)) / (S2 − S1), so start-up and
data preparation cancel; that needs the config's data (e.g. MNIST in ``$MLCM_DATA_DIR``). The
overhead is measured in this process, where nothing but the loop differs: Lightning's loop
(trainer, model and data module built by the CLI from the config, one ``fit``) and the same
engine step without Lightning on the very batches it sees (same seed, same loader order), each
timed between the starts of steps S1 and S2 of one run, ``--lightning-repeats`` (3)
interleaved runs each;
``lightning_overhead`` is the ratio of the medians minus one. ``lightning_overhead_same_steps``
times, within each Lightning run, the engine's calls (``relax`` and ``local_update``) in the
same window and reports loop / engine − 1 (median over the runs; per run in
``lightning_overhead_same_steps_runs``): everything outside those two calls counts as overhead,
data loading included, and since both times come from the same steps a machine whose speed
drifts between runs does not bias it. (The random-input step above
flips more neurons than real images do, so it is not the reference for the overhead.)

    python benchmarks/bench_throughput.py --config lightning_configs/mnist.yaml \
        --device cpu --batch-size 16 --steps 20 --backend dense event --lightning 20 120
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace

import torch
import yaml

from mlcm_torch import Network
from mlcm_torch.module.config import from_config


def build(config: str, device: str, seed: int, backend: str) -> Network:
    with open(config) as f:
        network = yaml.safe_load(f)["model"]["init_args"]["network"]
    network["init_args"].update(seed=seed, check_inputs=False)
    model = from_config(network, Network).to(device)
    model.dynamics = replace(model.dynamics, backend=backend)
    return model


def _batches(config: str) -> tuple[int, int]:
    """(the loader's batch size, readout steps per loader batch: its micro-batches)."""
    with open(config) as f:
        init = yaml.safe_load(f)
    loader = init["data"]["init_args"].get("batch_size", 16)
    micro = init["model"]["init_args"].get("micro_batch_size") or loader
    return loader, -(-loader // micro)


def lightning_seconds_per_step(config: str, backend: str, steps: tuple[int, int], device: str) -> float:
    """Seconds per loader step of the real CLI loop, from two runs of different lengths."""
    key = _backend_key(config)
    per_step = _batches(config)[1]  # max_steps counts readout steps, one per micro-batch
    times = []
    for count in steps:
        command = [
            sys.executable, "-m", "mlcm_torch", "fit", "--config", config, f"--trainer.max_steps={count * per_step}",
            "--trainer.logger=false", "--trainer.enable_checkpointing=false", "--trainer.callbacks=null",
            "--trainer.limit_val_batches=0", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false", f"--trainer.accelerator={device.split(':')[0]}",
            f"--model.init_args.{key}={backend}",
        ]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return (times[1] - times[0]) / (steps[1] - steps[0])


def _backend_key(config: str) -> str:
    return "network.init_args.backend" if "mlcm_torch.MLCM" in open(config).read() else "network.init_args.dynamics.backend"


def _fit_overrides(config: str, backend: str, device: str) -> list[str]:
    return ["--config", config, "--trainer.logger=false", "--trainer.callbacks=null",
            "--trainer.enable_checkpointing=false", "--trainer.limit_val_batches=0",
            "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
            f"--trainer.accelerator={device.split(':')[0]}", f"--model.init_args.{_backend_key(config)}={backend}"]


class _StepClock:
    """A Lightning callback recording when every training step starts and the engine seconds
    spent by then."""

    def __init__(self, engine: list[float]) -> None:
        self.engine = engine  # a one-element list: seconds spent in the engine so far
        self.starts: list[float] = []
        self.engine_marks: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(time.perf_counter())
        self.engine_marks.append(self.engine[0])


def _window(starts: list[float], steps: tuple[int, int]) -> float:
    """Seconds per step between the starts of steps S1 and S2 (0-based)."""
    return (starts[steps[1]] - starts[steps[0]]) / (steps[1] - steps[0])


def lightning_loop_seconds_per_step(config: str, backend: str, steps: tuple[int, int],
                                    device: str) -> tuple[float, float]:
    """Seconds per step of Lightning's training loop, in this process: the CLI builds trainer,
    model and data module from ``config`` (as ``fit`` does, no logger, checkpoints or validation),
    one ``fit`` runs S2 + 1 steps, and the starts of steps S1 and S2 bound the window, so start-up,
    data preparation and the first steps stay outside it. Also returns the seconds per step spent
    inside the engine's calls (``network.relax`` and ``network.local_update``) in that window."""
    from lightning.pytorch import Callback

    from mlcm_torch.cli import cli

    per_step = _batches(config)[1]
    built = cli([*_fit_overrides(config, backend, device), f"--trainer.max_steps={(steps[1] + 1) * per_step}"],
                run=False)
    network, engine = built.model.network, [0.0]

    def timed_call(function):
        def call(*args, **kwargs):
            sync(device)
            start = time.perf_counter()
            out = function(*args, **kwargs)
            sync(device)
            engine[0] += time.perf_counter() - start
            return out
        return call

    network.relax, network.local_update = timed_call(network.relax), timed_call(network.local_update)
    clock = type("StepClock", (_StepClock, Callback), {})(engine)
    built.trainer.callbacks.append(clock)
    built.trainer.fit(built.model, datamodule=built.datamodule)
    sync(device)
    return _window(clock.starts, steps), _window(clock.engine_marks, steps)


def bare_seconds_per_step(config: str, backend: str, steps: tuple[int, int], device: str) -> float:
    """Seconds per step of the engine alone (relax, local update, readout step) on the batches
    ``lightning fit`` trains on: model and data module built by the CLI from ``config``, one loop
    over the loader's first S2 + 1 batches (epoch after epoch), each in the micro-batches the model's
    ``micro_batch_size`` makes, the window between the starts of steps S1 and S2 as in
    :func:`lightning_loop_seconds_per_step`."""
    from mlcm_torch.cli import cli

    built = cli(_fit_overrides(config, backend, device), run=False)
    network, datamodule = built.model.network.to(device), built.datamodule
    micro = built.model.hparams.micro_batch_size
    optimizer = torch.optim.SGD(network.readout.parameters(), lr=network.readout_options.lr)
    datamodule.setup("fit")
    starts = []
    batches = (batch for _ in iter(int, 1) for batch in datamodule.train_dataloader())  # epoch after epoch
    for _, (x, y) in zip(range(steps[1] + 1), batches):
        sync(device)
        starts.append(time.perf_counter())
        for x_micro, y_micro in zip(x.to(device).split(micro or len(x)), y.to(device).split(micro or len(y))):
            relaxation = network.relax(x_micro, y_micro)
            network.local_update(relaxation, x_micro, y_micro)
            if network.readout_options.rule == "cross_entropy":
                optimizer.zero_grad()
                features = network.layer_states(relaxation.states, network.num_layers - 1)
                torch.nn.functional.cross_entropy(network.readout(features), y_micro).backward()
                optimizer.step()
    return _window(starts, steps)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, steps: int, repeats: int, device: str) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` runs of ``steps`` calls."""
    fn()
    sync(device)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        sync(device)
        runs.append((time.perf_counter() - start) / steps)
    return statistics.median(runs)


def measure(config: str, device: str, batch: int, steps: int, repeats: int, seed: int, backend: str,
            lightning: tuple[int, int] | None, lightning_repeats: int = 3) -> dict:
    model = build(config, device, seed, backend)
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 2, (batch, model.in_features), generator=g).float()
    x = (2 * x - 1 if model.state_encoding == "pm1" else x).to(device)
    y = torch.randint(0, model.num_classes, (batch,), generator=g).to(device)
    optimizer = torch.optim.SGD(model.readout.parameters(), lr=model.readout_options.lr)
    sweeps = []

    def train_step() -> None:
        relaxation = model.relax(x, y)
        sweeps.append(relaxation.sweeps.float().mean())
        model.local_update(relaxation, x, y)
        if model.readout_options.rule == "cross_entropy":
            optimizer.zero_grad()
            features = model.layer_states(relaxation.states, model.num_layers - 1)
            loss = torch.nn.functional.cross_entropy(model.readout(features), y)
            loss.backward()
            optimizer.step()

    def relax() -> None:
        model.relax(x, y)

    def infer() -> None:
        with torch.inference_mode():
            model(x)

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    train_s = timed(train_step, steps, repeats, device)
    relax_s = timed(relax, steps, repeats, device)
    infer_s = timed(infer, steps, repeats, device)
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.startswith("cuda")
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    record = {
        "config": config,
        "backend": backend,
        "resolved_backend": model.sweep_backend(torch.device(device)),
        "device": device,
        "device_name": torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "batch_size": batch,
        "sizes": list(model.sizes),
        "train_samples_per_s": round(batch / train_s, 1),
        "relax_samples_per_s": round(batch / relax_s, 1),
        "infer_samples_per_s": round(batch / infer_s, 1),
        "train_step_ms": round(1e3 * train_s, 3),
        "mean_train_sweeps": round(float(torch.stack(sweeps).mean()), 2),
        "peak_memory_mib": round(peak, 1),
        "torch": torch.__version__,
    }
    if lightning is not None:
        loader_batch, per_step = _batches(config)
        seconds = lightning_seconds_per_step(config, backend, lightning, device)
        record["lightning_fit_batch_size"] = loader_batch
        record["micro_batches_per_step"] = per_step
        if seconds > 0:
            record["lightning_fit_samples_per_s"] = round(loader_batch / seconds, 1)
        else:  # the longer run was not slower than the shorter one: noise larger than S2 − S1 steps
            record.update(lightning_fit_samples_per_s=None,
                          lightning_note=f"unresolved: t(S2) - t(S1) <= 0 ({seconds:.3g} s/step); widen S2 - S1")
        # the overhead from one process, interleaved, median of --lightning-repeats windows each
        loops, bares, shares = [], [], []
        for _ in range(lightning_repeats):
            bares.append(bare_seconds_per_step(config, backend, lightning, device))
            loop, engine = lightning_loop_seconds_per_step(config, backend, lightning, device)
            loops.append(loop)
            shares.append(loop / engine - 1)
        loop, bare = statistics.median(loops), statistics.median(bares)
        record["lightning_loop_samples_per_s"] = round(loader_batch / loop, 1)
        record["bare_real_batches_samples_per_s"] = round(loader_batch / bare, 1)
        record["lightning_overhead"] = round(loop / bare - 1, 3)
        # the same steps' time outside relax and local_update: insensitive to the machine's speed
        # changing between runs (everything but the engine's two calls counts, data loading too)
        record["lightning_overhead_same_steps"] = round(statistics.median(shares), 3)
        record["lightning_overhead_same_steps_runs"] = [round(value, 3) for value in shares]
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", nargs="+", default=["lightning_configs/mnist.yaml"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[16])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", nargs="+", default=["dense", "event"], choices=["dense", "event", "auto"])
    parser.add_argument("--lightning", type=int, nargs=2, metavar=("S1", "S2"),
                        help="also time `lightning fit` for S1 and S2 steps (the config's batch size)")
    parser.add_argument("--lightning-repeats", type=int, default=3,
                        help="interleaved in-process runs of Lightning's loop and of the bare step (median)")
    args = parser.parse_args()
    for config in args.config:
        for batch in args.batch_size:
            for backend in args.backend:
                record = measure(config, args.device, batch, args.steps, args.repeats, args.seed, backend,
                                 tuple(args.lightning) if args.lightning else None, args.lightning_repeats)
                print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
