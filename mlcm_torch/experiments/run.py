"""One run of a figure, in its own process: build the network (``from_config``), the data module
and the LightningModule from the run's config, train with a ``lightning.Trainer`` and record,
after every epoch, train/val/test accuracy, the mean sweeps, the not-converged fraction and the
per-layer activity of the label-free relaxation; then write ``<out>/runs/<run_id>.json``.

    python -m mlcm_torch.experiments.run DIR/specs/<run_id>.json

(the sweep engine writes these spec files; this command re-runs one by hand).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Optional

RECORD_VERSION = 1


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else what ``platform`` says."""
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """Where the run ran."""
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"host": platform.node(), "platform": platform.platform(), "machine": platform.machine(),
            "python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "gpu": gpu}


def _import(class_path: str):
    import importlib

    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _quiet() -> None:
    """Keep Lightning's banner and the warnings that the records already carry out of the logs."""
    import lightning  # noqa: F401 - its import sets its loggers' levels: set them after it

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for message in (r".*stopped at max_sweeps.*", r".*does not have many workers.*", r".*LeafSpec.*",
                    r".*val_dataloader.*", r".*validation_step.*", r".*num_workers.*",
                    r".*The number of training batches.*", r".*litlogger.*"):
        warnings.filterwarnings("ignore", message=message)


# ---------------------------------------------------------------------------------------------- evaluation
def _chunks(x, y, size: int):
    for start in range(0, x.shape[0], size):
        yield x[start:start + size], y[start:start + size]


def evaluate(module, x, y, batch_size: int = 1024) -> dict:
    """Label-free evaluation of ``module`` on (x, y): accuracy and, for a network, mean sweeps,
    not-converged fraction, per-layer activity and the accuracy over the converged samples only."""
    import torch

    from mlcm_torch.module.network import Network

    network = getattr(module, "network", None)
    device = module.device
    correct = total = 0.0
    sweeps = missed = correct_converged = 0.0
    activity = None
    with torch.no_grad():
        for xb, yb in _chunks(x, y, batch_size):
            xb, yb = xb.to(device), yb.to(device)
            batch = yb.shape[0]
            if isinstance(network, Network):
                relaxation = network.relax(xb)
                flat = relaxation.states.reshape(batch, -1)
                logits = network.readout(network.layer_states(flat, network.num_layers - 1))
                ok = module.correct(logits, yb)
                converged = relaxation.converged
                sweeps += float(relaxation.sweeps.float().sum())
                missed += float((~converged).sum())
                correct_converged += float(ok[converged].sum())
                layer = relaxation.activity(network.state_encoding, network.sizes) * batch
                activity = layer if activity is None else activity + layer
            else:
                ok = module.correct(module.logits(xb), yb)
            correct += float(ok.sum())
            total += batch
    out: dict[str, Any] = {"acc": correct / total, "n": int(total)}
    if isinstance(network, Network):
        converged_count = total - missed
        out.update({
            "sweeps": sweeps / total,
            "not_converged": missed / total,
            "acc_converged": correct_converged / converged_count if converged_count else None,
            "activity": [float(a) / total for a in activity],
        })
    return out


def _split_tensors(datamodule, split: str, limit: Optional[int]):
    try:
        dataset = datamodule.dataset(split)
    except RuntimeError:  # a split the data module does not set up
        return None
    if dataset is None:
        return None
    x, y = dataset.tensors
    return (x[:limit], y[:limit]) if limit is not None else (x, y)


def _recorder(options: dict):
    import lightning as L

    class Recorder(L.Callback):
        """After every training epoch: label-free evaluation of a training subset, the
        validation and the test split (Lightning's own validation loop is off)."""

        def __init__(self) -> None:
            self.records: list[dict] = []
            self.start = time.perf_counter()
            self.splits: dict = {}

        def on_fit_start(self, trainer, pl_module) -> None:
            datamodule = trainer.datamodule
            datamodule.setup("test")
            limit = options.get("train_eval_size", 1000)
            wanted = options.get("eval_splits") or ("train", "val", "test")
            for split, size in (("train", limit), ("val", None), ("test", None)):
                if split not in wanted:
                    continue
                tensors = _split_tensors(datamodule, split, size)
                if tensors is not None:
                    self.splits[split] = tensors

        def _online(self, trainer) -> None:
            metric = trainer.callback_metrics.get("train/acc_epoch")
            if self.records and metric is not None and "train_acc_online" not in self.records[-1]:
                self.records[-1]["train_acc_online"] = float(metric)

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self._online(trainer)

        def on_fit_end(self, trainer, pl_module) -> None:
            self._online(trainer)

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            record: dict[str, Any] = {"epoch": trainer.current_epoch + 1}
            counts = getattr(pl_module, "_epoch_not_converged", None)
            if counts is not None:
                missed, seen = (float(v) for v in counts.tolist())
                record["train_clamped_not_converged"] = missed / seen if seen else None
            was_training = pl_module.training
            pl_module.eval()
            for split, (x, y) in self.splits.items():
                for key, value in evaluate(pl_module, x, y, options.get("eval_batch_size", 1024)).items():
                    record[f"{split}_{key}"] = value
            pl_module.train(was_training)
            record["seconds"] = round(time.perf_counter() - self.start, 2)
            self.records.append(record)

    return Recorder()


# ---------------------------------------------------------------------------------------------- probes
def linear_probes(network, datamodule, train_size: Optional[int], ridge: float = 1.0,
                  batch_size: int = 1024) -> dict:
    """Least-squares (ridge) linear readouts, one per layer and one on the raw input, fitted on
    the label-free fixed points of ``train_size`` training samples and scored on the test
    split. Targets: one-hot ±1 for classes (argmax decides), the ±1 vectors for hetero."""
    import torch

    train = _split_tensors(datamodule, "train", train_size)
    test = _split_tensors(datamodule, "test", None)

    def features(x):
        layers = [[] for _ in range(network.num_layers)]
        missed = 0
        with torch.no_grad():
            for xb in x.split(batch_size):
                relaxation = network.relax(xb)
                flat = relaxation.states.reshape(xb.shape[0], -1)
                missed += int((~relaxation.converged).sum())
                for layer in range(network.num_layers):
                    layers[layer].append(network.layer_states(flat, layer).double())
        return [x.double()] + [torch.cat(parts) for parts in layers], missed / x.shape[0]

    def targets(y):
        if y.dim() == 2:
            return y.double()
        return torch.nn.functional.one_hot(y, network.num_classes).double() * 2 - 1

    def score(pred, y):
        if y.dim() == 2:
            return float(((pred >= 0) == (y > 0)).all(-1).double().mean())
        return float((pred.argmax(-1) == y).double().mean())

    (x_train, y_train), (x_test, y_test) = train, test
    f_train, nc_train = features(x_train)
    f_test, nc_test = features(x_test)
    t_train = targets(y_train)
    accuracy, train_accuracy = [], []
    for a, b in zip(f_train, f_test):
        a1 = torch.cat([a, torch.ones(a.shape[0], 1, dtype=a.dtype)], 1)
        b1 = torch.cat([b, torch.ones(b.shape[0], 1, dtype=b.dtype)], 1)
        gram = a1.T @ a1 + ridge * torch.eye(a1.shape[1], dtype=a1.dtype)
        weights = torch.linalg.solve(gram, a1.T @ t_train)
        accuracy.append(score(b1 @ weights, y_test))
        train_accuracy.append(score(a1 @ weights, y_train))
    return {"layers": ["input"] + [f"layer_{l}" for l in range(1, network.num_layers + 1)],
            "test_acc": accuracy, "train_acc": train_accuracy, "train_size": int(x_train.shape[0]),
            "ridge": ridge, "train_not_converged": nc_train, "test_not_converged": nc_test}


# ---------------------------------------------------------------------------------------------- tasks
def _train(spec: dict) -> dict:
    import lightning as L
    import torch

    from mlcm_torch.module.config import from_config
    from mlcm_torch.module.network import Network

    config = spec["config"]
    options = config.get("run") or {}
    L.seed_everything(spec["seed"], verbose=False)
    # from_config may turn nested dicts into jsonargparse Namespaces in place: give it a copy
    network = from_config(copy.deepcopy(config["network"]), Network) if config.get("network") else None
    model_config = config["model"]
    kwargs = dict(model_config.get("init_args") or {})
    if network is not None:
        kwargs["network"] = network
    module = _import(model_config["class_path"])(**kwargs)
    data_config = config["data"]
    datamodule = _import(data_config["class_path"])(**(data_config.get("init_args") or {}))
    recorder = _recorder(options)
    trainer_options = {"accelerator": "gpu" if spec.get("device") == "gpu" else "cpu", "devices": 1,
                       "logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
                       "enable_model_summary": False, "limit_val_batches": 0, "num_sanity_val_steps": 0}
    trainer_options.update(config.get("trainer") or {})
    trainer = L.Trainer(callbacks=[recorder], **trainer_options)
    trainer.fit(module, datamodule=datamodule)
    result: dict[str, Any] = {"epochs": recorder.records}
    if options.get("probe"):
        if network is None:
            raise ValueError("run.probe needs a network")
        result["probe"] = linear_probes(network, datamodule, options.get("probe_train_size"),
                                        batch_size=options.get("eval_batch_size", 1024))
    if network is not None and torch.cuda.is_available():
        result["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def _physics(spec: dict) -> dict:
    """The accessibility threshold (synchronous dynamics, fraction of random initial states that
    converge crossing 1/2) and J_D* (every sampled state converges) of random Gaussian networks of
    N neurons, with :mod:`mlcm_torch.physics`."""
    from mlcm_torch.physics import accessibility, critical_vs_size

    args = dict(spec["config"]["run"]["physics"])
    n = int(args.pop("n"))
    device = "cuda" if spec.get("device") == "gpu" else "cpu"
    access = accessibility(n, args["j_d_values"], n_networks=args.get("n_networks", 4),
                           n_states=args.get("n_states", 32), dynamics=("sync",),
                           max_steps=args.get("max_steps", 200), seed=spec["seed"], device=device)
    critical = critical_vs_size([n], n_networks=args.get("critical_networks", 4),
                                n_states=args.get("critical_states", 16), kind="gaussian", dynamics="sync",
                                max_steps=args.get("critical_max_steps", 1000), seed=spec["seed"], device=device)
    row = critical["sizes"][0]
    return {"physics": {"n": n, "accessibility": access, "threshold": access["sync"]["threshold"],
                        "j_d_star": row["j_d_star"], "j_d_star_mean": row["j_d_star_mean"],
                        "j_d_star_per_network": row["per_network"]}}


def execute(spec: dict) -> dict:
    """Run one spec and write its record to ``spec["path"]`` (atomically). Returns a short status
    ``{"id", "path", "seconds"}``."""
    threads = spec.get("threads")
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    _quiet()
    start = time.perf_counter()
    task = (spec["config"].get("run") or {}).get("task", "train")
    try:
        result = _physics(spec) if task == "physics" else _train(spec)
        where = machine()
    finally:
        torch.set_num_threads(before)  # inline runs (jobs=0) leave the caller's setting as it was
    seconds = time.perf_counter() - start
    record = {key: spec[key] for key in ("id", "figure", "preset", "seed", "label", "params", "overrides",
                                         "config")}
    record.update(result)
    record.update({"version": RECORD_VERSION, "wall_seconds": round(seconds, 2), "machine": where,
                   "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
    path = Path(spec["path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(_clean(record), indent=1))
    os.replace(tmp, path)
    return {"id": spec["id"], "path": str(path), "seconds": seconds}


def _clean(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def main(argv: Optional[list] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m mlcm_torch.experiments.run <run.json>", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    status = execute(spec)
    print(f"{status['id']}: {status['seconds']:.1f} s -> {status['path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
