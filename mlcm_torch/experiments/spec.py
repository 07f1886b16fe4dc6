"""What a figure is: a base config, the scale of each preset, a grid of override points, and how
its runs are summarized, plotted and tabulated. Also the dotted-key overrides and run ids.

A config is a plain dict in the ``class_path`` / ``init_args`` form of ``lightning_configs``::

    {"network": {"class_path": "mlcm_torch.MLCM", "init_args": {...}},   # or None (baselines)
     "model":   {"class_path": "mlcm_torch.training.MLCMClassifier", "init_args": {...}},
     "data":    {"class_path": "mlcm_torch.data.MNISTDataModule", "init_args": {...}},
     "trainer": {"max_epochs": 20, ...},                                  # lightning.Trainer kwargs
     "run":     {"train_eval_size": 1000, "probe": False, ...}}            # what the run records

An override is a dotted key into that dict (``network.init_args.hidden``; list items by index,
``network.init_args.layers.0.init_args.size``) and a value.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import inspect
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

PRESETS = ("smoke", "cpu", "gpu")

RUN_OPTIONS = {
    "train_eval_size": "training samples re-evaluated label-free after every epoch (None: all)",
    "probe": "fit a least-squares linear probe on every layer's fixed points after training",
    "probe_train_size": "training samples the probes are fitted on (None: all)",
    "task": "'train' (default) or 'physics' (the accessibility threshold and J_D* of random networks)",
    "physics": "arguments of the physics task",
    "eval_batch_size": "batch size of the per-epoch evaluations",
    "eval_splits": "splits evaluated after every epoch (default: train, val, test)",
}
"""Keys of the ``run`` section of a config, with what they do."""


class ExperimentError(ValueError):
    """A problem with what was asked (figure, preset, override); the CLI prints it in one line."""


@dataclass(frozen=True)
class Scale:
    """The scale of one preset of a figure (stated in its outputs).

    Args:
        seeds: seeds per grid point.
        epochs: training epochs.
        hidden: neurons per layer N (None where the figure sweeps it).
        train: training samples (None: the whole training set).
        val: validation samples held out of the training set.
        test: test samples (None: the whole test set).
        batch_size: training batch size.
        train_eval: training samples re-evaluated label-free each epoch (None: all).
        params: figure-specific values (grids, layer counts, ...).
        note: what is reduced against the published protocol, in words.
    """

    seeds: int
    epochs: int
    hidden: Optional[int] = None
    train: Optional[int] = None
    val: int = 0
    test: Optional[int] = None
    batch_size: int = 16
    train_eval: Optional[int] = 1000
    params: dict = field(default_factory=dict)
    note: str = ""

    def describe(self) -> dict:
        out = {"seeds": self.seeds, "epochs": self.epochs, "N": self.hidden, "train": self.train,
               "val": self.val, "test": self.test, "batch_size": self.batch_size,
               "train_eval": self.train_eval}
        out.update({k: v for k, v in self.params.items()})
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class Point:
    """One grid point: a label, the parameters it stands for (what ``summarize`` groups by) and
    the overrides that make its config from the figure's base. ``seeds`` fixes the number of
    seeds of this point (e.g. 1 for a seed-independent computation)."""

    label: str
    params: dict
    overrides: dict
    seeds: Optional[int] = None


@dataclass(frozen=True)
class Figure:
    """A figure: base config, preset scales, grid, summary, plot and table.

    ``grid(scale, preset)`` returns the points; ``summarize(runs)`` maps the finished run
    records to JSON-able summary numbers, with a ``table`` entry ``{"columns": [...], "rows":
    [[...], ...]}`` for the Markdown output; ``plot(summary, path)`` writes the PNG.
    """

    name: str
    title: str
    protocol: str
    reference: str
    base: dict
    presets: dict
    grid: Callable[[Scale, str], list]
    summarize: Callable[[list], dict]
    plot: Callable[[dict, Any], None]
    seed_keys: tuple = ("network.init_args.seed", "data.init_args.shuffle_seed")

    def scale(self, preset: str) -> Scale:
        if preset not in self.presets:
            raise ExperimentError(f"unknown preset {preset!r}; choose one of {', '.join(self.presets)}")
        return self.presets[preset]


# ---------------------------------------------------------------------------------------------- overrides
def _split(key: str) -> list:
    if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
        raise ExperimentError(f"bad key {key!r}: expected a dotted path like network.init_args.hidden")
    return [int(part) if part.isdigit() else part for part in key.split(".")]


def _import(class_path: str):
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _accepts(class_path: str, name: str) -> bool:
    """Whether the class named by ``class_path`` takes an argument ``name``."""
    try:
        cls = _import(class_path)
    except (ImportError, AttributeError):
        return False
    try:
        parameters = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


TRAINER_KEYS = ("max_epochs", "accelerator", "devices", "precision", "gradient_clip_val", "deterministic",
                "limit_train_batches", "benchmark")


def applies(config: dict, key: str) -> bool:
    """Whether ``key`` names an option of ``config``: a present entry, an argument of the class
    named by the enclosing ``class_path`` (a default not written out), a Trainer option or a
    run option. A key under a section that is ``None`` (e.g. ``network`` of a baseline) does
    not apply."""
    parts = _split(key)
    node: Any = config
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not isinstance(part, int) or part >= len(node):
                return False
            node = node[part]
            continue
        if not isinstance(node, dict) or isinstance(part, int):
            return False
        if part in node:
            node = node[part]
            continue
        if not last:
            return False
        if depth == 1 and parts[0] == "trainer":
            return part in TRAINER_KEYS
        if depth == 1 and parts[0] == "run":
            return part in RUN_OPTIONS
        if depth >= 1 and parts[depth - 1] == "init_args":
            parent = _get(config, parts[: depth - 1])
            return isinstance(parent, dict) and "class_path" in parent and _accepts(parent["class_path"], part)
        return False
    return True


def _get(config: Any, parts: list) -> Any:
    node = config
    for part in parts:
        node = node[part]
    return node


def set_key(config: dict, key: str, value: Any) -> None:
    """Set ``key`` in ``config`` in place (the key must apply: see :func:`applies`)."""
    parts = _split(key)
    parent = _get(config, parts[:-1]) if len(parts) > 1 else config
    parent[parts[-1]] = copy.deepcopy(value)  # a dict entry or a list item


def get_key(config: dict, key: str, default: Any = None) -> Any:
    try:
        return _get(config, _split(key))
    except (KeyError, IndexError, TypeError):
        return default


def apply_overrides(config: dict, overrides: dict, *, strict: bool = True) -> dict:
    """A copy of ``config`` with ``overrides`` applied in order. A key that names a whole section
    (``network``) replaces it. ``strict``: a key that does not apply raises."""
    out = copy.deepcopy(config)
    for key, value in overrides.items():
        parts = _split(key)
        if len(parts) == 1:
            out[parts[0]] = copy.deepcopy(value)
            continue
        if not applies(out, key):
            if strict:
                raise ExperimentError(f"override {key!r} names no option of this config")
            continue
        set_key(out, key, value)
    return out


def parse_set(text: str) -> tuple[str, Any]:
    """``key=value`` of ``--set``; the value is read as YAML (``0.5``, ``[4, 4]``, ``true``,
    ``null``, a plain word is a string)."""
    import yaml

    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ExperimentError(f"--set {text!r}: expected key=value, e.g. network.init_args.hidden=200")
    _split(key)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise ExperimentError(f"--set {text!r}: the value is not valid YAML ({error.problem})") from None
    return key, value


def run_id(figure: str, overrides: dict, seed: int, preset: str) -> str:
    """``<figure>-<12 hex digits>``: a hash of (figure, overrides, seed, preset)."""
    text = json.dumps({"figure": figure, "overrides": overrides, "seed": seed, "preset": preset},
                      sort_keys=True, default=str)
    return f"{figure}-{hashlib.sha1(text.encode()).hexdigest()[:12]}"
