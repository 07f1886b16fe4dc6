"""Training throughput of mlcm_torch next to darnax and the authors' PyTorch code, side by side.

Measures, in one process on the same machine, the training samples/s of

* **darnax** (the first author's JAX/Equinox library, github Willinki/darnax), its tutorial-09
  MNIST model (``docs/tutorials/09_sota_on_mnist.py``: H = 2000, 99 % sparse J, 90 % sparse
  input couplings, batch 16, 1 warm-up + 5 clamped + 5 free sweeps). The tutorial file itself is
  imported from the checkout given by ``--darnax``: its ``PARAMS``, ``build_model``,
  ``make_lr_map_v2`` and ``decay``; the optimizer is set up as its ``train_once`` does. One step is
  what the tutorial's training loop does per batch: the jit-compiled ``trainer.train_step`` then
  the tutorial's (eager) weight ``decay``. The jitted ``train_step`` alone is timed too
  (``train_step_only_samples_per_s``);
* **the authors' PyTorch code** (github mattia-scardecchia/Biological-Learning, ``--authors``),
  ``BatchMeIfUCan`` built from ``configs/baseline_1layer_mnist.yaml`` the way ``scripts/train.py``
  does (its ``parse_config``): 1 layer, H = 1600, 784 inputs, batch 16, 7 sweeps with the label
  then 7 without, a local update every step. One step is ``model.train_step(x, y, 7)``;
* **mlcm_torch**: ``lightning_configs/mnist_sparse.yaml`` (the darnax model) and
  ``lightning_configs/mnist.yaml`` (the authors' recipe), the bare training step as
  ``benchmarks/bench_throughput.py`` measures it (its ``measure``), backend ``auto``; with
  ``--lightning S1 S2`` also the real ``lightning fit`` loop (its ``lightning_seconds_per_step``,
  on real MNIST from ``$MLCM_DATA_DIR``, default ``./data``).

Inputs are random batches of the right shapes and encodings (darnax: {0, 1} pixels and ±1 labels,
as its MNIST loader gives with ``x_transform="identity"``, ``label_mode="pm1"``; the authors:
±1 inputs and one-hot labels; mlcm_torch: ``measure``'s random inputs). The peers' steps are dense,
so their cost does not depend on the data.

Timing: every system is warmed up first (jit compilation and the first calls are excluded; the
compile time is reported apart), then ``--rounds`` rounds each time ``--steps`` consecutive steps
of every system in turn, so that a change of the machine's load hits all of them alike; a system's
samples/s is the median over the rounds. JAX dispatches asynchronously: a timed run ends when the
model's arrays are ready (``jax.block_until_ready``).

Threads (``--threads N``, for fairness set the same count for all): ``torch.set_num_threads(N)``
and ``OMP_NUM_THREADS``/``MKL_NUM_THREADS=N`` (inherited by the ``lightning fit`` child); for
XLA, set in ``XLA_FLAGS`` before jax is imported: with N = 1
``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`` (Eigen's matrix kernels on
the calling thread); XLA has no flag for another count, so with 1 < N < number of CPUs the process
is pinned to N CPUs (``os.sched_setaffinity``), which bounds XLA's and torch's pools alike. Each
line reports ``cpu_per_wall`` (process CPU seconds per wall second over that system's timed
runs): about 1.0 means one busy thread.

Output: one JSON line per system (system, config, batch, samples_per_s, device, threads,
versions, ...) and a last line with the ratios (mlcm_torch / darnax, mlcm_torch / authors).
When a peer's checkout or its Python packages are missing it prints what is missing and how to
get it, and exits 0 (``--skip-peers`` times mlcm_torch alone).

Setup (darnax is not on PyPI; both checkouts live in the ignored folder ``peers/``):

    pip install -e '.[bench]'     # jax[cpu], equinox, optax (darnax), seaborn, hydra-core (authors)
    git clone https://github.com/Willinki/darnax peers/darnax
    git clone https://github.com/mattia-scardecchia/Biological-Learning peers/biological-learning
    python benchmarks/compare_peers.py --threads 1 --lightning 60 300
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import inspect
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

from mlcm_torch.experiments.run import cpu_name

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
DARNAX_URL = "https://github.com/Willinki/darnax"
AUTHORS_URL = "https://github.com/mattia-scardecchia/Biological-Learning"
DARNAX_TUTORIAL = "docs/tutorials/09_sota_on_mnist.py"
AUTHORS_CONFIG = "configs/baseline_1layer_mnist.yaml"
DARNAX_PACKAGES = ("jax", "jaxlib", "equinox", "optax")
AUTHORS_PACKAGES = ("torch", "matplotlib", "seaborn", "hydra", "omegaconf", "torchvision")


# ----------------------------------------------------------------------------------- preflight

def missing_packages(names: tuple[str, ...]) -> list[str]:
    return [name for name in names if importlib.util.find_spec(name) is None]


def check_darnax(path: Path) -> list[str]:
    """What is missing to run darnax's tutorial 09 from the checkout ``path`` (empty: nothing)."""
    problems = []
    if not (path / "src" / "darnax").is_dir() or not (path / DARNAX_TUTORIAL).is_file():
        problems.append(
            f"darnax checkout not found at {path} (need {path}/src/darnax and {path}/{DARNAX_TUTORIAL}); "
            f"get it with `git clone {DARNAX_URL} {path}` (darnax is not on PyPI) or pass --darnax PATH")
    packages = missing_packages(DARNAX_PACKAGES)
    if packages:
        problems.append(
            f"Python packages for darnax missing: {', '.join(packages)}; "
            "install them with `pip install -e '.[bench]'` (jax[cpu], equinox<0.13, optax<0.3)")
    return problems


def check_authors(path: Path) -> list[str]:
    problems = []
    needed = [path / "src" / "batch_me_if_u_can.py", path / "scripts" / "train.py", path / AUTHORS_CONFIG]
    if not all(p.is_file() for p in needed):
        problems.append(
            f"authors' checkout not found at {path} (need src/batch_me_if_u_can.py, scripts/train.py, "
            f"{AUTHORS_CONFIG}); get it with `git clone {AUTHORS_URL} {path}` or pass --authors PATH")
    packages = missing_packages(AUTHORS_PACKAGES)
    if packages:
        problems.append(
            f"Python packages for the authors' code missing: {', '.join(packages)}; "
            "install them with `pip install -e '.[bench]'` (seaborn, hydra-core)")
    return problems


# ---------------------------------------------------------------------------------- threading

def pin_threads(threads: int | None) -> None:
    """Same thread count for torch and XLA; must run before jax is imported."""
    if threads is None:
        return
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if threads == 1:
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()
    else:
        cpus = sorted(os.sched_getaffinity(0))
        if threads < len(cpus):
            os.sched_setaffinity(0, cpus[:threads])


def git_commit(path: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(path), "log", "-1", "--format=%h %cs %D"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def worktree_modified(path: Path) -> bool | None:
    """Whether the package code or configs differ from the commit (what was timed is the work tree)."""
    try:
        out = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "-uno", "--",
                              "mlcm_torch", "lightning_configs", "benchmarks"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return None


# ------------------------------------------------------------------------------------ systems

class Peer:
    """A training step to time: ``step()`` runs one, ``sync()`` waits for the queued work."""

    name: str
    config: str
    batch: int

    def step(self) -> None:
        raise NotImplementedError

    def sync(self) -> None:
        pass

    def info(self) -> dict:
        return {}


def import_file(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Darnax(Peer):
    """darnax tutorial 09: ``trainer.train_step`` (one jitted call) then the tutorial's ``decay``."""

    def __init__(self, path: Path, seed: int, with_decay: bool = True, shared: Darnax | None = None):
        import jax
        import numpy as np

        # darnax's sparse layers scatter an int mask into a bool array, which jax 0.4.38 warns about.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"jax\..*")
        self.jax = jax
        self.with_decay = with_decay
        self.name = "darnax" if with_decay else "darnax (train_step only)"
        if shared is not None:  # the same tutorial module and data; a model of its own
            self.tutorial, self.batches = shared.tutorial, shared.batches
        else:
            sys.path.insert(0, str(path / "src"))
            if importlib.util.find_spec("datasets") is None:
                # The tutorial imports darnax.datasets.classification.mnist, which imports Hugging
                # Face `datasets` (a darnax dependency) at module level. Nothing here loads a data
                # set, so when that package is absent an empty module stands in for it.
                stub = types.ModuleType("datasets")
                stub.config = types.SimpleNamespace()
                stub.load_dataset = None
                sys.modules["datasets"] = stub
            self.tutorial = import_file("darnax_tutorial_09", path / DARNAX_TUTORIAL)
            rng = np.random.default_rng(seed)
            batch = self.tutorial.PARAMS["data"]["kwargs"]["batch_size"]
            kw = self.tutorial.PARAMS["model"]["kwargs"]
            self.batches = []
            for _ in range(4):
                x = rng.integers(0, 2, (batch, kw["dim_data"])).astype(np.float32)
                y = 2 * np.eye(kw["num_labels"], dtype=np.float32)[rng.integers(0, kw["num_labels"], batch)] - 1
                self.batches.append((jax.numpy.asarray(x), jax.numpy.asarray(y)))
        self.trainer, self.cfg = self._build()
        self.key = jax.random.key(self.cfg.get("master_seed", 0))
        self.batch = self.batches[0][0].shape[0]
        k = self.cfg["model"]["kwargs"]
        t = self.cfg["trainer"]["kwargs"]
        self.config = (f"{DARNAX_TUTORIAL}: H={k['dim_hidden']}, J sparsity {k['sparsity']}, W_in sparsity "
                       f"{k['sparsity_win']}, sweeps {t['warmup_n_iter']}+{t['train_clamped_n_iter']}+"
                       f"{t['train_free_n_iter']}" + ("" if with_decay else ", without the tutorial's decay"))
        self.index = 0
        self.path = path

    def _build(self):
        """The model and optimizer exactly as the tutorial's ``train_once`` sets them up."""
        import equinox as eqx
        import jax.numpy as jnp
        import optax
        from darnax.trainers.dynamical import DynamicalTrainer

        tut = self.tutorial
        cfg = copy.deepcopy(tut.PARAMS)
        state, orchestrator = tut.build_model(**cfg["model"]["kwargs"])
        lr_map = tut.make_lr_map_v2(orchestrator, overrides={(1, 0): "w_in", (1, 1): "j", (2, 1): "w_out"})
        lr_win = cfg["optimizer"]["learning_rate_win"]
        lr_wout = cfg["optimizer"]["learning_rate_wout"]
        lr_j = cfg["optimizer"]["learning_rate_j"]
        lr_j /= jnp.sqrt(1.0 - cfg["model"]["kwargs"]["sparsity"])
        lr_win /= jnp.sqrt(1.0 - cfg["model"]["kwargs"]["sparsity_win"])
        optimizer = optax.multi_transform(
            {"default": optax.sgd(learning_rate=0.0), "w_in": optax.sgd(learning_rate=lr_win),
             "w_out": optax.sgd(learning_rate=lr_wout), "j": optax.sgd(learning_rate=lr_j)},
            lr_map,
        )
        opt_state = optimizer.init(eqx.filter(orchestrator, eqx.is_inexact_array))
        trainer = DynamicalTrainer(orchestrator=orchestrator, state=state, optimizer=optimizer,
                                   optimizer_state=opt_state, **cfg["trainer"]["kwargs"])
        return trainer, cfg

    def step(self) -> None:
        x, y = self.batches[self.index % len(self.batches)]
        self.index += 1
        self.key = self.trainer.train_step(x, y, self.key)
        if self.with_decay:
            self.trainer.orchestrator = self.tutorial.decay(self.trainer.orchestrator, self.cfg)

    def sync(self) -> None:
        self.jax.block_until_ready((self.trainer.orchestrator, self.trainer.state, self.key))

    def info(self) -> dict:
        return {"threads": threads_note(), "xla_flags": os.environ.get("XLA_FLAGS", ""),
                "versions": {"darnax": git_commit(self.path), "jax": package_version("jax"),
                             "jaxlib": package_version("jaxlib"), "equinox": package_version("equinox"),
                             "optax": package_version("optax"), "python": platform.python_version()}}


class Authors(Peer):
    """The authors' ``BatchMeIfUCan`` with their paper MNIST config, ``train_step`` per batch."""

    def __init__(self, path: Path, seed: int):
        import torch

        sys.path.insert(0, str(path))
        from omegaconf import OmegaConf

        logging.disable(logging.WARNING)  # parse_config warns about what it adjusts
        try:
            train_script = import_file("authors_scripts_train", path / "scripts" / "train.py")
            from src.batch_me_if_u_can import BatchMeIfUCan

            cfg = OmegaConf.load(path / AUTHORS_CONFIG)
            cfg.device = "cpu"
            lr, weight_decay, threshold, lambda_left, lambda_right = train_script.parse_config(cfg)
            plain = OmegaConf.to_container(cfg, resolve=True)
            # scripts/train.py passes every model argument under its config name, plus these:
            kwargs = {name: plain[name] for name in inspect.signature(BatchMeIfUCan.__init__).parameters
                      if name in plain}
            kwargs.update(C=10, lambda_left=lambda_left, lambda_right=lambda_right, lr=torch.tensor(lr),
                          threshold=torch.tensor(threshold), weight_decay=torch.tensor(weight_decay),
                          device="cpu", seed=plain["seed"])
            self.model = BatchMeIfUCan(**kwargs)
        finally:
            logging.disable(logging.NOTSET)
        self.sweeps = plain["max_steps_train"]
        self.batch = plain["batch_size"]
        g = torch.Generator().manual_seed(seed)
        self.batches = [
            (2 * torch.randint(0, 2, (self.batch, plain["N"]), generator=g).float() - 1,
             torch.eye(10)[torch.randint(0, 10, (self.batch,), generator=g)])
            for _ in range(4)
        ]
        self.name = "authors"
        self.config = (f"{AUTHORS_CONFIG}: {plain['num_layers']} layer, H={plain['H']}, N={plain['N']}, "
                       f"{self.sweeps} sweeps with the label + {self.sweeps} without"
                       + (" (double_dynamics)" if plain["double_dynamics"] else ""))
        self.index = 0
        self.path = path

    def step(self) -> None:
        x, y = self.batches[self.index % len(self.batches)]
        self.index += 1
        self.model.train_step(x, y, self.sweeps)

    def info(self) -> dict:
        import torch
        return {"threads": torch.get_num_threads(),
                "versions": {"authors": git_commit(self.path), "torch": torch.__version__,
                             "python": platform.python_version()}}


def threads_note() -> int | str:
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen=false" in flags:
        return 1
    return len(os.sched_getaffinity(0))


def time_runs(peer: Peer, steps: int) -> tuple[float, float, float]:
    """Seconds per step, and wall and CPU seconds, of ``steps`` consecutive steps."""
    peer.sync()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        peer.step()
    peer.sync()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall / steps, wall, cpu


# -------------------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--darnax", type=Path, default=ROOT / "peers" / "darnax",
                        help="a checkout of darnax (default: peers/darnax); its src/ is put on sys.path")
    parser.add_argument("--authors", type=Path, default=None,
                        help="a checkout of the authors' Biological-Learning code (default: "
                             "peers/biological-learning when present, else the authors are left out)")
    parser.add_argument("--skip-peers", action="store_true", help="time mlcm_torch alone")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for torch and XLA alike (default: each library's own default)")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed run")
    parser.add_argument("--rounds", type=int, default=5,
                        help="timed runs per system, interleaved; the median is reported")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps of each peer after compilation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="auto", choices=["dense", "event", "auto"],
                        help="mlcm_torch sweep backend")
    parser.add_argument("--sparse-config", default="lightning_configs/mnist_sparse.yaml",
                        help="mlcm_torch config compared with darnax")
    parser.add_argument("--config", default="lightning_configs/mnist.yaml",
                        help="mlcm_torch config compared with the authors' code")
    parser.add_argument("--lightning", type=int, nargs=2, metavar=("S1", "S2"),
                        help="also time `lightning fit` of both configs for S1 and S2 steps (real MNIST)")
    parser.add_argument("--lightning-repeats", type=int, default=3,
                        help="pairs of `lightning fit` runs per config; the median is reported")
    return parser.parse_args(argv)


def resolve(config: str) -> str:
    return config if Path(config).exists() else str(ROOT / config)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    darnax_path = args.darnax.expanduser().resolve()
    authors_path = None
    notes = []
    if not args.skip_peers:
        problems = check_darnax(darnax_path)
        if args.authors is not None:
            authors_path = args.authors.expanduser().resolve()
            problems += check_authors(authors_path)
        elif not check_authors(ROOT / "peers" / "biological-learning"):
            authors_path = ROOT / "peers" / "biological-learning"
        else:
            notes.append("the authors' code is left out: "
                         + "; ".join(check_authors(ROOT / "peers" / "biological-learning")))
        if problems:
            print("compare_peers: nothing measured, darnax/authors comparison skipped:", flush=True)
            for problem in problems:
                print(f"  - {problem}", flush=True)
            print("  (run with --skip-peers to time mlcm_torch alone)", flush=True)
            return 0
    for note in notes:
        print(f"compare_peers: {note}", file=sys.stderr, flush=True)

    pin_threads(args.threads)
    if "MLCM_DATA_DIR" not in os.environ and (ROOT / "data").is_dir():
        os.environ["MLCM_DATA_DIR"] = str(ROOT / "data")

    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    sys.path.insert(0, str(BENCH))
    from bench_throughput import _batches, lightning_seconds_per_step, measure

    device = "cpu"
    device_name = cpu_name()
    import mlcm_torch

    mlcm_versions = {"mlcm_torch": getattr(mlcm_torch, "__version__", package_version("mlcm_torch")),
                     "commit": git_commit(ROOT), "uncommitted_changes": worktree_modified(ROOT),
                     "torch": torch.__version__, "python": platform.python_version()}

    # Peers: build, compile, warm up (untimed).
    peers: list[Peer] = []
    compile_s: dict[str, float] = {}
    if not args.skip_peers:
        first = Darnax(darnax_path, args.seed, with_decay=True)
        peers += [first, Darnax(darnax_path, args.seed, with_decay=False, shared=first)]
        if authors_path is not None:
            peers.append(Authors(authors_path, args.seed))
        for peer in peers:
            start = time.perf_counter()
            peer.step()
            peer.sync()
            compile_s[peer.name] = time.perf_counter() - start
            for _ in range(args.warmup):
                peer.step()
            peer.sync()

    # mlcm_torch: bench_throughput.measure (its own warm-up call, one timed run of --steps steps)
    # once per round, interleaved with the peers.
    mlcm = [("mlcm_torch", args.sparse_config, "darnax"), ("mlcm_torch", args.config, "authors")]
    runs: dict[str, list[float]] = {}
    usage: dict[str, list[float]] = {}
    records: dict[str, dict] = {}
    for _ in range(args.rounds):
        for peer in peers:
            per_step, wall, cpu = time_runs(peer, args.steps)
            runs.setdefault(peer.name, []).append(peer.batch / per_step)
            usage.setdefault(peer.name, []).append(cpu / wall)
        for name, config, _ in mlcm:
            wall, cpu = time.perf_counter(), time.process_time()
            record = measure(resolve(config), device, 16, args.steps, 1, args.seed, args.backend, None)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            runs.setdefault(config, []).append(record["train_samples_per_s"])
            usage.setdefault(config, []).append(cpu / wall)
            records[config] = record

    results: dict[str, float] = {}

    def emit(line: dict) -> None:
        print(json.dumps(line), flush=True)

    for peer in peers:
        median = statistics.median(runs[peer.name])
        results[peer.name] = median
        info = peer.info()
        emit({"system": peer.name, "config": peer.config, "batch": peer.batch,
              "samples_per_s": round(median, 1), "step_ms": round(1e3 * peer.batch / median, 2),
              "runs_samples_per_s": [round(r, 1) for r in runs[peer.name]],
              "compile_and_first_step_s": round(compile_s[peer.name], 2),
              "device": device, "device_name": device_name, "threads": info["threads"],
              "cpu_per_wall": round(statistics.median(usage[peer.name]), 2),
              **({"xla_flags": info["xla_flags"]} if "xla_flags" in info else {}),
              "data": "random", "versions": info["versions"]})
    for name, config, against in mlcm:
        median = statistics.median(runs[config])
        results[config] = median
        record = records[config]
        line = {"system": name, "config": config, "compared_with": against, "batch": record["batch_size"],
                "samples_per_s": round(median, 1), "step_ms": round(1e3 * record["batch_size"] / median, 2),
                "runs_samples_per_s": runs[config], "backend": args.backend,
                "resolved_backend": record["resolved_backend"], "mean_train_sweeps": record["mean_train_sweeps"],
                "device": device, "device_name": device_name, "threads": torch.get_num_threads(),
                "cpu_per_wall": round(statistics.median(usage[config]), 2), "data": "random",
                "versions": mlcm_versions}
        emit(line)
        if args.lightning:
            loader_batch = _batches(resolve(config))[0]
            # (t(S2) - t(S1)) / (S2 - S1) from one pair of runs swings with the machine's load:
            # the median over --lightning-repeats pairs.
            estimates = [lightning_seconds_per_step(resolve(config), args.backend, tuple(args.lightning), device)
                         for _ in range(args.lightning_repeats)]
            seconds = statistics.median(estimates)
            results[f"{config} lightning"] = loader_batch / seconds
            lightning_line = {
                **line, "system": "mlcm_torch (lightning fit)", "batch": loader_batch,
                "samples_per_s": round(loader_batch / seconds, 1), "step_ms": round(1e3 * seconds, 2),
                "runs_samples_per_s": [round(loader_batch / s, 1) if s > 0 else None for s in estimates],
                "lightning_steps": list(args.lightning), "mean_train_sweeps": None, "cpu_per_wall": None,
                "data": "MNIST ($MLCM_DATA_DIR)", "threads": args.threads or torch.get_num_threads()}
            if seconds <= 0 or loader_batch / seconds > 1.5 * median:
                lightning_line["warning"] = (
                    "the fit loop (real MNIST) came out more than 1.5x faster than the bare step (random "
                    "inputs): real data may need fewer flips (event backend), but a difference of two "
                    "run times also swings with the machine's load; check on a quiet machine, with a larger "
                    "S2 - S1 or more --lightning-repeats")
            emit(lightning_line)

    ratios: dict[str, float] = {}

    def ratio(key: str, numerator: str, denominator: str) -> None:
        if numerator in results and denominator in results:
            ratios[key] = round(results[numerator] / results[denominator], 2)

    ratio("mlcm_torch/darnax", args.sparse_config, "darnax")
    ratio("mlcm_torch/darnax_train_step_only", args.sparse_config, "darnax (train_step only)")
    ratio("mlcm_torch/authors", args.config, "authors")
    ratio("mlcm_torch[mnist.yaml]/darnax", args.config, "darnax")
    ratio("lightning_fit/darnax", f"{args.sparse_config} lightning", "darnax")
    ratio("lightning_fit[mnist.yaml]/darnax", f"{args.config} lightning", "darnax")
    ratio("lightning_fit/authors", f"{args.config} lightning", "authors")
    emit({"system": "ratios", "configs": {"darnax": args.sparse_config, "authors": args.config},
          **ratios, "device_name": device_name, "threads": args.threads})
    return 0


if __name__ == "__main__":
    sys.exit(main())
